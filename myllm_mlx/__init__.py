"""The MLX port of myllm: same model, same parameter names, native MLX (DESIGN §2, §6)."""

from myllm_mlx.blas import load_system_blas
from myllm_mlx.precision import set_tf32_environment

load_system_blas()  # before anything imports mlx.core: a BLAS loaded later cannot be swapped in
set_tf32_environment()  # float32 matmuls in float32 on a GPU unless MYLLM_TF32 says otherwise

BACKEND_NAME = "mlx"
CHECKPOINT_SUFFIX = ".safetensors"
