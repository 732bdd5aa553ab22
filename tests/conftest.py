"""Fixtures shared by the unit tests: a small real text file, each backend by name."""

from __future__ import annotations

import os

# Tiny models run fastest on one thread; on a shared 2-core machine two threads spin on each
# other. Set before torch and OpenBLAS load: this process and every `myllm` it starts use one.
os.environ.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})

# Import order matters on Linux CPU: torch first (so its BLAS calls stay on its own MKL), then
# myllm_mlx, which loads the system OpenBLAS before anything imports mlx.core.
import torch  # isort: skip
import myllm_mlx  # noqa: F401  # isort: skip


from pathlib import Path

import pytest

from myllm.backend.registry import load_backend
from tests.helpers import BACKENDS, sample_text


@pytest.fixture
def one_thread():
    """Torch in this process on one thread, like the subprocesses (helpers.ONE_THREAD_ENV)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_text(tmp_path: Path) -> Path:
    """700 characters: 20 training steps per epoch of the tiny two-epoch runs."""
    path = tmp_path / "small.txt"
    path.write_text(sample_text(700), encoding="utf-8")
    return path


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text(sample_text(), encoding="utf-8")
    return path


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend in turn (both are installed by `make test`)."""
    return load_backend(request.param)
