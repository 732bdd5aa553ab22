"""The PyTorch reference backend of myllm: `BACKEND` is what the core uses of it."""

from myllm.backend.contract import Backend
from myllm_torch.bench_ops import BenchOps
from myllm_torch.checkpoint_format import FORMAT
from myllm_torch.generate import load_decoder
from myllm_torch.trainer import Trainer

BACKEND = Backend(
    name="torch",
    Trainer=Trainer,
    load_decoder=load_decoder,
    BenchOps=BenchOps,
    checkpoint_format=FORMAT,
)
