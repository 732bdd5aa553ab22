"""Fixtures shared by the unit tests: a small real text file, each backend by name."""

from __future__ import annotations

# Import order matters on Linux CPU: torch first (so its BLAS calls stay on its own MKL), then
# myllm_mlx, which loads the system OpenBLAS before anything imports mlx.core.
import torch  # noqa: F401  # isort: skip
import myllm_mlx  # noqa: F401  # isort: skip


from pathlib import Path

import pytest

from myllm.backends import load_backend
from tests.helpers import BACKENDS, sample_text


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text(sample_text(), encoding="utf-8")
    return path


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend in turn (both are installed by `make test`)."""
    return load_backend(request.param)
