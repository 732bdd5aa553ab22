"""One training step, evaluation and checkpoint state for the torch GPT.

The loop around it (schedule, logging, evaluation cadence, checkpoint files) is shared by both
backends and lives in myllm/train/loop.py; how a batch is cut into micro-batches and shards, in
myllm/data/accumulation.py.
"""

from __future__ import annotations

import contextlib
from functools import partial

import numpy as np
import torch

from myllm.checkpoint.state import Checkpoint, LossScaleState, OptimizerState
from myllm.config.settings import ModelConfig, TrainConfig
from myllm.data.accumulation import BatchShares, evaluation_shards, step_batches
from myllm.train.dropout import step_keys
from myllm.train.init import initial_weights
from myllm_torch.device import describe_device, resolve_device, set_matmul_precision
from myllm_torch.distributed import (
    all_reduce_max,
    all_reduce_sum,
    batch_share,
    data_parallel,
    finish_together,
    init_distributed,
    rank_device,
)
from myllm_torch.generate import Decoder, load_weights
from myllm_torch.model import GPTModel, loss_fn
from myllm_torch.precision import autocast, loss_scaler, resolve_precision


class Trainer:
    """A GPTModel with its AdamW optimizer on one device; one rank of many under torchrun."""

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig):
        self.train_config = train_config
        self.matmul_precision = set_matmul_precision(train_config.tf32)  # before any matmul
        self.device = rank_device(resolve_device(train_config.device))
        self.rank, self.world_size = init_distributed(self.device)
        self.model = GPTModel(model_config)
        load_weights(self.model, initial_weights(model_config, train_config.seed))  # as MLX's
        self.model.to(self.device)
        # Steps run through DDP when data parallel; self.model stays the plain GPTModel.
        self.parallel_model = self.model
        if self.world_size > 1:
            self.parallel_model = data_parallel(self.model, self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=train_config.lr,
            betas=(train_config.beta1, train_config.beta2),
            eps=train_config.eps,
            weight_decay=train_config.weight_decay,
        )
        # float32 master weights and AdamW state; the step computes in precision.dtype.
        self.precision = resolve_precision(train_config, self.device)
        self.scaler = loss_scaler(self.device, self.precision.dtype)
        self.skipped = torch.zeros((), dtype=torch.long, device=self.device)
        self.compiled = self.precision.compile
        # The step's forward and backward run through step_model; evaluation stays eager.
        self.step_model = self.parallel_model
        if self.compiled:
            self.step_model = torch.compile(self.parallel_model)
        # This rank's share of the global batch, made once per size; made on the device.
        self.batch_share = BatchShares(partial(batch_share, device=self.device))

    def describe_device(self) -> str:
        return describe_device(self.device)

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def to_device(self, batch: np.ndarray) -> torch.Tensor:
        """Token ids as int64 on the device.

        Non-blocking only from pinned memory to CUDA (the caching host allocator keeps the pinned
        block until the copy is done). A non-blocking copy to MPS from a temporary, such as this
        int64 cast, can be read after the temporary is freed: silently wrong ids.
        """
        ids = torch.from_numpy(batch).to(torch.long)
        if self.device.type == "cuda":
            return ids.pin_memory().to(self.device, non_blocking=True)
        return ids.to(self.device)

    def loss(self, model: torch.nn.Module, x, y, weight=None, keys=None):
        """The micro-batch's loss, computed in the compute dtype (autocast), times its `weight`
        when given; `keys` are its rows' dropout keys. The float16 loss scale is applied in
        backward (torch's GradScaler)."""
        with autocast(self.device, self.precision.dtype):
            loss = loss_fn(model, x, y, keys)
        return loss if weight is None else loss * weight

    def step(self, batches, share: torch.Tensor | None):
        """Forward and backward over the micro-batches [(x, y, weight, keys)], then one AdamW step.

        weight None: the one micro-batch is the whole batch. Data parallel: gradients are
        reduced once, in the last micro-batch's backward.
        """
        self.optimizer.zero_grad(set_to_none=True)
        loss = None  # this rank's batch mean, summed over the micro-batches
        for index, (x, y, weight, keys) in enumerate(batches):
            with self.reduce_gradients(index == len(batches) - 1):
                micro_loss = self.loss(self.step_model, x, y, weight, keys)
                loss = micro_loss.detach() if loss is None else loss + micro_loss.detach()
                if share is not None:  # DDP averages the ranks' gradients: weighted so, they
                    micro_loss = micro_loss * (share * self.world_size)  # are the global batch's
                self.backward(micro_loss)
        if share is not None:
            loss = all_reduce_sum(loss * share)
        if self.scaler is not None:
            return loss, self.scaled_optimizer_step()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.train_config.grad_clip
        )
        self.optimizer.step()
        return loss, grad_norm

    def reduce_gradients(self, last: bool):
        """DDP's all-reduce in this backward only for the last micro-batch (no_sync before).

        torch only: MLX has no DDP; its step averages the summed gradients once, at the end.
        """
        if self.world_size > 1 and not last:
            return self.parallel_model.no_sync()
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of `loss`, scaled by GradScaler in float16 (MLX: value_and_grad in step)."""
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()

    def scaled_optimizer_step(self) -> torch.Tensor:
        """float16: unscale, clip, and step unless a gradient overflowed (then the scale halves).

        A skipped step is counted, and its gradient norm reads 0: nothing was applied, and the
        training loop's non-finite check is for divergence, which shows in the loss.
        """
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.train_config.grad_clip
        )
        self.scaler.step(self.optimizer)  # skipped when a gradient is inf or nan
        self.scaler.update()
        overflowed = ~torch.isfinite(grad_norm)
        self.skipped += overflowed.long()
        return torch.where(overflowed, torch.zeros_like(grad_norm), grad_norm)

    def skipped_steps(self) -> int:
        """Steps skipped so far in this run (restored on resume): float16 gradients overflowed."""
        return int(self.skipped.item()) if self.scaler is not None else 0

    def train_step(
        self, x: np.ndarray, y: np.ndarray, lr: float, batch_rows: int | None = None, step=0
    ):
        """Optimizer step `step` at learning rate `lr`; (loss, grad_norm) without a host sync.

        Data parallel: x, y are this rank's shard of a global batch of `batch_rows` windows
        (None: the ranks sum their shard sizes, an all-reduce); the loss returned is the global
        batch's mean. `step` and the global rows key the dropout masks.
        """
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        share = self.batch_share(len(x), batch_rows) if self.world_size > 1 else None
        pieces = step_batches(x, y, self.train_config.grad_accum_steps, self.world_size)
        keys = self.dropout_keys(step, [len(x) for x, _, _ in pieces], batch_rows)
        batches = [
            (self.to_device(x), self.to_device(y), w, k)
            for (x, y, w), k in zip(pieces, keys, strict=True)
        ]
        return self.step(batches, share)

    def dropout_keys(self, step: int, micro_rows: list[int], batch_rows: int | None) -> list:
        """Each micro-batch's dropout keys [rows, sites, 2] as int32 on the device (the same
        bits as the core's uint32); None each without dropout. batch_rows None: even shards."""
        if not self.model.dropout.rule.active:
            return [None] * len(micro_rows)
        shard = (batch_rows or sum(micro_rows) * self.world_size, self.rank, self.world_size)
        layers = self.model.config.n_layers
        keys = step_keys(self.train_config.seed, step, layers, micro_rows, shard)
        return [torch.from_numpy(k.view(np.int32)).to(self.device) for k in keys]

    def to_host(self, values: list) -> list[float]:
        """Scalars from train_step as Python floats (the one host sync, at logging time)."""
        return torch.stack(values).tolist() if values else []

    @torch.inference_mode()
    def evaluate(self, batches) -> float:
        """Mean cross-entropy over the windows of `batches`, dropout off; ranks split each batch."""
        self.model.eval()
        total, count = torch.zeros((), device=self.device), 0
        for x, y in evaluation_shards(batches, self.rank, self.world_size):
            loss = self.loss(self.model, self.to_device(x), self.to_device(y))  # eager, no DDP
            total += loss.float() * len(x)
            count += len(x)
        if self.world_size > 1:
            total_and_count = torch.stack([total, torch.tensor(float(count), device=self.device)])
            total, count = all_reduce_sum(total_and_count).tolist()
        return float(total) / count

    def max_over_ranks(self, value: int) -> int:
        """The largest `value` over all ranks: how data-parallel ranks agree on when to stop."""
        if self.world_size == 1:
            return value
        return int(all_reduce_max(torch.tensor(value, device=self.device)).item())

    def close(self) -> None:
        """The run is over: data-parallel ranks wait for each other, then leave together."""
        if self.world_size > 1:
            self.parallel_model = self.model  # DDP holds the process group: let it go first
            finish_together()

    def decoder(self) -> Decoder:
        return Decoder(self.model, self.precision.decode_dtype)

    def checkpoint(self) -> Checkpoint:
        """Weights and AdamW moments as a framework-free Checkpoint.

        No RNG state: dropout masks are a function of (seed, step, row), so resume is exact
        without one."""
        named = dict(self.model.named_parameters())
        weights = {name: p.detach().cpu().numpy().copy() for name, p in named.items()}
        optimizer = None
        states = {name: self.optimizer.state[p] for name, p in named.items()}
        if all(states.values()):
            optimizer = OptimizerState(
                step=int(states["token_embedding.weight"]["step"]),
                exp_avg={n: s["exp_avg"].cpu().numpy().copy() for n, s in states.items()},
                exp_avg_sq={n: s["exp_avg_sq"].cpu().numpy().copy() for n, s in states.items()},
            )
        loss_scale = None
        if self.scaler is not None:
            scaler = self.scaler.state_dict()
            loss_scale = LossScaleState(
                float(scaler["scale"]), int(scaler["_growth_tracker"]), self.skipped_steps()
            )
        return Checkpoint(self.model.config, weights, optimizer=optimizer, loss_scale=loss_scale)

    def load_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Restore weights, and the optimizer state when the checkpoint has it (an older
        checkpoint's RNG state is not needed: see checkpoint)."""
        load_weights(self.model, checkpoint.weights)
        named = dict(self.model.named_parameters())
        if checkpoint.optimizer is not None:
            opt = checkpoint.optimizer
            state = {
                index: {
                    "step": torch.tensor(float(opt.step)),
                    "exp_avg": torch.from_numpy(opt.exp_avg[name].copy()).to(self.device),
                    "exp_avg_sq": torch.from_numpy(opt.exp_avg_sq[name].copy()).to(self.device),
                }
                for index, name in enumerate(named)
            }
            groups = self.optimizer.state_dict()["param_groups"]
            self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        if self.scaler is not None and checkpoint.loss_scale is not None:
            saved = checkpoint.loss_scale  # a float16 run's; another dtype's run has none
            scaler = self.scaler.state_dict()
            scaler.update(scale=saved.scale, _growth_tracker=saved.good_steps)
            self.scaler.load_state_dict(scaler)
            self.skipped.fill_(saved.skipped_steps)
