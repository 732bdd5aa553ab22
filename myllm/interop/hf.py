"""A myllm model as a Hugging Face GPT-2 directory (transformers, mlx-lm), and back.

myllm's GPT is GPT-2's architecture (pre-norm, learned positions, LayerNorm eps 1e-5, attention
scaled by 1/sqrt(head_dim), tied lm_head), so the directory is a plain `model_type: gpt2` one:
config.json, model.safetensors (hf_names.GPT2's layout, metadata format "pt" as transformers
writes it) and the tokenizer files of hf_tokenizer. The vocabulary is myllm's plus END_OF_TEXT,
whose embedding row is zero (hf_tokenizer's docstring says why).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from myllm.checkpoint.state import Checkpoint
from myllm.config.settings import ModelConfig
from myllm.data.tokenizers import Tokenizer
from myllm.errors import UserError
from myllm.interop.hf_names import GPT2, MODEL_PREFIX
from myllm.interop.hf_tokenizer import TOKENIZER_FILES, read_hf_tokenizer, write_hf_tokenizer

LAYER_NORM_EPS = 1e-5  # torch's and MLX's LayerNorm default, which myllm's models use
# transformers' activation_function names; gelu_new is the tanh form computed another way.
ACTIVATION_NAMES = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh"}
ACTIVATIONS_READ = {"gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh"}
HF_FILES = ("config.json", "model.safetensors", *TOKENIZER_FILES)


def hf_config(config: ModelConfig) -> dict[str, Any]:
    """config.json for transformers' GPT2LMHeadModel (and mlx-lm's gpt2)."""
    end_of_text = config.vocab_size  # the token after myllm's
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size + 1,
        "n_embd": config.d_model,
        "n_layer": config.n_layers,
        "n_head": config.n_heads,
        "n_positions": config.max_seq_len,
        "n_ctx": config.max_seq_len,
        "n_inner": config.d_ff,
        "activation_function": ACTIVATION_NAMES[config.activation],
        "layer_norm_epsilon": LAYER_NORM_EPS,
        **dict.fromkeys(("resid_pdrop", "embd_pdrop", "attn_pdrop"), config.dropout),
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "bos_token_id": end_of_text,
        "eos_token_id": end_of_text,
        "initializer_range": 0.02,
        "dtype": "float32",
    }


def write_hf(checkpoint: Checkpoint, tokenizer: Tokenizer, directory: Path) -> None:
    """The model directory, each file written atomically (other files there are left alone)."""
    from safetensors.numpy import save

    from myllm.atomic import atomic_write, atomic_write_text

    config = checkpoint.model_config
    tensors = GPT2.to_foreign(checkpoint.weights, config.n_layers, optional=True)
    end_row = np.zeros((1, config.d_model), np.float32)
    tensors["wte.weight"] = np.concatenate([tensors["wte.weight"], end_row])
    payload = save(tensors, metadata={"format": "pt"})
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / "model.safetensors", lambda temp: temp.write_bytes(payload))
    atomic_write_text(directory / "config.json", json.dumps(hf_config(config), indent=2) + "\n")
    write_hf_tokenizer(tokenizer, directory, config.max_seq_len)


def read_hf(directory: Path) -> tuple[Checkpoint, Tokenizer]:
    """A myllm Checkpoint (weights only) and tokenizer from a GPT-2 model directory.

    What myllm's GPT cannot compute exactly is refused in one line: another model type or
    attention variant, another LayerNorm eps or activation, untied heads, a bias on q, k and v,
    a BPE vocabulary or special tokens.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    values = _read_config(directory)
    tokenizer, has_end = read_hf_tokenizer(directory)
    model_config = _model_config(values, tokenizer.vocab_size, has_end, directory)
    weights_path = directory / "model.safetensors"
    if not weights_path.is_file():
        raise UserError(
            f"{directory} has no model.safetensors (a sharded or pickled model is not read): "
            "save it with save_pretrained(..., safe_serialization=True)"
        )
    try:
        state = {n.removeprefix(MODEL_PREFIX): a for n, a in load_file(weights_path).items()}
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"{weights_path} could not be read ({error}): it is damaged") from None
    _check_representable(state, model_config, weights_path)
    if has_end and "wte.weight" in state:
        state["wte.weight"] = _without_end_row(state["wte.weight"], weights_path)
    weights = GPT2.from_foreign(state, model_config, str(weights_path))
    return Checkpoint(model_config=model_config, weights=weights), tokenizer


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not directory.is_dir():
        raise UserError(f"{directory} is not a directory: pass a Hugging Face model directory")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{directory} has no config.json: it is not a model directory") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path} could not be read ({error}): it is damaged") from None
    if not isinstance(values, dict) or values.get("model_type") != "gpt2":
        kind = values.get("model_type") if isinstance(values, dict) else None
        raise UserError(f"{path}: model_type {kind!r}; myllm converts GPT-2 models only")
    return values


def _model_config(
    values: dict[str, Any], vocab_size: int, has_end: bool, directory: Path
) -> ModelConfig:
    refusals = {
        "layer_norm_epsilon": (LAYER_NORM_EPS, "another LayerNorm epsilon"),
        "scale_attn_weights": (True, "unscaled attention"),
        "scale_attn_by_inverse_layer_idx": (False, "attention scaled by layer"),
        "reorder_and_upcast_attn": (False, "reordered attention"),
        "tie_word_embeddings": (True, "an lm_head untied from wte"),
    }
    for key, (expected, what) in refusals.items():
        if values.get(key, expected) != expected:
            raise UserError(f"{directory}: {key} {values[key]!r} is {what}, which myllm has not")
    activation = ACTIVATIONS_READ.get(values.get("activation_function", "gelu_new"))
    if activation is None:
        raise UserError(
            f"{directory}: activation_function {values['activation_function']!r}; myllm has "
            f"{', '.join(ACTIVATIONS_READ)}"
        )
    try:
        n_embd = int(values["n_embd"])
        if int(values["vocab_size"]) != vocab_size + has_end:
            raise UserError(
                f"{directory}: vocab_size {values['vocab_size']} but its tokenizer.json has "
                f"{vocab_size + has_end} tokens: the tokenizer is not this model's"
            )
        return ModelConfig(
            vocab_size=vocab_size, d_model=n_embd, n_heads=int(values["n_head"]),
            n_layers=int(values["n_layer"]), max_seq_len=int(values["n_positions"]),
            d_ff=int(values.get("n_inner") or 4 * n_embd),
            dropout=float(values.get("resid_pdrop", 0.0)), activation=activation,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{directory}/config.json lacks or garbles {error}") from None


def _check_representable(state: dict[str, np.ndarray], config: ModelConfig, path: Path) -> None:
    if GPT2.unrepresentable(state, config.n_layers):
        raise UserError(
            f"{path} has biases on q, k and v (attn.c_attn.bias), which myllm's attention has "
            "not: only a model trained without them converts"
        )
    head = state.pop("lm_head.weight", None)
    if head is not None and not np.array_equal(head, state.get("wte.weight")):
        raise UserError(f"{path}: lm_head is not tied to wte, which myllm requires")
    unknown = GPT2.unknown(state, config.n_layers)
    if unknown:
        raise UserError(f"{path} has tensors myllm's GPT has not: {', '.join(unknown[:4])}")


def _without_end_row(wte: np.ndarray, path: Path) -> np.ndarray:
    if np.any(wte[-1] != 0):
        raise UserError(
            f"{path}: its end-of-text token has a trained embedding, which myllm's vocabulary "
            "cannot hold (only a zero row, as myllm's export writes)"
        )
    return wte[:-1]
