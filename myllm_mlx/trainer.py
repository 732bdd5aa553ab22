"""One training step, evaluation and checkpoint state for the MLX GPT.

The loop around it (schedule, logging, evaluation cadence, checkpoint files) is shared by both
backends and lives in myllm/train/loop.py; how a batch is cut into micro-batches and shards, in
myllm/data/accumulation.py.
"""

from __future__ import annotations

from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map

from myllm.checkpoint.state import Checkpoint, LossScaleState, OptimizerState
from myllm.config.settings import ModelConfig, TrainConfig
from myllm.data.accumulation import BatchShares, evaluation_shards, step_batches
from myllm.train.dropout import step_keys
from myllm.train.init import initial_weights
from myllm_mlx.blas import blas_in_use
from myllm_mlx.device import describe_device, resolve_device, set_matmul_precision
from myllm_mlx.distributed import (
    all_reduce_max,
    all_reduce_sum,
    average_gradients,
    batch_share,
    finish_together,
    init_distributed,
    rank_device,
)
from myllm_mlx.generate import Decoder, load_weights
from myllm_mlx.model import GPTModel, loss_fn
from myllm_mlx.precision import LossScale, keep_if, loss_in_dtype, resolve_precision


class Trainer:
    """A GPTModel with its AdamW optimizer on one device; one rank of many under mlx.launch."""

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig):
        self.train_config = train_config
        self.matmul_precision = set_matmul_precision(train_config.tf32)  # before any matmul
        self.device = rank_device(resolve_device(train_config.device))
        self.rank, self.world_size = init_distributed(self.device)
        self.model = GPTModel(model_config)
        load_weights(self.model, initial_weights(model_config, train_config.seed))  # as torch's
        # No DDP wrapper in MLX: step() averages the gradients itself when data parallel.
        # bias_correction=True: torch's AdamW corrects both moments, MLX's does not by default.
        self.optimizer = optim.AdamW(
            learning_rate=train_config.lr,
            betas=[train_config.beta1, train_config.beta2],
            eps=train_config.eps,
            weight_decay=train_config.weight_decay,
            bias_correction=True,
        )
        self.optimizer.init(self.model.trainable_parameters())
        mx.eval(self.model.parameters(), self.optimizer.state)
        # float32 master weights and AdamW state; the step computes in precision.dtype.
        self.precision = resolve_precision(train_config, self.device)
        self.loss_scale = LossScale() if self.precision.dtype == "float16" else None
        self.loss_and_grad = nn.value_and_grad(self.model, self.loss)
        # The whole step (forward, backward, clip, AdamW) is traced once per batch shape and
        # fused; the state it reads and writes is declared so the compiled graph stays pure.
        # --compile off runs the same step eagerly (the tests compare the two).
        self.state = [self.model.state, self.optimizer.state]  # no RNG: dropout keys are inputs
        if self.loss_scale is not None:
            self.state.append(self.loss_scale.state)
        self.compiled = self.precision.compile
        self.compiled_step = self.step
        if self.compiled:
            self.compiled_step = mx.compile(self.step, inputs=self.state, outputs=self.state)
        # Evaluation too: one traced, fused graph per batch shape, reading the current weights.
        self.compiled_loss = mx.compile(partial(self.loss, self.model), inputs=self.model.state)
        # This rank's share of the global batch, made once per size; MLX has no device to name.
        self.batch_share = BatchShares(batch_share)
        self.in_flight: list[mx.array] | None = None  # the last step's outputs, on a GPU

    def describe_device(self) -> str:
        return describe_device(self.device)

    def versions(self) -> dict[str, str]:
        # Unlike torch's (fixed by its build), MLX's CPU BLAS is chosen at import: say which.
        return {"mlx": mx.__version__, "blas": blas_in_use()}

    def to_device(self, batch: np.ndarray) -> mx.array:
        return mx.array(batch.astype(np.int32))  # unified memory: no copy to a device

    def loss(self, model: GPTModel, x, y, weight=None, scale=None, keys=None):
        """The differentiated loss, in the compute dtype, times the micro-batch's `weight` when
        given; with a float16 loss `scale`, (loss * scale, loss): the first is differentiated.
        `keys` are the micro-batch rows' dropout keys."""
        if self.precision.low:
            loss = loss_in_dtype(model, x, y, self.precision.dtype, keys)
        else:
            loss = loss_fn(model, x, y, keys)
        if weight is not None:
            loss = loss * weight
        return loss if scale is None else (loss * scale, loss)

    def step(self, batches, share: mx.array | None):
        """Forward and backward over the micro-batches [(x, y, weight, keys)], then one AdamW step.

        weight None: the one micro-batch is the whole batch. Data parallel: gradients are
        averaged once, after the last micro-batch.
        """
        loss, grads = None, None  # this rank's batch mean and its gradients, summed
        scale = self.loss_scale.scale if self.loss_scale is not None else None
        for x, y, weight, keys in batches:
            value, micro_grads = self.loss_and_grad(self.model, x, y, weight, scale, keys)
            micro_loss = value if scale is None else value[1]
            loss = micro_loss if loss is None else loss + micro_loss
            grads = micro_grads if grads is None else tree_map(mx.add, grads, micro_grads)
        if share is not None:  # the ranks' gradients, weighted so, are the global batch's
            grads = average_gradients(grads, share, self.world_size)
            loss = all_reduce_sum(loss * share)
        if self.loss_scale is not None:
            return loss, self.scaled_optimizer_step(grads)
        grads, grad_norm = optim.clip_grad_norm(grads, self.train_config.grad_clip)
        self.optimizer.update(self.model, grads)
        return loss, grad_norm

    def scaled_optimizer_step(self, grads) -> mx.array:
        """float16: unscale, clip, and step unless a gradient overflowed (then the scale halves).

        A skipped step is counted, and its gradient norm reads 0: nothing was applied, and the
        training loop's non-finite check is for divergence, which shows in the loss.
        """
        grads, finite = self.loss_scale.unscale(grads)
        grads, grad_norm = optim.clip_grad_norm(grads, self.train_config.grad_clip)
        old_parameters = self.model.trainable_parameters()
        old_state = tree_map(lambda value: value, self.optimizer.state)  # new containers
        self.optimizer.update(self.model, grads)
        # The compiled step has no branches: a skipped step restores what the update changed.
        self.model.update(keep_if(finite, self.model.trainable_parameters(), old_parameters))
        for key, value in keep_if(finite, self.optimizer.state, old_state).items():
            self.optimizer.state[key] = value
        self.loss_scale.update(finite)
        return mx.where(finite, grad_norm, 0.0)

    def skipped_steps(self) -> int:
        """Steps skipped so far in this run (restored on resume): float16 gradients overflowed."""
        if self.loss_scale is None:
            return 0
        return int(self.loss_scale.state["skipped_steps"].item())

    def train_step(
        self, x: np.ndarray, y: np.ndarray, lr: float, batch_rows: int | None = None, step=0
    ):
        """Optimizer step `step` at learning rate `lr`; (loss, grad_norm) as MLX scalars.

        Data parallel: x, y are this rank's shard of a global batch of `batch_rows` windows
        (None: the ranks sum their shard sizes, an all-reduce); the loss returned is the global
        batch's mean. `step` and the global rows key the dropout masks.
        """
        self.model.train()
        self.optimizer.learning_rate = lr
        share = self.batch_share(len(x), batch_rows) if self.world_size > 1 else None
        pieces = step_batches(x, y, self.train_config.grad_accum_steps, self.world_size)
        keys = self.dropout_keys(step, [len(x) for x, _, _ in pieces], batch_rows)
        # The weight as an array: a Python float would be a constant of the compiled graph.
        batches = [
            (self.to_device(x), self.to_device(y), None if w is None else mx.array(w), k)
            for (x, y, w), k in zip(pieces, keys, strict=True)
        ]
        loss, grad_norm = self.compiled_step(batches, share)
        if self.device.type == mx.gpu:
            # Queue this step and wait only for the one before: the host builds the next step
            # while the GPU runs this one, and at most two steps are ever in flight.
            mx.async_eval(self.state, loss, grad_norm)
            if self.in_flight is not None:
                mx.eval(self.in_flight)
            self.in_flight = [loss, grad_norm]
        else:
            mx.eval(self.state, loss, grad_norm)  # MLX is lazy: bound the graph to one step
        return loss, grad_norm

    def dropout_keys(self, step: int, micro_rows: list[int], batch_rows: int | None) -> list:
        """Each micro-batch's dropout keys [rows, sites, 2] as uint32 arrays (inputs of the
        compiled step, not constants); None each without dropout. batch_rows None: even shards."""
        if not self.model.dropout.rule.active:
            return [None] * len(micro_rows)
        shard = (batch_rows or sum(micro_rows) * self.world_size, self.rank, self.world_size)
        layers = self.model.config.n_layers
        keys = step_keys(self.train_config.seed, step, layers, micro_rows, shard)
        return [mx.array(k) for k in keys]

    def to_host(self, values: list) -> list[float]:
        """Scalars from train_step as Python floats."""
        return mx.stack(values).tolist() if values else []

    def evaluate(self, batches) -> float:
        """Mean cross-entropy over the windows of `batches`, dropout off; ranks split each batch."""
        self.model.eval()
        total, count = mx.array(0.0), 0
        for x, y in evaluation_shards(batches, self.rank, self.world_size):
            total = total + self.compiled_loss(self.to_device(x), self.to_device(y)) * len(x)
            mx.eval(total)  # MLX is lazy: one batch's graph at a time
            count += len(x)
        if self.world_size > 1:
            total, count = all_reduce_sum(mx.stack([total, mx.array(float(count))])).tolist()
        return float(total) / count

    def max_over_ranks(self, value: int) -> int:
        """The largest `value` over all ranks: how data-parallel ranks agree on when to stop."""
        if self.world_size == 1:
            return value
        return int(all_reduce_max(mx.array(value)).item())

    def close(self) -> None:
        """The run is over: data-parallel ranks wait for each other, then leave together."""
        if self.world_size > 1:
            finish_together()

    def decoder(self) -> Decoder:
        return Decoder(self.model, self.precision.decode_dtype)

    def checkpoint(self) -> Checkpoint:
        """Weights and AdamW moments as a framework-free Checkpoint.

        No RNG state: dropout masks are a function of (seed, step, row), so resume is exact
        without one."""
        weights = {name: np.array(p) for name, p in tree_flatten(self.model.parameters())}
        flat_state = dict(tree_flatten(self.optimizer.state))
        optimizer = None
        step = int(self.optimizer.state["step"].item())
        if step > 0:
            optimizer = OptimizerState(
                step=step,
                exp_avg={name: np.array(flat_state[f"{name}.m"]) for name in weights},
                exp_avg_sq={name: np.array(flat_state[f"{name}.v"]) for name in weights},
            )
        loss_scale = None
        if self.loss_scale is not None:
            scale = self.loss_scale.state
            loss_scale = LossScaleState(
                float(scale["scale"].item()), int(scale["good_steps"].item()), self.skipped_steps()
            )
        return Checkpoint(self.model.config, weights, optimizer=optimizer, loss_scale=loss_scale)

    def load_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Restore weights, and the optimizer state when the checkpoint has it (an older
        checkpoint's RNG state is not needed: see checkpoint).

        The state is updated in place: the compiled step holds references to these containers.
        """
        load_weights(self.model, checkpoint.weights)
        if checkpoint.optimizer is not None:
            opt = checkpoint.optimizer
            self.optimizer.state["step"] = mx.array(opt.step, dtype=mx.uint64)
            for name in checkpoint.weights:
                moments = parameter_state(self.optimizer.state, name)
                moments["m"] = mx.array(opt.exp_avg[name])
                moments["v"] = mx.array(opt.exp_avg_sq[name])
        if self.loss_scale is not None and checkpoint.loss_scale is not None:
            saved = checkpoint.loss_scale  # a float16 run's; another dtype's run has none
            scale = self.loss_scale.state
            scale["scale"] = mx.array(saved.scale, dtype=scale["scale"].dtype)
            scale["good_steps"] = mx.array(saved.good_steps, dtype=scale["good_steps"].dtype)
            scale["skipped_steps"] = mx.array(
                saved.skipped_steps, dtype=scale["skipped_steps"].dtype
            )
        mx.eval(self.state)


def parameter_state(tree, name: str) -> dict:
    """The optimizer's per-parameter dict for a canonical name like blocks.0.ln1.weight."""
    for part in name.split("."):
        tree = tree[int(part)] if isinstance(tree, list) else tree[part]
    return tree
