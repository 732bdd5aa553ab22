"""Checking what a checkpoint file holds: names, shapes, dtypes and stored metadata.

A damaged or foreign file is one `UserError` line ("corrupt checkpoint"), never a traceback.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from myllm.checkpoint.state import (
    RNG_DTYPES,
    Checkpoint,
    LossScaleState,
    TrainingState,
    parameter_shapes,
)
from myllm.config.settings import ModelConfig
from myllm.errors import UserError


def validate_weights(weights: dict[str, np.ndarray], config: ModelConfig, path: Path) -> None:
    """Names, shapes and dtype of `weights` must be those the model config implies."""
    expected = parameter_shapes(config)
    missing = [name for name in expected if name not in weights]
    unexpected = [name for name in weights if name not in expected]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise UserError(
            f"checkpoint {path} does not match its model config ({detail}): "
            "it is corrupt or not a myllm checkpoint"
        )
    for name, shape in expected.items():
        array = weights[name]
        if tuple(array.shape) != shape or array.dtype != np.float32:
            raise UserError(
                f"checkpoint {path}: {name} is {array.dtype}{list(array.shape)}, expected "
                f"float32{list(shape)}: it is corrupt or was written for another model config"
            )


def validate_extras(checkpoint: Checkpoint, path: Path) -> None:
    """What sits beside the weights: a train_config object, RNG states as integer arrays."""
    if checkpoint.train_config is not None and not isinstance(checkpoint.train_config, dict):
        raise corrupt_checkpoint(path, TypeError("train_config is not an object"))
    for name, state in checkpoint.rng.items():
        expected = RNG_DTYPES.get(name)
        if not np.issubdtype(state.dtype, np.integer) or expected not in (None, state.dtype):
            raise corrupt_checkpoint(path, TypeError(f"RNG state {name!r} is {state.dtype}"))


def stored_model_config(values: Any, path: Path) -> ModelConfig:
    """The stored model config; invalid values mean a corrupt file, not a bad command-line flag."""
    try:
        return ModelConfig.from_dict(values)
    except UserError as error:
        raise corrupt_checkpoint(path, error) from None


def stored_training_state(values: Any) -> TrainingState:
    """TrainingState from stored metadata; TypeError when fields are unknown or mistyped."""
    state = TrainingState(**values)
    counters_ok = all(isinstance(v, int) for v in (state.step, state.epoch))
    losses = (state.loss, state.best_val_loss, state.last_train_loss)
    losses_ok = all(v is None or isinstance(v, (int, float)) for v in losses)
    if not (counters_ok and losses_ok and isinstance(state.evaluation_pending, bool)):
        raise TypeError(f"training state {values} has values of the wrong type")
    return state


def stored_loss_scale(values: Any) -> LossScaleState | None:
    """LossScaleState from stored metadata (None: not a float16 run); TypeError when mistyped."""
    if values is None:
        return None
    state = LossScaleState(**values)
    counters = (state.good_steps, state.skipped_steps)
    counters_ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counters)
    scale_ok = isinstance(state.scale, (int, float)) and 0 < state.scale < math.inf
    if not (counters_ok and scale_ok):
        raise TypeError(f"loss scale {values} has values of the wrong type")
    return state


def loss_scale_metadata(checkpoint: Checkpoint) -> dict[str, Any] | None:
    return None if checkpoint.loss_scale is None else vars(checkpoint.loss_scale)


def corrupt_checkpoint(path: Path, error: BaseException) -> UserError:
    reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
    return UserError(
        f"checkpoint {path} could not be read ({reason}): it is truncated, corrupt "
        "or not a myllm checkpoint; use another file, e.g. best_model"
    )
