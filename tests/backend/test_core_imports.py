"""The core `myllm/` imports no framework: every module loads in a Python without torch or mlx."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import myllm

REPO = Path(__file__).resolve().parents[2]


def core_modules() -> list[str]:
    """Every module of the package; __main__ runs the CLI when imported, so it is left out."""
    names = (info.name for info in pkgutil.walk_packages(myllm.__path__, prefix="myllm."))
    return sorted(name for name in names if name != "myllm.__main__")


def test_every_core_module_imports_without_torch_or_mlx():
    modules = core_modules()
    assert "myllm.bench.runner" in modules and "myllm.backend.contract" in modules  # deep walk
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'mlx')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
