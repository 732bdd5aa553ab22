"""Load an optimized BLAS for MLX on Linux CPU, before mlx.core is imported.

The mlx[cpu] wheel links the reference (netlib) BLAS, whose sgemm is ~40x slower than OpenBLAS.
libmlx resolves cblas_sgemm through the global symbol scope first, so a BLAS loaded earlier with
RTLD_GLOBAL wins. The chain: MYLLM_BLAS, a system OpenBLAS, the BLAS inside the installed torch
wheel (libtorch_cpu.so exports cblas_sgemm; no root needed, and `make` installs torch anyway),
then a warning. This module imports nothing from mlx or torch; myllm_mlx/__init__.py calls
`load_system_blas()` first thing.

An OpenBLAS that does not know the CPU model (Debian 12's 0.3.21 on a Sapphire Rapids) runs its
generic Prescott (SSE3) kernels, 5x slower than its AVX-512 ones and slower than torch's BLAS. It
reads OPENBLAS_CORETYPE once, when it loads: so before loading it, a child process asks it which
kernels it would pick (`openblas_get_corename`), and where the answer is Prescott on a CPU with
AVX2 or AVX-512, OPENBLAS_CORETYPE is set to the best kernel set the CPU runs (SkylakeX, Zen,
Haswell). A user's own OPENBLAS_CORETYPE is left alone. benchmarks/mlx_blas_choice.py measures
the choices (benchmarks/README.md).
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import warnings

from myllm.backend.precision import cpu_flags
from myllm.errors import UserError

BLAS_ENV = "MYLLM_BLAS"
TORCH_BLAS_LIBRARY = os.path.join("lib", "libtorch_cpu.so")  # inside the torch package
INSTALL_HINT = (
    "install torch (`make` does), install OpenBLAS (`sudo apt-get install libopenblas0-pthread`, "
    "or `sudo dnf install openblas`) or set MYLLM_BLAS=/path/to/libopenblas.so.0"
)
# Debian / Ubuntu (multiarch, pthread variant first), Fedora / RHEL, Arch, then generic names.
SEARCH_PATHS = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-openmp/libopenblas.so.0",
    "/usr/lib64/libopenblasp.so.0",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib64/libopenblaso.so.0",
    "/usr/lib/libopenblas.so.0",
    "/usr/local/lib/libopenblas.so.0",
)

# The Linux GPU builds of MLX (pip install 'mlx[cuda]' / 'mlx[cuda13]').
MLX_CUDA_DISTRIBUTIONS = ("mlx-cuda-12", "mlx-cuda-13", "mlx-cuda")

_blas_in_use: str | None = None

# Ask a library for the kernel set it picks on this CPU, without loading it into this process.
CORENAME_PROBE = (
    "import ctypes, sys; get = ctypes.CDLL(sys.argv[1]).openblas_get_corename; "
    "get.restype = ctypes.c_char_p; print(get().decode())"
)
GENERIC_KERNELS = "Prescott"


def blas_in_use() -> str:
    """Which BLAS MLX's CPU matmuls use, e.g. 'openblas (/usr/lib/.../libopenblas.so.0)'."""
    return _blas_in_use if _blas_in_use is not None else load_system_blas()


def openblas_core() -> str | None:
    """The kernel set the loaded OpenBLAS chose for this CPU, e.g. 'Haswell' or 'SkylakeX'; None
    when no OpenBLAS is loaded. 'Prescott' is its generic SSE3 fallback for a CPU model it does
    not recognise (OpenBLAS 0.3.21 on a virtualised Sapphire Rapids): matmuls ~5x slower there,
    which the environment variable OPENBLAS_CORETYPE (e.g. SkylakeX) overrides."""
    try:
        get_corename = ctypes.CDLL(None).openblas_get_corename  # global scope: RTLD_GLOBAL
    except AttributeError:
        return None
    get_corename.restype = ctypes.c_char_p
    return get_corename().decode()


def better_kernels(flags: set[str], vendor: str) -> str | None:
    """The fastest OpenBLAS kernel set this CPU runs, by its features; None: only generic ones."""
    if "avx512f" in flags and vendor != "AuthenticAMD":
        return "SkylakeX"
    if "avx2" in flags:
        return "Zen" if vendor == "AuthenticAMD" else "Haswell"
    return None


