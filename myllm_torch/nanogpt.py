"""nanoGPT's ckpt.pt <-> a myllm Checkpoint (torch only: nanoGPT is a PyTorch format).

nanoGPT's GPT is myllm's architecture: pre-norm blocks, exact GELU (nn.GELU()), attention scaled
by 1/sqrt(head_dim), learned positions, lm_head tied to wte, LayerNorm eps 1e-5, d_ff 4 * n_embd.
Its nn.Linear weights are [out, in] like ours. The differences are names and two details:
- `c_attn` is W_q, W_k and W_v stacked on the output axis (nanoGPT splits its output q, k, v);
- with bias=False nanoGPT has no biases at all, which is myllm with every bias zero; with
  bias=True it also has a bias on q, k and v, which myllm has not (refused unless it is zero).
"""

from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from myllm.atomic import atomic_write
from myllm.checkpoint.state import Checkpoint, OptimizerState, TrainingState, parameter_shapes
from myllm.config.settings import ModelConfig, TrainConfig
from myllm.errors import UserError
from myllm_torch.checkpoint_format import adamw_param_group

COMPILED_PREFIX = "_orig_mod."  # torch.compile's wrapper, kept in the keys of a compiled run
NO_BEST_LOSS = 1e9  # nanoGPT's "no validation yet"
# nanoGPT layer name -> myllm layer name, per block and at the top.
BLOCK_NAMES = {
    "ln_1": "ln1",
    "attn.c_proj": "attention.W_o",
    "ln_2": "ln2",
    "mlp.c_fc": "feed_forward.linear1",
    "mlp.c_proj": "feed_forward.linear2",
}
# nanoGPT train.py config key -> TrainConfig field (the rest has no myllm counterpart).
CONFIG_NAMES = {
    "learning_rate": "lr",
    "beta1": "beta1",
    "beta2": "beta2",
    "weight_decay": "weight_decay",
    "grad_clip": "grad_clip",
    "batch_size": "batch_size",
    "block_size": "block_size",
    "warmup_iters": "warmup_steps",
    "max_iters": "max_steps",
    "eval_interval": "eval_interval",
    "eval_iters": "eval_iters",
    "log_interval": "log_interval",
}


def is_nanogpt_checkpoint(path: Path) -> bool:
    """True when `path` holds nanoGPT's dict (model_args and model), not myllm's."""
    payload = _load(path)
    return isinstance(payload, dict) and "model_args" in payload and "model" in payload


# --- nanoGPT -> myllm ---


def read_nanogpt(path: Path) -> Checkpoint:
    """A myllm Checkpoint holding the weights (and AdamW moments) of nanoGPT's ckpt.pt."""
    payload = _load(path)
    args = payload["model_args"]
    config = _model_config(args, path)
    state = {
        name.removeprefix(COMPILED_PREFIX): tensor.detach().float().cpu().numpy()
        for name, tensor in payload["model"].items()
    }
    state = {name: a for name, a in state.items() if not _is_mask_buffer(name, a)}
    _check_representable(state, config, path)
    weights = _weights_from_nanogpt(state, config)
    optimizer = _optimizer_from_nanogpt(payload.get("optimizer"), state, config, path)
    best = payload.get("best_val_loss")
    best = None if best is None or float(best) >= NO_BEST_LOSS else float(best)
    step = int(payload.get("iter_num", 0))
    return Checkpoint(
        model_config=config,
        weights=weights,
        training=TrainingState(step=step, best_val_loss=best),
        train_config=_train_config(payload.get("config"), config),
        optimizer=optimizer,
    )


def _model_config(args: dict[str, Any], path: Path) -> ModelConfig:
    n_embd, n_head = int(args["n_embd"]), int(args["n_head"])
    if n_embd % n_head != 0:
        raise UserError(f"{path}: n_embd {n_embd} is not divisible by n_head {n_head}")
    return ModelConfig(
        vocab_size=int(args["vocab_size"]),
        d_model=n_embd,
        n_heads=n_head,
        n_layers=int(args["n_layer"]),
        max_seq_len=int(args["block_size"]),
        d_ff=4 * n_embd,
        dropout=float(args.get("dropout", 0.0)),
    )


def _is_mask_buffer(name: str, array: np.ndarray) -> bool:
    """nanoGPT without flash attention registers its causal mask as `attn.bias` [1,1,T,T]."""
    return name.endswith(".attn.bias") and array.ndim == 4


def _check_representable(state: dict[str, np.ndarray], config: ModelConfig, path: Path) -> None:
    """Refuse, in one line, what myllm's GPT cannot hold exactly."""
    for i in range(config.n_layers):
        qkv_bias = state.get(f"transformer.h.{i}.attn.c_attn.bias")
        if qkv_bias is not None and np.any(qkv_bias != 0):
            raise UserError(
                f"{path} was trained with bias=True: it has a bias on q, k and v, which myllm's "
                "attention has not; only bias=False nanoGPT checkpoints convert"
            )
    head = state.get("lm_head.weight")
    if head is not None and not np.array_equal(head, state["transformer.wte.weight"]):
        raise UserError(f"{path}: lm_head is not tied to wte, which myllm requires")


