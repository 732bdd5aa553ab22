"""MLX's BLAS on Linux falls back to the installed torch's (libtorch_cpu.so) before the slow
reference BLAS; found without importing torch. Numbers: float32 matmul within 1e-4 of numpy."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from myllm_mlx import blas

REPO = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(sys.platform == "darwin", reason="macOS uses Accelerate")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=False
    )


@linux_only
def test_torch_blas_is_found_without_importing_torch():
    result = run_python(
        "import sys, myllm_mlx.blas as b; print(b.torch_blas_path()); print('torch' in sys.modules)"
    )
    assert result.returncode == 0, result.stderr
    path, torch_imported = result.stdout.split()
    assert path.endswith(os.path.join("torch", "lib", "libtorch_cpu.so"))
    assert torch_imported == "False"


@linux_only
def test_torch_blas_serves_mlx_matmuls():
    code = (
        "import sys, numpy as np, myllm_mlx, myllm_mlx.blas as b, mlx.core as mx\n"
        "a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)\n"
        "error = np.abs(np.array(mx.array(a) @ mx.array(a)) - a @ a).max()\n"
        "print(b.blas_in_use().split(' (')[0], float(error), 'torch' in sys.modules)"
    )
    result = run_python(code, MYLLM_BLAS=blas.torch_blas_path())
    assert result.returncode == 0, result.stderr
    name, error, torch_imported = result.stdout.split()
    assert name == "torch-blas" and float(error) < 1e-4 and torch_imported == "False"


@linux_only
def test_the_chain_reaches_torch_when_no_openblas_is_found():
    """No system OpenBLAS among the search paths: the torch wheel's BLAS is next."""
    code = (
        "import myllm_mlx.blas as b\n"
        "print(b._choose_blas('', ('/nonexistent/libopenblas.so.0', b.torch_blas_path()), False))"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("torch-blas (") and "libtorch_cpu.so" in result.stdout
    assert "RuntimeWarning" not in result.stderr


@linux_only
def test_neither_openblas_nor_torch_warns_with_the_fix():
    with pytest.warns(RuntimeWarning, match="no OpenBLAS, no torch") as record:
        described = blas._choose_blas("", search_paths=("", "/nonexistent"), mlx_imported=False)
    assert described.startswith("reference") and len(record) == 1


def test_generic_openblas_kernels_on_a_capable_cpu_are_replaced(monkeypatch):
    """OPENBLAS_CORETYPE is set before loading only where OpenBLAS would run Prescott kernels on
    a CPU that has better ones; OpenBLAS's own choice and the user's are left alone."""
    assert blas.better_kernels({"avx2", "avx512f"}, "GenuineIntel") == "SkylakeX"
    assert blas.better_kernels({"avx2"}, "GenuineIntel") == "Haswell"
    assert blas.better_kernels({"avx2", "avx512f"}, "AuthenticAMD") == "Zen"
    assert blas.better_kernels({"sse3"}, "GenuineIntel") is None  # nothing better to pick
    monkeypatch.setattr(blas, "cpu_flags", lambda: {"avx2", "avx512f"})
    monkeypatch.setattr(blas, "cpu_vendor", lambda: "GenuineIntel")
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.setattr(blas, "probe_kernels", lambda path: "SkylakeX")
    assert "OpenBLAS's own choice" in blas.choose_kernels("lib")
    assert "OPENBLAS_CORETYPE" not in os.environ
    monkeypatch.setattr(blas, "probe_kernels", lambda path: "Prescott")
    chosen = blas.choose_kernels("lib")
    assert "set by myllm" in chosen and "generic Prescott" in chosen
    assert os.environ["OPENBLAS_CORETYPE"] == "SkylakeX"
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert blas.choose_kernels("lib") == "; kernels Haswell (OPENBLAS_CORETYPE, set by the user)"


@linux_only
def test_the_probe_reads_a_real_openblas_kernel_choice():
    found = next((p for p in blas.SEARCH_PATHS if os.path.exists(p)), None)
    if found is None:
        pytest.skip("no system OpenBLAS installed here")
    assert blas.probe_kernels(found)  # e.g. "Prescott", "SkylakeX", "Haswell"
    assert blas.probe_kernels(blas.torch_blas_path() or "/nonexistent") is None  # not OpenBLAS