def cpu_vendor() -> str:
    """'GenuineIntel', 'AuthenticAMD', ... from /proc/cpuinfo ('' where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def probe_kernels(path: str) -> str | None:
    """The kernel set the OpenBLAS at `path` picks on this CPU, asked in a child process (the
    choice is made once, at load); None when it is no OpenBLAS or the probe fails."""
    try:
        probe = subprocess.run(
            [sys.executable, "-c", CORENAME_PROBE, path],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = probe.stdout.strip()
    return found if probe.returncode == 0 and found else None


def choose_kernels(path: str) -> str:
    """Set OPENBLAS_CORETYPE before the OpenBLAS at `path` loads when it would run its generic
    kernels on a CPU that has better ones; say what was done (for blas_in_use)."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return f"; kernels {os.environ['OPENBLAS_CORETYPE']} (OPENBLAS_CORETYPE, set by the user)"
    found = probe_kernels(path)
    if found is None:
        return ""
    better = better_kernels(cpu_flags(), cpu_vendor()) if found == GENERIC_KERNELS else None
    if better is None:
        return f"; kernels {found} (OpenBLAS's own choice for this CPU)"
    os.environ["OPENBLAS_CORETYPE"] = better
    return (
        f"; kernels {better}: OPENBLAS_CORETYPE set by myllm, since this OpenBLAS would run its "
        f"generic {found} kernels on this CPU (5x slower matmuls)"
    )


def load_system_blas() -> str:
    """Load the BLAS named by MYLLM_BLAS, or the first system OpenBLAS found; return what is used.

    Runs once per process; warns once when only the reference BLAS is left. A MYLLM_BLAS path that
    does not exist is a UserError."""
    global _blas_in_use
    if _blas_in_use is None:
        requested = os.environ.get(BLAS_ENV, "").strip()
        fallbacks = (*SEARCH_PATHS, torch_blas_path() or "")
        _blas_in_use = _choose_blas(
            requested, fallbacks, "mlx.core" in sys.modules, mlx_gpu_build_installed()
        )
    return _blas_in_use


def mlx_gpu_build_installed() -> bool:
    """Whether an MLX CUDA build (mlx[cuda], mlx[cuda13]) is installed: `auto` then means the GPU.

    Read from the installed distributions, since mlx.core may not be imported yet."""
    for name in MLX_CUDA_DISTRIBUTIONS:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return True
    return False


def torch_blas_path() -> str | None:
    """The installed torch's libtorch_cpu.so, found without importing torch (or None)."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(location, TORCH_BLAS_LIBRARY)
        if os.path.exists(path):
            return path
    return None


def _choose_blas(
    requested: str, search_paths: tuple[str, ...], mlx_imported: bool, gpu_build: bool = False
) -> str:
    """Load the requested BLAS, or the first of `search_paths` that exists; describe the result.

    The slow-BLAS warning is left out with an MLX CUDA build: the GPU does the matmuls there."""
    if sys.platform == "darwin":
        return "accelerate (macOS)"
    if requested.lower() == "none":
        return f"reference (netlib, shipped with mlx; {BLAS_ENV}=none)"
    if requested and not os.path.exists(requested):
        raise UserError(f"{BLAS_ENV}={requested} does not exist: {INSTALL_HINT}, or set it to none")
    if mlx_imported:
        return "unknown (mlx.core was imported before myllm_mlx: the BLAS could not be swapped)"
    candidates = [requested] if requested else [p for p in search_paths if p and os.path.exists(p)]
    for path in candidates:
        kernels = choose_kernels(path) if "openblas" in _blas_name(path) else ""
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as error:
            if requested:
                raise UserError(
                    f"{BLAS_ENV}={requested} could not be loaded ({error}): {INSTALL_HINT}"
                ) from error
            continue
        return f"{_blas_name(path)} ({os.path.realpath(path)}){kernels}"
    if gpu_build:
        return "reference (netlib, shipped with mlx; MLX's CUDA build runs matmuls on the GPU)"
    warnings.warn(
        f"MLX on CPU is using the slow reference BLAS (no OpenBLAS, no torch): {INSTALL_HINT}",
        RuntimeWarning,
        stacklevel=3,
    )
    return "reference (netlib, shipped with mlx)"


def _blas_name(path: str) -> str:
    name = os.path.basename(os.path.realpath(path)).lower()
    if name.startswith("libtorch"):
        return "torch-blas"  # the BLAS the torch wheel bundles (MKL on x86-64, OpenBLAS on arm64)
    for known in ("openblas", "mkl", "blis", "atlas"):
        if known in name:
            return known
    return "system blas"
