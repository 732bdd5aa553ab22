"""On-disk checkpoints: canonical parameter names, the formats, validation and safe loading.

Both backends hand this module a framework-free `Checkpoint` (numpy arrays under canonical names).
The format follows the file's extension: `.safetensors` is written here (numpy only, MLX's own
format); a backend's own format (torch's `.pt` dict of the reference) comes from the backend
registry. Conversion is then reading one format and writing the other: a change of container,
never a renaming guess. See docs/architecture.md, "Checkpoints".
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from myllm.atomic import atomic_write
from myllm.backends import load_backend, native_backend
from myllm.checksums import tensor_checksums, verify_checksums
from myllm.config import ModelConfig
from myllm.contract import CheckpointFormat
from myllm.errors import UserError

FORMAT_VERSION = 1
TIED_NAMES = {"lm_head.weight": "token_embedding.weight"}  # stored once, tied again on load
OPTIMIZER_PREFIX = "optimizer."
RNG_PREFIX = "rng."
RNG_DTYPES = {"torch": np.uint8}  # torch.get_rng_state(); other backends: any integer array


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


def checkpoint_format(path: Path) -> CheckpointFormat:
    """The format of `path` from its extension, or a UserError naming the known extensions.

    Safetensors needs no framework; another backend's format is that backend's to read and write.
    """
    name = native_backend(path)
    if path.suffix == SAFETENSORS.suffix:
        return SAFETENSORS
    return load_backend(name).checkpoint_format


def write_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` atomically in the format its extension names.

    Serialized in memory first: a failed disk write (disk full) is then a plain OSError, which
    atomic_write reports in one line, not an error from inside torch or safetensors.
    """
    path = Path(path)
    validate_weights(checkpoint.weights, checkpoint.model_config, path)
    checksums = tensor_checksums(checkpoint_tensors(checkpoint))
    checkpoint = dataclasses.replace(checkpoint, checksums=checksums)
    serialize = checkpoint_format(path).to_bytes
    atomic_write(path, lambda temp: temp.write_bytes(serialize(checkpoint)))


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate a checkpoint of either format; never runs code from the file."""
    path = Path(path)
    fmt = checkpoint_format(path)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} not found: pass the path of an existing checkpoint file"
        )
    checkpoint = fmt.read(path)
    validate_weights(checkpoint.weights, checkpoint.model_config, path)
    validate_extras(checkpoint, path)
    verify_checksums(checkpoint_tensors(checkpoint), checkpoint.checksums, path)
    return checkpoint


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


# --- safetensors (MLX's format; numpy only, so readable without MLX) ---


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
