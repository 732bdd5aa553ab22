"""MLX's TF32 switch, set before mlx.core is imported (this module imports nothing from mlx).

MLX computes float32 matmuls in TF32 on CUDA, and in its reduced-precision NAX kernels on the
newest Apple GPUs, unless MLX_ENABLE_TF32=0; it reads the variable once per process, at its first
GPU matmul. torch keeps float32 matmuls in float32. myllm makes float32 mean float32 on both,
unless MYLLM_TF32 (or `--tf32`) asks for TF32.
"""

from __future__ import annotations

import os

from myllm.backend.precision import tf32_from_environment

TF32_ENV = "MLX_ENABLE_TF32"


def set_tf32_environment() -> None:
    """MLX_ENABLE_TF32 from MYLLM_TF32 (unset: 0), for MLX to read at its first GPU matmul."""
    os.environ[TF32_ENV] = "1" if tf32_from_environment() else "0"
