"""The TF32 setting shared by both backends: float32 means float32 unless asked otherwise.

`myllm train --tf32` (or MYLLM_TF32=1) lets float32 matmuls run in TF32 on GPUs that have it.
MLX must see its own switch before its first GPU matmul, so myllm_mlx reads MYLLM_TF32 when it
is imported; the trainers then apply TrainConfig.tf32.
"""

from __future__ import annotations

import os

from myllm.errors import UserError

TF32_ENV = "MYLLM_TF32"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


def tf32_from_environment() -> bool:
    """MYLLM_TF32 as a bool (unset: False); a value that is neither yes nor no is a UserError."""
    value = os.environ.get(TF32_ENV, "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise UserError(f"{TF32_ENV}={value!r} is not a yes/no value: set it to 1 or 0")
