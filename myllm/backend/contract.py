"""What a backend provides to the core: typed Protocols, and the `Backend` that bundles them.

The core (`myllm/`) knows no framework. Everything it asks of torch or MLX goes through these
interfaces, which each backend package implements once and exposes as `BACKEND` in its
`__init__.py` (see docs/architecture.md, "How to add a backend"). Framework values (tensors,
arrays, devices, KV caches) pass through the core as opaque `Any`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # annotations only: the protocols never touch these at run time
    from myllm.backend.precision import Precision
    from myllm.checkpoint.state import Checkpoint
    from myllm.config.settings import ModelConfig, TrainConfig


class Decoder(Protocol):
    """A model's last-position logits, with or without a KV cache: what the decoding loop calls."""

    max_seq_len: int

    def new_cache(self, batch_size: int) -> Any: ...

    def last_logits(self, tokens: np.ndarray, cache: Any | None) -> np.ndarray:
        """Logits [B, V] (float32 numpy) of the last position of tokens [B, T]."""
        ...


class Trainer(Protocol):
    """A model with its AdamW optimizer on one device (one rank of a data-parallel run).

    `compiled` says whether the training step runs compiled (MLX: mx.compile); the loop in
    myllm/train/loop.py decides when each method is called.
    """

    model: Any  # the framework's GPTModel; `model.config` is its ModelConfig
    rank: int
    world_size: int
    compiled: bool
    matmul_precision: str  # "float32", or "tf32" where float32 matmuls run in TF32 (GPUs)
    precision: Precision  # the resolved compute dtype and compile choice

    def describe_device(self) -> str: ...

    def versions(self) -> dict[str, str]: ...

    def to_device(self, batch: np.ndarray) -> Any: ...

    def train_step(
        self, x: np.ndarray, y: np.ndarray, lr: float, batch_rows: int | None = None, step: int = 0
    ) -> tuple[Any, Any]:
        """Optimizer step `step` (0-based); (loss, grad_norm) as device scalars, no host sync.

        Data parallel: x, y are this rank's shard of a global batch of `batch_rows` windows.
        Dropout masks are keyed by the seed, `step` and the global row (myllm/train/dropout.py):
        a resumed run passes the checkpoint's step and draws the masks it would have drawn.
        """
        ...

    def to_host(self, values: list[Any]) -> list[float]: ...

    def skipped_steps(self) -> int:
        """Steps skipped so far in the run because float16 gradients overflowed (0 at other
        dtypes); a resumed run continues the count from its checkpoint."""
        ...

    def evaluate(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> float: ...

    def max_over_ranks(self, value: int) -> int: ...

    def close(self) -> None: ...

    def decoder(self) -> Decoder: ...

    def checkpoint(self) -> Checkpoint: ...

    def load_checkpoint(self, checkpoint: Checkpoint) -> None: ...


class TrainerFactory(Protocol):
    """A backend's Trainer class; `train_config.compile` ("off") runs the step eagerly."""

    def __call__(self, model_config: ModelConfig, train_config: TrainConfig) -> Trainer: ...


class BenchOps(Protocol):
    """The timing operations `myllm bench` needs from a framework, around one Trainer."""

    rss_resettable: bool  # whether reset_peak_memory could reset the process's peak RSS

    def forward(self, ids: Any, cache: Any | None = None) -> Any:
        """Logits of the trainer's model for device token ids, no autograd."""
        ...

    def force(self, values: list[Any]) -> None:
        """Wait until `values` (and any queued work) are computed."""
        ...

    def force_training(self) -> None:
        """Wait until the last training steps' weights and optimizer state are computed."""
        ...

    def matmul_operands(self, shape: tuple[int, int, int], dtype: str) -> tuple[Any, Any]:
        """[m, k] and [k, n] operands in `dtype`, on the device."""
        ...

    def matmul(self, a: Any, b: Any) -> Any: ...

    def reset_peak_memory(self) -> None: ...

    def peak_memory_bytes(self) -> int: ...

    def memory_source(self) -> str: ...

    def gpu_name(self) -> str | None: ...

    def blas(self) -> str: ...


@dataclass(frozen=True)
class CheckpointFormat:
    """A checkpoint file format: bytes from a framework-free Checkpoint, and back from a file.

    `read` raises a UserError for a corrupt or unsafe file; myllm/checkpoint/ then validates
    the weights against the model config, whatever the format.
    """

    suffix: str  # the file extension that selects this format, e.g. ".pt"
    to_bytes: Callable[[Checkpoint], bytes]
    read: Callable[[Path], Checkpoint]


class DecoderLoader(Protocol):
    def __call__(
        self, checkpoint: Checkpoint, device_name: str = "auto", dtype: str = "float32"
    ) -> Decoder: ...


class BenchOpsFactory(Protocol):
    def __call__(self, trainer: Any) -> BenchOps: ...


@dataclass(frozen=True)
class Backend:
    """One backend: everything the core uses from it, built once in its package's __init__.py."""

    name: str
    Trainer: TrainerFactory
    load_decoder: DecoderLoader  # a Decoder holding a checkpoint's weights, on a device
    BenchOps: BenchOpsFactory
    checkpoint_format: CheckpointFormat  # the format the backend writes its runs in

    @property
    def checkpoint_suffix(self) -> str:
        return self.checkpoint_format.suffix
