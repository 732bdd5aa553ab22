"""The MLX port of myllm (same model, same parameter names): `BACKEND` is what the core uses."""

from myllm_mlx.blas import load_system_blas
from myllm_mlx.kernel_cache import ensure_writable_kernel_cache
from myllm_mlx.tf32 import set_tf32_environment

load_system_blas()  # before anything imports mlx.core: a BLAS loaded later cannot be swapped in
set_tf32_environment()  # float32 matmuls in float32 on a GPU unless MYLLM_TF32 says otherwise
ensure_writable_kernel_cache()  # before MLX compiles a kernel into the temp directory

# isort: split
from myllm.backend.contract import Backend  # noqa: E402
from myllm.checkpoint.safetensors_format import SAFETENSORS  # noqa: E402
from myllm_mlx.bench_ops import BenchOps  # noqa: E402
from myllm_mlx.generate import load_decoder  # noqa: E402
from myllm_mlx.trainer import Trainer  # noqa: E402

BACKEND = Backend(
    name="mlx",
    Trainer=Trainer,
    load_decoder=load_decoder,
    BenchOps=BenchOps,
    checkpoint_format=SAFETENSORS,  # safetensors needs no framework: the core reads and writes it
)
