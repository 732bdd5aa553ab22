"""Mixed precision and compilation for the MLX backend: low-dtype compute, loss scaling, mx.compile.

The weights and AdamW state stay float32 (the master copy). MLX has no autocast: the loss
function casts the parameters to the low dtype before the forward, so every matmul runs in it and
the gradients flow back through the cast to the float32 masters. The logits are cast to float32
before the cross-entropy (torch's autocast does that itself), and MLX's fused LayerNorm and
attention accumulate their statistics in float32. float16 needs a loss scale (its range is
small); bfloat16 has float32's range and needs none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_map

from myllm.backend.precision import (
    MLX_CPU_BF16_SLOWDOWN,
    DeviceFacts,
    Precision,
    check_compile,
    resolve_dtypes,
)
from myllm.config.settings import TrainConfig

DTYPES = {"float32": mx.float32, "bfloat16": mx.bfloat16, "float16": mx.float16}

# torch.amp.GradScaler's defaults, so that both backends scale float16 losses alike.
INITIAL_SCALE = 2.0**16
GROWTH_INTERVAL = 2000


def device_facts(device: mx.Device) -> DeviceFacts:
    """bfloat16 is the fast path on MLX's GPUs (Metal, CUDA); its CPU backend has no fast one."""
    if device.type == mx.gpu:
        return DeviceFacts("gpu", True, "bfloat16 is the GPU's fast path")
    why = f"MLX's CPU bfloat16 matmul is ~{MLX_CPU_BF16_SLOWDOWN}x slower than float32"
    return DeviceFacts("cpu", False, why)


def resolve_precision(config: TrainConfig, device: mx.Device) -> Precision:
    """`auto` dtype per device (myllm.backend.precision); `auto` compile = on: MLX's compiled step
    is faster than its eager one on every device measured (it fuses the element-wise work)."""
    dtypes = resolve_dtypes(config.dtype, device_facts(device))
    compile_on = check_compile(config.compile) != "off"
    warning = None
    dtype = dtypes["dtype"]
    if dtype != "float32" and device.type == mx.cpu:
        # Warned, not refused: the numerics are right and CPU runs check them before a GPU run.
        warning = (
            f"MLX has no fast {dtype} matmul on a CPU (bfloat16 measured ~{MLX_CPU_BF16_SLOWDOWN}x "
            "slower than float32): use --dtype float32 on a CPU for speed"
        )
    return Precision(compile=compile_on, compiler="mx.compile", warning=warning, **dtypes)


def cast_parameters(parameters, dtype: str):
    """The floating-point parameters cast to `dtype` (a graph op: gradients flow back)."""
    low = DTYPES[dtype]
    return tree_map(
        lambda p: p.astype(low) if mx.issubdtype(p.dtype, mx.floating) else p, parameters
    )


@contextlib.contextmanager
def parameters_swapped_in(model: nn.Module, parameters) -> Iterator[None]:
    """The model computes with `parameters` (low-dtype copies) inside the block; None: its own.

    MLX has no autocast, so a low-dtype forward swaps the weights in. The float32 masters are
    back afterwards even when the block raises: a later step or checkpoint must never see (and
    save) the low-dtype copies.
    """
    if parameters is None:
        yield
        return
    masters = model.parameters()
    model.update(parameters)
    try:
        yield
    finally:
        model.update(masters)


def loss_in_dtype(model: nn.Module, x: mx.array, y: mx.array, dtype: str, keys=None) -> mx.array:
    """Mean cross-entropy with the forward computed in `dtype` and the loss in float32."""
    with parameters_swapped_in(model, cast_parameters(model.parameters(), dtype)):
        logits = model(x, keys=keys).astype(mx.float32)  # [B, T, vocab]
    return nn.losses.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="mean"
    )


class LossScale:
    """float16's dynamic loss scale, as torch.amp.GradScaler: halved when a gradient overflows
    (the step is then skipped), doubled after GROWTH_INTERVAL good steps in a row.

    Its state is arrays in a dict, so that the compiled step reads and writes it.
    """

    def __init__(self) -> None:
        self.state = {
            "scale": mx.array(INITIAL_SCALE),
            "good_steps": mx.array(0),
            "skipped_steps": mx.array(0),
        }

    @property
    def scale(self) -> mx.array:
        return self.state["scale"]

    def unscale(self, grads) -> tuple[object, mx.array]:
        """(gradients / scale, whether all are finite)."""
        grads = tree_map(lambda g: g / self.scale, grads)
        finite = mx.array(True)
        for _, g in tree_flatten(grads):
            finite = mx.logical_and(finite, mx.all(mx.isfinite(g)))
        return grads, finite

    def update(self, finite: mx.array) -> None:
        good = mx.where(finite, self.state["good_steps"] + 1, 0)
        grow = good >= GROWTH_INTERVAL
        scale = mx.where(finite, mx.where(grow, self.scale * 2.0, self.scale), self.scale * 0.5)
        self.state["scale"] = scale
        self.state["good_steps"] = mx.where(grow, 0, good)
        self.state["skipped_steps"] = self.state["skipped_steps"] + mx.where(finite, 0, 1)


def keep_if(condition: mx.array, new, old):
    """`new` where `condition`, else `old`, leaf by leaf (a skipped step undone in the graph)."""
    return tree_map(lambda n, o: mx.where(condition, n, o), new, old)
