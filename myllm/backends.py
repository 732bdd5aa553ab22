"""Backend registry: a name -> the backend's modules, imported lazily (DESIGN §1).

The core never imports torch or mlx at import time; the CLI asks this registry for a backend by
name, and a missing framework becomes a one-line error with the install command.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from myllm.checkpoint import checkpoint_format
from myllm.errors import UserError

PACKAGES = {"torch": "myllm_torch", "mlx": "myllm_mlx"}
FRAMEWORKS = {"torch": "torch", "mlx": "mlx"}
INSTALL_HINTS = {
    "torch": "in the myllm clone, pip install torch==2.13.0 (CPU) && pip install -e '.[torch]'",
    "mlx": "in the myllm clone, pip install -e '.[mlx]' (mlx on macOS, mlx[cpu] on Linux)",
}


@dataclass
class Backend:
    """The modules of one backend, mirrored file for file by the other."""

    name: str
    checkpoint_suffix: str
    device: ModuleType
    model: ModuleType
    trainer: ModuleType
    generate: ModuleType


def backend_names() -> list[str]:
    return list(PACKAGES)


def is_installed(name: str) -> bool:
    return importlib.util.find_spec(FRAMEWORKS[name]) is not None


def installed_backends() -> list[str]:
    return [name for name in PACKAGES if is_installed(name)]


def check_backend_name(name: str) -> str:
    """`name` if it is a backend, else a UserError naming the choices."""
    if name not in PACKAGES:
        raise UserError(f"unknown backend {name!r}: use one of {', '.join(PACKAGES)}")
    return name


def load_backend(name: str) -> Backend:
    """Import backend `name`, or raise a UserError naming the choices or the install command."""
    check_backend_name(name)
    if not is_installed(name):
        raise UserError(f"backend {name!r} is not installed: {INSTALL_HINTS[name]}")
    package = importlib.import_module(PACKAGES[name])
    modules = {
        part: importlib.import_module(f"{PACKAGES[name]}.{part}")
        for part in ("device", "model", "trainer", "generate")
    }
    return Backend(name=name, checkpoint_suffix=package.CHECKPOINT_SUFFIX, **modules)


def backend_module(name: str, part: str) -> ModuleType:
    """One module of backend `name` beyond the four above (torch's `nanogpt` interop)."""
    if not is_installed(name):
        raise UserError(f"backend {name!r} is not installed: {INSTALL_HINTS[name]}")
    return importlib.import_module(f"{PACKAGES[name]}.{part}")


def backend_for_checkpoint(path: Path) -> str:
    """The backend that reads `path` natively, from its extension (.pt torch, .safetensors mlx)."""
    return checkpoint_format(path)
