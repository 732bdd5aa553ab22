"""How much memory a training step needs, estimated before anything is allocated.

A batch too large for the machine otherwise ends in a torch traceback ("can't allocate memory") or,
with MLX, in the kernel's OOM killer with no message at all. The estimate counts float32 values:
the weights, their gradients and AdamW's two moments, plus the activations the backward pass keeps.
It leaves out temporaries and the framework's own overhead, so it errs low: a step it refuses
cannot fit, while a step it accepts may still be tight.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from myllm.checkpoint.state import parameter_count
from myllm.config.settings import ModelConfig
from myllm.errors import UserError

BYTES_PER_FLOAT = 4  # float32 throughout
GIB = 1024**3


@dataclass
class StepMemory:
    """The estimate in bytes, in its parts."""

    parameters: int  # how many parameters the model has
    weights_and_optimizer: int  # weights, gradients, AdamW exp_avg and exp_avg_sq
    activations: int  # what the forward pass keeps for the backward pass

    @property
    def total(self) -> int:
        return self.weights_and_optimizer + self.activations


def activation_count(config: ModelConfig, batch_size: int, block_size: int) -> int:
    """Float values kept for the backward pass of one step on a [batch_size, block_size] batch.

    Per layer: the norms' inputs and outputs, q, k, v, the attention output and its projection,
    the residual sums and dropout masks (about 10 values per token and channel), the feed-forward
    hidden layer before and after its activation (2 * d_ff), and the attention scores and their
    softmax (2 * n_heads * block_size per token). Then the embeddings and the logits with their
    log-softmax and gradient (3 * vocab_size per token).
    """
    tokens = batch_size * block_size
    per_token_per_layer = 10 * config.d_model + 2 * config.d_ff + 2 * config.n_heads * block_size
    per_token = config.n_layers * per_token_per_layer + 2 * config.d_model + 3 * config.vocab_size
    return tokens * per_token


def estimate_step_memory(config: ModelConfig, batch_size: int, block_size: int) -> StepMemory:
    parameters = parameter_count(config)
    return StepMemory(
        parameters=parameters,
        weights_and_optimizer=4 * parameters * BYTES_PER_FLOAT,
        activations=activation_count(config, batch_size, block_size) * BYTES_PER_FLOAT,
    )


def physical_memory() -> int | None:
    """The machine's physical RAM in bytes, or None where the system does not say."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return total if total > 0 else None


def check_step_fits(
    config: ModelConfig, batch_size: int, block_size: int, limit: int | None
) -> StepMemory:
    """Refuse, in one line with both figures, a step that needs more than `limit` bytes.

    `limit` None (unknown, or an accelerator whose memory the core cannot see) checks nothing.
    """
    estimate = estimate_step_memory(config, batch_size, block_size)
    if limit is not None and estimate.total > limit:
        raise UserError(
            f"a training step needs at least {estimate.total / GIB:,.1f} GiB "
            f"({estimate.activations / GIB:,.1f} GiB of activations for --batch-size "
            f"{batch_size} x --block-size {block_size}, {estimate.weights_and_optimizer / GIB:,.1f}"
            f" GiB of weights and AdamW state) but this machine has {limit / GIB:,.1f} GiB: "
            f"lower --batch-size to at most {largest_batch_that_fits(config, block_size, limit)}"
            " or lower --block-size"
        )
    return estimate


def largest_batch_that_fits(config: ModelConfig, block_size: int, limit: int) -> int:
    """The largest batch size whose step estimate stays within `limit` bytes (0 when none)."""
    fixed = estimate_step_memory(config, 0, block_size).total
    per_sample = activation_count(config, 1, block_size) * BYTES_PER_FLOAT
    return max(0, math.floor((limit - fixed) / per_sample))
