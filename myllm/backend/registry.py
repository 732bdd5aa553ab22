"""Backend registry: a name -> the backend's `BACKEND` (myllm/backend/contract.py), imported lazily.

The core never imports torch or mlx; the CLI asks this registry for a backend by name, and a
missing framework becomes a one-line error with the install command. Each backend package builds
its `Backend` once, in its __init__.py.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from myllm.backend.contract import Backend
from myllm.errors import UserError

PACKAGES = {"torch": "myllm_torch", "mlx": "myllm_mlx"}  # backend name = its framework's module
INSTALL_HINTS = {
    "torch": "in the myllm clone, pip install torch==2.13.0 (CPU) && pip install -e '.[torch]'",
    "mlx": "in the myllm clone, pip install -e '.[mlx]' (mlx on macOS, mlx[cpu] on Linux)",
}
# Each backend's own checkpoint format, known before its framework is imported: the one table,
# equal to each Backend.checkpoint_suffix (tests/backend check it).
CHECKPOINT_SUFFIXES = {".pt": "torch", ".safetensors": "mlx"}


def backend_names() -> list[str]:
    return list(PACKAGES)


def is_installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


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
    return importlib.import_module(PACKAGES[name]).BACKEND


def native_backend(path: Path) -> str:
    """The backend whose own format `path` is, from its extension (.pt torch, .safetensors mlx)."""
    name = CHECKPOINT_SUFFIXES.get(path.suffix)
    if name is None:
        raise UserError(
            f"unknown checkpoint format {path.suffix or '(no extension)'!r} for {path}: "
            "use a .pt (torch) or .safetensors (mlx) file"
        )
    return name


def checkpoint_suffix(name: str) -> str:
    """The extension of backend `name`'s checkpoints (.pt, .safetensors), without importing it."""
    return next(suffix for suffix, backend in CHECKPOINT_SUFFIXES.items() if backend == name)


def backend_module(name: str, part: str) -> ModuleType:
    """One module of backend `name` beyond its BACKEND (torch's `nanogpt` interop)."""
    if not is_installed(name):
        raise UserError(f"backend {name!r} is not installed: {INSTALL_HINTS[name]}")
    return importlib.import_module(f"{PACKAGES[name]}.{part}")
