"""torch's own checkpoint format: the reference's `.pt` dict, with torch AdamW's state layout.

Written with torch.save and read with torch.load(weights_only=True) only. The core reaches this
module through the backend registry by the file's `.pt` extension (myllm/checkpoint/).
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from myllm.backend.contract import CheckpointFormat
from myllm.checkpoint.state import (
    FORMAT_VERSION,
    TIED_NAMES,
    Checkpoint,
    OptimizerState,
    TrainingState,
    parameter_shapes,
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
from myllm.interop.torch_adamw import adamw_param_group


def torch_bytes(checkpoint: Checkpoint) -> bytes:
    """The reference's checkpoint dict, torch.save'd: weights, AdamW state, schedule, extras."""
    tensors = {name: torch.from_numpy(np.array(a)) for name, a in checkpoint.weights.items()}
    model_state = dict(tensors)
    for tied, source in TIED_NAMES.items():
        model_state[tied] = tensors[source]  # the same tensor: torch.save stores it once
    names = list(parameter_shapes(checkpoint.model_config))
    config = checkpoint.train_config or {}
    optimizer_state: dict[str, Any] = {"state": {}, "param_groups": []}
    if checkpoint.optimizer is not None:
        opt = checkpoint.optimizer
        optimizer_state["state"] = {
            index: {
                "step": torch.tensor(float(opt.step)),
                "exp_avg": torch.from_numpy(np.array(opt.exp_avg[name])),
                "exp_avg_sq": torch.from_numpy(np.array(opt.exp_avg_sq[name])),
            }
            for index, name in enumerate(names)
        }
        optimizer_state["param_groups"] = [adamw_param_group(config, len(names))]
    training = checkpoint.training
    payload = {
        "epoch": training.epoch,
        "model_state_dict": model_state,
        "optimizer_state_dict": optimizer_state,
        "scheduler_state_dict": {"last_epoch": training.step},
        "loss": training.loss,
        "model_config": checkpoint.model_config.to_dict(),
        "myllm": {
            "format_version": FORMAT_VERSION,
            "training": vars(training),
            "train_config": checkpoint.train_config,
            "optimizer_step": None if checkpoint.optimizer is None else checkpoint.optimizer.step,
            "rng": {k: torch.from_numpy(np.array(v)) for k, v in checkpoint.rng.items()},
            "loss_scale": loss_scale_metadata(checkpoint),
        },
        "myllm_checksums": checkpoint.checksums,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def read_torch(path: Path) -> Checkpoint:
    """The checkpoint in a .pt file, loaded with weights_only=True: the pickle may run no code."""
    payload = load_pt(path)
    try:
        model_config = stored_model_config(payload["model_config"], path)
        extra = payload.get("myllm", {})
        state = payload["model_state_dict"]
        weights = {
            name: tensor.detach().cpu().numpy()
            for name, tensor in state.items()
            if name not in TIED_NAMES
        }
        names = list(parameter_shapes(model_config))
        optimizer = None
        moments = payload.get("optimizer_state_dict", {}).get("state", {})
        if moments:
            step = extra.get("optimizer_step")
            optimizer = OptimizerState(
                step=int(step if step is not None else moments[0]["step"]),
                exp_avg={names[i]: m["exp_avg"].numpy() for i, m in moments.items()},
                exp_avg_sq={names[i]: m["exp_avg_sq"].numpy() for i, m in moments.items()},
            )
        training = (
            stored_training_state(extra["training"])
            if "training" in extra
            else TrainingState(epoch=int(payload.get("epoch", 0)), loss=payload.get("loss"))
        )
        rng = {k: v.numpy() for k, v in extra.get("rng", {}).items()}
        loss_scale = stored_loss_scale(extra.get("loss_scale"))
    except UserError:
        raise
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as error:
        raise corrupt_checkpoint(path, error) from None
    checkpoint = Checkpoint(
        model_config, weights, training, extra.get("train_config"), optimizer, rng
    )
    checkpoint.checksums = payload.get("myllm_checksums")
    checkpoint.loss_scale = loss_scale
    if optimizer is not None:
        validate_weights(optimizer.exp_avg, model_config, path)
        validate_weights(optimizer.exp_avg_sq, model_config, path)
    return checkpoint


def load_pt(path: Path) -> Any:
    """torch.load with weights_only=True: a pickle asking for any other global (which could run
    code) is refused, and a damaged file is one UserError line. Every .pt read goes through here,
    myllm's and nanoGPT's."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found: pass the path of an existing file")
    try:
        with warnings.catch_warnings():  # the refusal below says what is wrong, in one line
            warnings.simplefilter("ignore", UserWarning)  # e.g. a plain pickle's protocol
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        blocked = re.search(r"unsupported GLOBAL (\S+)", str(error))
        if blocked is None:
            raise corrupt_checkpoint(path, ValueError("not a torch checkpoint")) from None
        raise UserError(
            f"checkpoint {path} was refused: its pickle asks to call {blocked.group(1)}, which "
            "could run code; load only files you trust (a checkpoint holds only tensors)"
        ) from None
    except Exception as error:
        raise corrupt_checkpoint(path, error) from None


FORMAT = CheckpointFormat(".pt", torch_bytes, read_torch)
