"""Parity tests compare the torch reference and the MLX port on the same weights."""

# Import order matters on Linux CPU: torch first (so its BLAS calls stay on its own MKL), then
# myllm_mlx, which loads the system OpenBLAS before anything imports mlx.core.
import torch  # noqa: F401  # isort: skip
import myllm_mlx  # noqa: F401  # isort: skip

import pytest


@pytest.fixture(scope="session")
def parity_report():
    """Worst differences measured, printed at the end of the session (`pytest -s` shows them)."""
    report: dict[str, float] = {}
    yield report
    for name, value in report.items():
        print(f"parity {name}: {value:.3g}")
