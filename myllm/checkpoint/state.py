"""The framework-free checkpoint: canonical parameter names and what a run's state holds.

Both backends hand the core a `Checkpoint` (numpy arrays under canonical names); the file
formats (`myllm.checkpoint.io`) only change the container. See docs/architecture.md,
"Checkpoints".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from myllm.config.settings import ModelConfig

FORMAT_VERSION = 1
TIED_NAMES = {"lm_head.weight": "token_embedding.weight"}  # stored once, tied again on load
OPTIMIZER_PREFIX = "optimizer."
RNG_PREFIX = "rng."
RNG_DTYPES = {"torch": np.uint8}  # torch.get_rng_state(); other backends: any integer array


def parameter_count(config: ModelConfig) -> int:
    """Parameters of the GPT, from its canonical shapes (lm_head is tied to the token embedding,
    so counted once): the one count that presets, the memory estimate and the FLOP formula use."""
    return sum(math.prod(shape) for shape in parameter_shapes(config).values())


def parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Canonical parameter names -> shapes, in the order of torch's model.parameters()."""
    d, f = config.d_model, config.d_ff
    shapes: dict[str, tuple[int, ...]] = {
        "token_embedding.weight": (config.vocab_size, d),
        "position_embedding.weight": (config.max_seq_len, d),
    }
    for i in range(config.n_layers):
        block = f"blocks.{i}."
        shapes.update(
            {
                block + "attention.W_q.weight": (d, d),
                block + "attention.W_k.weight": (d, d),
                block + "attention.W_v.weight": (d, d),
                block + "attention.W_o.weight": (d, d),
                block + "attention.W_o.bias": (d,),
                block + "feed_forward.linear1.weight": (f, d),
                block + "feed_forward.linear1.bias": (f,),
                block + "feed_forward.linear2.weight": (d, f),
                block + "feed_forward.linear2.bias": (d,),
                block + "ln1.weight": (d,),
                block + "ln1.bias": (d,),
                block + "ln2.weight": (d,),
                block + "ln2.bias": (d,),
            }
        )
    shapes["ln_final.weight"] = (d,)
    shapes["ln_final.bias"] = (d,)
    return shapes


@dataclass
class OptimizerState:
    """AdamW moments under canonical names, and the number of steps taken."""

    step: int
    exp_avg: dict[str, np.ndarray]
    exp_avg_sq: dict[str, np.ndarray]


@dataclass
class TrainingState:
    """Where a run stands. The sampler's position is `step` (its order depends only on the seed)."""

    step: int = 0
    epoch: int = 0
    loss: float | None = None
    best_val_loss: float | None = None
    # A signal stopped the run before the evaluation due at `step` finished: a resumed run does it
    # first, reporting `last_train_loss` (the mean train loss of the log window before it).
    evaluation_pending: bool = False
    last_train_loss: float | None = None


@dataclass
class LossScaleState:
    """float16's dynamic loss scale: the scale, good steps in a row since it last grew or was
    halved, and the steps skipped so far because gradients overflowed."""

    scale: float
    good_steps: int
    skipped_steps: int


@dataclass
class Checkpoint:
    """Everything a backend needs to sample from, or exactly resume, a run."""

    model_config: ModelConfig
    weights: dict[str, np.ndarray]
    training: TrainingState = field(default_factory=TrainingState)
    train_config: dict[str, Any] | None = None
    optimizer: OptimizerState | None = None
    rng: dict[str, np.ndarray] = field(default_factory=dict)  # backend name -> its RNG state
    # Tensor name -> checksum, as read from the file (None: written before checksums existed).
    # write_checkpoint computes them afresh; read_checkpoint verifies them.
    checksums: dict[str, str] | None = None
    loss_scale: LossScaleState | None = None  # float16 runs only


def checkpoint_tensors(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    """Every array of `checkpoint` under its safetensors name, the key of its checksum."""
    tensors = dict(checkpoint.weights)
    if checkpoint.optimizer is not None:
        for name, array in checkpoint.optimizer.exp_avg.items():
            tensors[f"{OPTIMIZER_PREFIX}exp_avg.{name}"] = array
        for name, array in checkpoint.optimizer.exp_avg_sq.items():
            tensors[f"{OPTIMIZER_PREFIX}exp_avg_sq.{name}"] = array
    for backend, state in checkpoint.rng.items():
        tensors[RNG_PREFIX + backend] = state
    return tensors
