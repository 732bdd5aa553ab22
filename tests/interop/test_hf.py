"""Hugging Face GPT-2 directories through `myllm convert`, checked with the real libraries:
transformers' AutoModelForCausalLM / AutoTokenizer and mlx-lm's load / generate.

Tolerances, float32: transformers' logits within 1e-4 of myllm's (torch and MLX checkpoints,
both activations); greedy text identical; the import back bit-exact; mlx-lm's greedy text
(its GPT-2 computes GELU's tanh form) identical for a gelu_tanh model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from myllm.checkpoint.io import read_checkpoint
from myllm.cli.convert import convert
from myllm.data.tokenizers import load_tokenizer
from myllm.errors import UserError
from myllm.interop.hf import read_hf
from tests.helpers import logits_of
from tests.interop.models import PROMPT, myllm_greedy, myllm_model, write_model

transformers = pytest.importorskip("transformers", reason="the interop extra is not installed")
TOLERANCE = 1e-4  # float32 logits


def export(tmp_path, **model):
    source = write_model(tmp_path / "run", **model)
    destination = tmp_path / "hf"
    convert(source, destination, to="hf")
    return source, destination


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh"])
@pytest.mark.parametrize("backend", ["torch", "mlx"])
def test_transformers_computes_myllm_logits_and_greedy_text(tmp_path, backend, activation):
    source, directory = export(tmp_path, backend=backend, activation=activation)
    checkpoint = read_checkpoint(source)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    ids = tokenizer(PROMPT)["input_ids"]
    assert ids == load_tokenizer(source.parent / "tokenizer.json").encode(PROMPT)
    assert tokenizer.decode(ids) == PROMPT
    with torch.no_grad():
        theirs = model.eval()(torch.tensor([ids])).logits.numpy()
    our_backend, trainer = myllm_model(backend, checkpoint)
    ours = logits_of(our_backend, trainer.model, np.array([ids]))
    vocab = checkpoint.model_config.vocab_size
    assert np.abs(theirs[..., :vocab] - ours).max() <= TOLERANCE
    assert np.all(theirs[..., vocab] == 0)  # the end-of-text token's zero row
    new = 64 - len(ids)
    generated = model.generate(torch.tensor([ids]), max_new_tokens=new, do_sample=False)
    assert generated[0, len(ids) :].tolist() == myllm_greedy(backend, checkpoint, ids, new)


def test_byte_tokenizer_encodes_and_decodes_as_myllm(tmp_path):
    source, directory = export(tmp_path, mode="byte")
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    ids = tokenizer(PROMPT)["input_ids"]
    assert ids == load_tokenizer(source.parent / "tokenizer.json").encode(PROMPT)
    assert tokenizer.decode(ids) == PROMPT


@pytest.mark.parametrize("mode", ["char", "byte"])
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_import_back_is_bit_exact_also_after_save_pretrained(tmp_path, mode, suffix):
    source, directory = export(tmp_path, mode=mode)
    resaved = tmp_path / "resaved"  # transformers' own layout: transformer.* names
    transformers.AutoModelForCausalLM.from_pretrained(directory).save_pretrained(resaved)
    transformers.AutoTokenizer.from_pretrained(directory).save_pretrained(resaved)
    original = read_checkpoint(source)
    for index, model_directory in enumerate([directory, resaved]):
        destination = tmp_path / f"back{index}" / f"model{suffix}"
        destination.parent.mkdir()
        convert(model_directory, destination)
        back = read_checkpoint(destination)
        assert back.model_config == original.model_config
        for name, array in original.weights.items():
            np.testing.assert_array_equal(back.weights[name], array, err_msg=name)
        tokenizer_text = (destination.parent / "tokenizer.json").read_text(encoding="utf-8")
        assert tokenizer_text == (source.parent / "tokenizer.json").read_text(encoding="utf-8")


def test_mlx_lm_greedy_text_is_myllm_greedy_text_for_gelu_tanh(tmp_path):
    mlx_lm = pytest.importorskip("mlx_lm", reason="the interop extra is not installed")
    from mlx_lm.sample_utils import make_sampler

    source, directory = export(tmp_path, backend="mlx", activation="gelu_tanh")
    model, tokenizer = mlx_lm.load(str(directory))
    new = 64 - len(PROMPT)
    text = mlx_lm.generate(model, tokenizer, PROMPT, max_tokens=new, sampler=make_sampler(0.0))
    ours = load_tokenizer(source.parent / "tokenizer.json")
    expected = myllm_greedy("mlx", read_checkpoint(source), ours.encode(PROMPT), new)
    assert text == ours.decode(expected)


# --- what myllm cannot hold is refused in one line ---


def edit_config(directory, **values):
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}), encoding="utf-8")


def edit_tensors(directory, **tensors):
    from safetensors.numpy import load_file, save_file

    state = load_file(directory / "model.safetensors")
    save_file({**state, **tensors}, directory / "model.safetensors", metadata={"format": "pt"})


def bpe_vocabulary(directory):
    path = directory / "tokenizer.json"
    payload = json.loads(path.read_text(encoding="utf-8"))
    payload["model"]["merges"] = [["a", "b"]]
    path.write_text(json.dumps(payload), encoding="utf-8")


REFUSALS = {
    "model_type": (lambda d: edit_config(d, model_type="llama"), "GPT-2 models only"),
    "untied": (lambda d: edit_config(d, tie_word_embeddings=False), "untied"),
    "activation": (lambda d: edit_config(d, activation_function="relu"), "activation_function"),
    "epsilon": (lambda d: edit_config(d, layer_norm_epsilon=1e-6), "LayerNorm epsilon"),
    "qkv bias": (
        lambda d: edit_tensors(d, **{"h.0.attn.c_attn.bias": np.ones(96, np.float32)}),
        "biases on q, k and v",
    ),
    "lm_head": (
        lambda d: edit_tensors(d, **{"lm_head.weight": np.ones((59, 32), np.float32)}),
        "not tied",
    ),
    "bpe": (bpe_vocabulary, "merges"),
    "no tokenizer": (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer.json"),
    "no weights": (lambda d: (d / "model.safetensors").unlink(), "no model.safetensors"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_what_myllm_cannot_hold_is_refused(tmp_path, case):
    _, directory = export(tmp_path)
    damage, message = REFUSALS[case]
    damage(directory)
    with pytest.raises(UserError, match=message):
        read_hf(directory)
