"""MLX's side of `myllm bench`: mx.eval forces the lazy graph, mx.get_peak_memory, mx.matmul."""

from __future__ import annotations

import mlx.core as mx

from myllm.bench.machine import reset_process_peak_rss
from myllm_mlx.blas import blas_in_use
from myllm_mlx.generate import forward_with
from myllm_mlx.precision import DTYPES, cast_parameters
from myllm_mlx.trainer import Trainer


class BenchOps:
    """The timing operations of the MLX backend around one Trainer (myllm/backend/contract.py)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.rss_resettable = False
        self.low_parameters = None  # MLX has no autocast: low-dtype weights swapped in
        if trainer.precision.low:
            self.low_parameters = cast_parameters(
                trainer.model.parameters(), trainer.precision.dtype
            )

    def forward(self, ids: mx.array, cache=None) -> mx.array:
        """Logits of the model (MLX records no tape: a plain call is the no-grad forward).

        MLX has no autocast: at a low dtype, low-dtype copies of the weights are swapped in."""
        return forward_with(self.trainer.model, self.low_parameters, ids, cache)

    def force(self, values: list) -> None:
        mx.eval(values)

    def force_training(self) -> None:
        """Evaluate the updated weights and optimizer state too, not only the losses."""
        mx.eval(self.trainer.model.parameters(), self.trainer.optimizer.state)

    def matmul_operands(self, shape: tuple[int, int, int], dtype: str) -> tuple[mx.array, mx.array]:
        """[m, k] and [k, n] operands in `dtype` (what the low-dtype step feeds its matmuls)."""
        m, k, n = shape
        keys = mx.random.split(mx.random.key(0))
        a, b = (
            mx.random.normal(size, key=key).astype(DTYPES[dtype])
            for size, key in zip(((m, k), (k, n)), keys, strict=True)
        )
        mx.eval(a, b)
        return a, b

    def matmul(self, a: mx.array, b: mx.array) -> mx.array:
        return mx.matmul(a, b)

    def reset_peak_memory(self) -> None:
        mx.reset_peak_memory()
        self.rss_resettable = reset_process_peak_rss()

    def peak_memory_bytes(self) -> int:
        return int(mx.get_peak_memory())

    def memory_source(self) -> str:
        return "mx.get_peak_memory (peak of MLX's allocator: weights, optimizer state, activations)"

    def gpu_name(self) -> str | None:
        if mx.default_device().type != mx.gpu:
            return None
        return str(mx.device_info().get("device_name", "GPU"))

    def blas(self) -> str:
        return blas_in_use()
