"""The `.safetensors` checkpoint format: MLX's own, written with numpy (readable without MLX)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from myllm.backend.contract import CheckpointFormat
from myllm.checkpoint.state import (
    FORMAT_VERSION,
    OPTIMIZER_PREFIX,
    RNG_PREFIX,
    Checkpoint,
    OptimizerState,
    checkpoint_tensors,
)
from myllm.checkpoint.validation import (
    corrupt_checkpoint,
    loss_scale_metadata,
    stored_loss_scale,
    stored_model_config,
    stored_training_state,
    validate_weights,
)
from myllm.errors import UserError


def _safetensors_bytes(checkpoint: Checkpoint) -> bytes:
    from safetensors.numpy import save

    tensors = checkpoint_tensors(checkpoint)
    optimizer_meta = None if checkpoint.optimizer is None else {"step": checkpoint.optimizer.step}
    meta = {
        "format_version": FORMAT_VERSION,
        "model_config": checkpoint.model_config.to_dict(),
        "train_config": checkpoint.train_config,
        "training": vars(checkpoint.training),
        "optimizer": optimizer_meta,
        "checksums": checkpoint.checksums,
        "loss_scale": loss_scale_metadata(checkpoint),
    }
    tensors = {name: np.ascontiguousarray(array) for name, array in tensors.items()}
    return save(tensors, metadata={"myllm": json.dumps(meta)})


def _read_safetensors(path: Path) -> Checkpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = json.loads((handle.metadata() or {}).get("myllm", "null"))
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
        if not isinstance(meta, dict):
            raise ValueError("no myllm metadata")
        model_config = stored_model_config(meta["model_config"], path)
        training = stored_training_state(meta.get("training", {}))
        loss_scale = stored_loss_scale(meta.get("loss_scale"))
        optimizer_step = None
        if meta.get("optimizer") is not None:
            optimizer_step = meta["optimizer"]["step"]
            if not isinstance(optimizer_step, int):
                raise TypeError(f"optimizer step {optimizer_step!r} is not an integer")
    except UserError:
        raise
    except Exception as error:  # safetensors raises its own error types for bad headers
        raise corrupt_checkpoint(path, error) from None
    weights, exp_avg, exp_avg_sq, rng = {}, {}, {}, {}
    for name, array in tensors.items():
        if name.startswith(OPTIMIZER_PREFIX + "exp_avg_sq."):
            exp_avg_sq[name.removeprefix(OPTIMIZER_PREFIX + "exp_avg_sq.")] = array
        elif name.startswith(OPTIMIZER_PREFIX + "exp_avg."):
            exp_avg[name.removeprefix(OPTIMIZER_PREFIX + "exp_avg.")] = array
        elif name.startswith(RNG_PREFIX):
            rng[name.removeprefix(RNG_PREFIX)] = array
        else:
            weights[name] = array
    optimizer = None
    if optimizer_step is not None:
        optimizer = OptimizerState(optimizer_step, exp_avg, exp_avg_sq)
        validate_weights(exp_avg, model_config, path)
        validate_weights(exp_avg_sq, model_config, path)
    return Checkpoint(
        model_config=model_config,
        weights=weights,
        training=training,
        train_config=meta.get("train_config"),
        optimizer=optimizer,
        rng=rng,
        checksums=meta.get("checksums"),
        loss_scale=loss_scale,
    )


SAFETENSORS = CheckpointFormat(".safetensors", _safetensors_bytes, _read_safetensors)