def _weights_from_nanogpt(state: dict[str, np.ndarray], config: ModelConfig) -> dict:
    d = config.d_model
    zeros = {name: np.zeros(shape, np.float32) for name, shape in parameter_shapes(config).items()}
    weights = {
        "token_embedding.weight": state["transformer.wte.weight"],
        "position_embedding.weight": state["transformer.wpe.weight"],
        "ln_final.weight": state["transformer.ln_f.weight"],
        "ln_final.bias": state.get("transformer.ln_f.bias", zeros["ln_final.bias"]),
    }
    for i in range(config.n_layers):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        c_attn = state[theirs + "attn.c_attn.weight"]  # [3 * d, d]: q, k, v stacked
        for index, part in enumerate(("W_q", "W_k", "W_v")):
            weights[f"{ours}attention.{part}.weight"] = c_attn[index * d : (index + 1) * d]
        for their_name, our_name in BLOCK_NAMES.items():
            weights[f"{ours}{our_name}.weight"] = state[f"{theirs}{their_name}.weight"]
            bias = f"{ours}{our_name}.bias"
            weights[bias] = state.get(f"{theirs}{their_name}.bias", zeros[bias])
    return {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in weights.items()}


def nanogpt_parameter_names(config: ModelConfig, bias: bool) -> list[str]:
    """nanoGPT's model.named_parameters() order (wte once: lm_head is tied to it)."""
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(config.n_layers):
        block = f"transformer.h.{i}."
        for layer in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            names.append(f"{block}{layer}.weight")
            if bias:
                names.append(f"{block}{layer}.bias")
    names.append("transformer.ln_f.weight")
    if bias:
        names.append("transformer.ln_f.bias")
    return names


def optimizer_order(config: ModelConfig, bias: bool) -> list[str]:
    """The order of nanoGPT's AdamW state indices: configure_optimizers puts every parameter of
    two or more dimensions in the first (decayed) group, the rest in the second."""
    names = nanogpt_parameter_names(config, bias)
    return [n for n in names if _is_decayed(n)] + [n for n in names if not _is_decayed(n)]


def _is_decayed(name: str) -> bool:
    """Embeddings and Linear weights: nanoGPT's parameters of two or more dimensions."""
    matrices = ("wte", "wpe", "c_attn", "c_proj", "c_fc")
    return name.endswith(".weight") and any(f".{layer}." in name for layer in matrices)


def _optimizer_from_nanogpt(
    optimizer: Any, state: dict[str, np.ndarray], config: ModelConfig, path: Path
) -> OptimizerState | None:
    """AdamW moments under myllm's names, or None (weights only, said on stderr) if unsure."""
    moments = (optimizer or {}).get("state") or {}
    if not moments:
        return None
    bias = "transformer.ln_f.bias" in state
    order = optimizer_order(config, bias)
    shapes_ok = len(moments) == len(order) and all(
        tuple(moments[index]["exp_avg"].shape) == state[name].shape
        for index, name in enumerate(order)
    )
    if not shapes_ok:
        print(
            f"{path}: its optimizer state does not follow nanoGPT's configure_optimizers order; "
            "converted the weights only (a resumed run starts its AdamW moments from zero)",
            file=sys.stderr,
        )
        return None
    by_name = {name: moments[index] for index, name in enumerate(order)}
    exp_avg = _weights_from_nanogpt(
        {name: m["exp_avg"].float().numpy() for name, m in by_name.items()}, config
    )
    exp_avg_sq = _weights_from_nanogpt(
        {name: m["exp_avg_sq"].float().numpy() for name, m in by_name.items()}, config
    )
    return OptimizerState(int(float(moments[0]["step"])), exp_avg, exp_avg_sq)


def _train_config(values: Any, config: ModelConfig) -> dict[str, Any] | None:
    """The TrainConfig fields nanoGPT's config has (None when they do not make a valid one)."""
    if not isinstance(values, dict):
        return None
    mapped = {ours: values[theirs] for theirs, ours in CONFIG_NAMES.items() if theirs in values}
    if "min_lr" in values and "learning_rate" in values and values["learning_rate"] > 0:
        mapped["min_lr_ratio"] = values["min_lr"] / values["learning_rate"]
    mapped.setdefault("block_size", config.max_seq_len)
    try:
        return TrainConfig.from_dict(mapped).to_dict()
    except (UserError, TypeError):
        return None


# --- myllm -> nanoGPT ---


