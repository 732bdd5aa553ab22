"""The MLX port of myllm: same model, same parameter names, native MLX (DESIGN §2, §6)."""

from myllm_mlx.blas import load_system_blas
from myllm_mlx.kernel_cache import ensure_writable_kernel_cache

load_system_blas()  # before anything imports mlx.core: a BLAS loaded later cannot be swapped in
ensure_writable_kernel_cache()  # before MLX compiles a kernel into the temp directory

BACKEND_NAME = "mlx"
CHECKPOINT_SUFFIX = ".safetensors"
