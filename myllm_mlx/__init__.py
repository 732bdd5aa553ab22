"""The MLX port of myllm: same model, same parameter names, native MLX (DESIGN §2, §6)."""

from myllm_mlx.blas import load_system_blas

load_system_blas()  # before anything imports mlx.core: a BLAS loaded later cannot be swapped in

BACKEND_NAME = "mlx"
CHECKPOINT_SUFFIX = ".safetensors"
