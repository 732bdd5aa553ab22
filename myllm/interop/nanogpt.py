"""nanoGPT's ckpt.pt contents <-> a myllm Checkpoint, framework-free (numpy in, numpy out).

nanoGPT's GPT is myllm's architecture: pre-norm blocks, exact GELU (nn.GELU()), attention scaled
by 1/sqrt(head_dim), learned positions, lm_head tied to wte, LayerNorm eps 1e-5, d_ff 4 * n_embd.
Its nn.Linear weights are [out, in] like ours. The differences are names and two details, both in
the table below:
- `c_attn` is W_q, W_k and W_v stacked on the output axis (nanoGPT splits its output q, k, v);
- with bias=False nanoGPT has no biases at all, which is myllm with every bias zero; with
  bias=True it also has a bias on q, k and v, which myllm has not (refused unless it is zero).
Reading and writing the `.pt` pickle itself needs torch: myllm_torch/nanogpt.py does only that.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from myllm.checkpoint.state import Checkpoint, OptimizerState, TrainingState
from myllm.checkpoint.validation import validate_weights
from myllm.config.settings import ModelConfig, TrainConfig
from myllm.errors import UserError
from myllm.interop.torch_adamw import adamw_param_group
from myllm.interop.weight_map import Entry, WeightMap, entry, weight_and_bias

COMPILED_PREFIX = "_orig_mod."  # torch.compile's wrapper, kept in the keys of a compiled run
NO_BEST_LOSS = 1e9  # nanoGPT's "no validation yet"
BLOCK, THEIR_BLOCK = "blocks.{layer}.", "transformer.h.{layer}."
QKV = tuple(BLOCK + f"attention.{part}.weight" for part in ("W_q", "W_k", "W_v"))


def layer(theirs: str, ours: str) -> tuple[Entry, Entry]:
    """One nanoGPT layer of a block; its bias is absent from a bias=False model."""
    return weight_and_bias(THEIR_BLOCK + theirs, BLOCK + ours, optional_bias=True)


# In nanoGPT's model.named_parameters() order (lm_head is tied to wte: not a parameter of its own).
NANOGPT = WeightMap(
    before=(
        entry("transformer.wte.weight", "token_embedding.weight"),
        entry("transformer.wpe.weight", "position_embedding.weight"),
    ),
    per_layer=(
        *layer("ln_1", "ln1"),
        entry(THEIR_BLOCK + "attn.c_attn.weight", *QKV),  # q, k, v stacked on the output axis
        entry(THEIR_BLOCK + "attn.c_attn.bias", optional=True),  # myllm's q, k, v have none
        *layer("attn.c_proj", "attention.W_o"),
        *layer("ln_2", "ln2"),
        *layer("mlp.c_fc", "feed_forward.linear1"),
        *layer("mlp.c_proj", "feed_forward.linear2"),
    ),
    after=weight_and_bias("transformer.ln_f", "ln_final", optional_bias=True),
)
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
# What a malformed payload raises while it is taken apart; each becomes one UserError line.
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError)


def is_nanogpt_payload(payload: Any) -> bool:
    """True for nanoGPT's dict (model_args and model), not myllm's."""
    return isinstance(payload, dict) and "model_args" in payload and "model" in payload


# --- nanoGPT -> myllm ---


def checkpoint_from_nanogpt(payload: dict[str, Any], path: Path) -> Checkpoint:
    """A myllm Checkpoint holding the weights (and AdamW moments) of nanoGPT's ckpt.pt, whose
    tensors the caller has turned into numpy arrays."""
    try:
        config = nanogpt_model_config(payload["model_args"], path)
        state = {
            name.removeprefix(COMPILED_PREFIX): np.asarray(array)
            for name, array in payload["model"].items()
        }
        state = {name: a for name, a in state.items() if not _is_mask_buffer(name, a)}
        _check_representable(state, config, path)
        weights = NANOGPT.from_foreign(state, config, str(path))
        validate_weights(weights, config, path)
        optimizer = _optimizer_from_nanogpt(payload.get("optimizer"), state, config, path)
        best = payload.get("best_val_loss")
        best = None if best is None or float(best) >= NO_BEST_LOSS else float(best)
        training = TrainingState(step=int(payload.get("iter_num", 0)), best_val_loss=best)
    except MALFORMED as error:
        reason = f"missing {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
        raise UserError(
            f"nanoGPT checkpoint {path} could not be read ({reason[:160]}): it is truncated or "
            "not written by nanoGPT's train.py; pass its out/ckpt.pt"
        ) from None
    return Checkpoint(
        model_config=config,
        weights=weights,
        training=training,
        train_config=_train_config(payload.get("config"), config),
        optimizer=optimizer,
    )


def nanogpt_model_config(args: dict[str, Any], path: Path) -> ModelConfig:
    """myllm's ModelConfig for nanoGPT's model_args (its MLP is always 4 * n_embd wide)."""
    n_embd, n_head = int(args["n_embd"]), int(args["n_head"])
    if n_head <= 0 or n_embd % n_head != 0:
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
    if NANOGPT.unrepresentable(state, config.n_layers):
        raise UserError(
            f"{path} was trained with bias=True: it has a bias on q, k and v, which myllm's "
            "attention has not; only bias=False nanoGPT checkpoints convert"
        )
    head = state.get("lm_head.weight")
    if head is not None and not np.array_equal(head, state["transformer.wte.weight"]):
        raise UserError(f"{path}: lm_head is not tied to wte, which myllm requires")


def optimizer_order(names: list[str], state: dict[str, np.ndarray]) -> list[str]:
    """The order of nanoGPT's AdamW state indices: configure_optimizers puts every parameter of
    two or more dimensions in the first (decayed) group, then the rest, each in `names` order."""
    return [n for n in names if state[n].ndim >= 2] + [n for n in names if state[n].ndim < 2]


def _optimizer_from_nanogpt(
    optimizer: Any, state: dict[str, np.ndarray], config: ModelConfig, path: Path
) -> OptimizerState | None:
    """AdamW moments under myllm's names, or None (weights only, said on stderr) if unsure."""
    moments = (optimizer or {}).get("state") or {}
    if not moments:
        return None
    bias = "transformer.ln_f.bias" in state
    order = optimizer_order(NANOGPT.foreign_names(config.n_layers, bias), state)
    shapes_ok = len(moments) == len(order) and all(
        isinstance(moments.get(index), dict)
        and np.shape(moments[index].get("exp_avg")) == state[name].shape
        and np.shape(moments[index].get("exp_avg_sq")) == state[name].shape
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
    source = f"{path} (optimizer state)"
    exp_avg = NANOGPT.from_foreign({n: m["exp_avg"] for n, m in by_name.items()}, config, source)
    exp_avg_sq = NANOGPT.from_foreign(
        {n: m["exp_avg_sq"] for n, m in by_name.items()}, config, source
    )
    return OptimizerState(int(float(moments[0]["step"])), exp_avg, exp_avg_sq)


def _train_config(values: Any, config: ModelConfig) -> dict[str, Any] | None:
    """The TrainConfig fields nanoGPT's config has (None when they do not make a valid one)."""
    if not isinstance(values, dict):
        return None
    mapped = {ours: values[theirs] for theirs, ours in CONFIG_NAMES.items() if theirs in values}
    try:
        if "min_lr" in values and "learning_rate" in values and values["learning_rate"] > 0:
            mapped["min_lr_ratio"] = values["min_lr"] / values["learning_rate"]
        mapped.setdefault("block_size", config.max_seq_len)
        return TrainConfig.from_dict(mapped).to_dict()
    except (UserError, *MALFORMED):
        return None


# --- myllm -> nanoGPT ---


def nanogpt_payload(checkpoint: Checkpoint, dataset: str) -> dict[str, Any]:
    """What nanoGPT's sample.py (and train.py --init_from=resume) reads, with numpy arrays for
    the tensors; lm_head.weight is wte's array itself (tied: to be saved once).

    bias=False when every myllm bias is zero; otherwise bias=True with zero q/k/v biases,
    which is exact too.
    """
    config = checkpoint.model_config
    if config.d_ff != 4 * config.d_model:
        raise UserError(
            f"d_ff {config.d_ff} is not 4 * d_model: nanoGPT's MLP is fixed at 4 * n_embd"
        )
    bias = any(np.any(a != 0) for n, a in checkpoint.weights.items() if n.endswith(".bias"))
    model = NANOGPT.to_foreign(checkpoint.weights, config.n_layers, bias)
    train = checkpoint.train_config or {}
    optimizer = _optimizer_to_nanogpt(checkpoint, model, bias, train)
    model["lm_head.weight"] = model["transformer.wte.weight"]
    return {
        "model": model,
        "optimizer": optimizer,
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


def _optimizer_to_nanogpt(
    checkpoint: Checkpoint, model: dict[str, np.ndarray], bias: bool, train: dict
) -> dict:
    """torch AdamW state_dict with nanoGPT's two param groups (decayed matrices, the rest)."""
    n_layers = checkpoint.model_config.n_layers
    order = optimizer_order(NANOGPT.foreign_names(n_layers, bias), model)
    decayed = sum(1 for name in order if model[name].ndim >= 2)
    state: dict[int, Any] = {}
    if checkpoint.optimizer is not None:
        opt = checkpoint.optimizer
        exp_avg = NANOGPT.to_foreign(opt.exp_avg, n_layers, bias)
        exp_avg_sq = NANOGPT.to_foreign(opt.exp_avg_sq, n_layers, bias)
        for index, name in enumerate(order):
            state[index] = {
                "step": np.array(float(opt.step), np.float32),
                "exp_avg": exp_avg[name],
                "exp_avg_sq": exp_avg_sq[name],
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