def write_nanogpt(path: Path, checkpoint: Checkpoint, dataset: str) -> None:
    """Write what nanoGPT's sample.py (and train.py --init_from=resume) reads.

    bias=False when every myllm bias is zero; otherwise bias=True with zero q/k/v biases,
    which is exact too.
    """
    config = checkpoint.model_config
    if config.d_ff != 4 * config.d_model:
        raise UserError(
            f"d_ff {config.d_ff} is not 4 * d_model: nanoGPT's MLP is fixed at 4 * n_embd"
        )
    bias = any(np.any(a != 0) for n, a in checkpoint.weights.items() if n.endswith(".bias"))
    state = _weights_to_nanogpt(checkpoint.weights, config, bias)
    model = {name: torch.from_numpy(array) for name, array in state.items()}
    model["lm_head.weight"] = model["transformer.wte.weight"]  # tied: stored once
    train = checkpoint.train_config or {}
    payload = {
        "model": model,
        "optimizer": _optimizer_to_nanogpt(checkpoint, bias, train),
        "model_args": {
            "n_layer": config.n_layers,
            "n_head": config.n_heads,
            "n_embd": config.d_model,
            "block_size": config.max_seq_len,
            "bias": bias,
            "vocab_size": config.vocab_size,
            "dropout": config.dropout,
        },
        "iter_num": checkpoint.training.step,
        "best_val_loss": checkpoint.training.best_val_loss or NO_BEST_LOSS,
        "config": {"dataset": dataset, **_nanogpt_config(train)},
    }
    atomic_write(path, lambda temp: torch.save(payload, temp))


def _weights_to_nanogpt(weights: dict, config: ModelConfig, bias: bool) -> dict:
    state = {
        "transformer.wte.weight": weights["token_embedding.weight"],
        "transformer.wpe.weight": weights["position_embedding.weight"],
        "transformer.ln_f.weight": weights["ln_final.weight"],
    }
    if bias:
        state["transformer.ln_f.bias"] = weights["ln_final.bias"]
    for i in range(config.n_layers):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        state[theirs + "attn.c_attn.weight"] = np.concatenate(
            [weights[f"{ours}attention.{part}.weight"] for part in ("W_q", "W_k", "W_v")]
        )
        if bias:
            state[theirs + "attn.c_attn.bias"] = np.zeros(3 * config.d_model, np.float32)
        for their_name, our_name in BLOCK_NAMES.items():
            state[f"{theirs}{their_name}.weight"] = weights[f"{ours}{our_name}.weight"]
            if bias:
                state[f"{theirs}{their_name}.bias"] = weights[f"{ours}{our_name}.bias"]
    return {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in state.items()}


def _optimizer_to_nanogpt(checkpoint: Checkpoint, bias: bool, train: dict) -> dict:
    """torch AdamW state_dict with nanoGPT's two param groups (decayed matrices, the rest)."""
    config = checkpoint.model_config
    order = optimizer_order(config, bias)
    decayed = sum(1 for name in order if _is_decayed(name))
    state: dict[int, Any] = {}
    if checkpoint.optimizer is not None:
        opt = checkpoint.optimizer
        exp_avg = _weights_to_nanogpt(opt.exp_avg, config, bias)
        exp_avg_sq = _weights_to_nanogpt(opt.exp_avg_sq, config, bias)
        for index, name in enumerate(order):
            state[index] = {
                "step": torch.tensor(float(opt.step)),
                "exp_avg": torch.from_numpy(exp_avg[name]),
                "exp_avg_sq": torch.from_numpy(exp_avg_sq[name]),
            }
    group = adamw_param_group(train, num_params=0)  # the run's hyper-parameters; params below
    groups = [
        {**group, "params": list(range(decayed))},
        {**group, "weight_decay": 0.0, "params": list(range(decayed, len(order)))},
    ]
    return {"state": state, "param_groups": groups}


def _nanogpt_config(train: dict[str, Any]) -> dict[str, Any]:
    config = {theirs: train[ours] for theirs, ours in CONFIG_NAMES.items() if ours in train}
    if "min_lr_ratio" in train and "lr" in train:
        config["min_lr"] = train["lr"] * train["min_lr_ratio"]
    return {name: value for name, value in config.items() if value is not None}


# --- safe loading ---


def _load(path: Path) -> Any:
    """torch.load with weights_only=True: a pickle asking for any other global is refused."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found: pass an existing file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        blocked = re.search(r"unsupported GLOBAL (\S+)", str(error))
        what = blocked.group(1) if blocked else "an object that is not a tensor"
        raise UserError(
            f"checkpoint {path} was refused: its pickle asks to call {what}, which could run "
            "code; load only files you trust"
        ) from None
    except Exception as error:
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise UserError(f"checkpoint {path} could not be read ({reason})") from None
