"""GGUF files through `myllm convert --to gguf`, read back with the gguf package's reader, and
run by llama.cpp through llama-cpp-python where it is installed (it builds from source).

Tolerances: float32 tensors bit-exact, float16 ones within float16 rounding; llama.cpp's logits
(float32 GGUF, gelu_tanh model) within 1e-2 of myllm's (ggml computes GELU through a float16
table) and its greedy token ids identical.
"""

from __future__ import annotations

import numpy as np
import pytest

from myllm.checkpoint.io import read_checkpoint
from myllm.cli.convert import convert
from myllm.data.tokenizers import load_tokenizer
from myllm.interop.gguf import GGUF_GPT2
from myllm.interop.hf_tokenizer import END_OF_TEXT, byte_to_unicode
from tests.helpers import logits_of
from tests.interop.models import PROMPT, myllm_greedy, myllm_model, write_model

gguf = pytest.importorskip("gguf", reason="the interop extra is not installed")
LLAMA_TOLERANCE = 1e-2  # float32 GGUF; ggml's GELU goes through a float16 lookup table


def export(tmp_path, outtype="f32", **model):
    source = write_model(tmp_path / "run", **model)
    destination = tmp_path / f"model-{outtype}.gguf"
    convert(source, destination, to="gguf", outtype=outtype)
    return source, destination


def spelled(text: str) -> bytes:
    """The bytes a GGUF gpt2 token text stands for (GPT-2's byte-level alphabet, reversed)."""
    byte_of = {symbol: byte for byte, symbol in byte_to_unicode().items()}
    return bytes(byte_of[symbol] for symbol in text)


@pytest.mark.parametrize("mode", ["char", "byte"])
@pytest.mark.parametrize("outtype", ["f32", "f16"])
def test_gguf_reader_sees_gpt2_with_myllm_weights_and_vocabulary(tmp_path, outtype, mode):
    source, path = export(tmp_path, outtype, mode=mode, activation="gelu_tanh")
    checkpoint, tokenizer = (
        read_checkpoint(source),
        load_tokenizer(source.parent / "tokenizer.json"),
    )
    config = checkpoint.model_config
    reader = gguf.GGUFReader(path)
    field = {name: value.contents() for name, value in reader.fields.items()}
    assert field["general.architecture"] == "gpt2"
    assert field["gpt2.context_length"] == config.max_seq_len
    assert field["gpt2.embedding_length"] == config.d_model
    assert field["gpt2.feed_forward_length"] == config.d_ff
    assert field["gpt2.block_count"] == config.n_layers
    assert field["gpt2.attention.head_count"] == config.n_heads
    tokens = field["tokenizer.ggml.tokens"]
    assert tokens[-1] == END_OF_TEXT and len(tokens) == config.vocab_size + 1
    assert (
        field["tokenizer.ggml.eos_token_id"]
        == field["tokenizer.ggml.bos_token_id"]
        == len(tokens) - 1
    )
    raw = [spelled(text) for text in tokens[:-1]]
    expected = (
        [bytes([value]) for value in tokenizer.byte_values]
        if mode == "byte"
        else [char.encode("utf-8") for char in tokenizer.chars]
    )
    assert raw == expected
    exported = GGUF_GPT2.to_foreign(checkpoint.weights, config.n_layers, optional=True)
    exported["token_embd.weight"] = np.concatenate(
        [exported["token_embd.weight"], np.zeros((1, config.d_model), np.float32)]
    )
    stored = {tensor.name: np.asarray(tensor.data) for tensor in reader.tensors}
    assert set(stored) == set(exported)
    for name, array in exported.items():
        if outtype == "f16" and array.ndim == 2:
            assert stored[name].dtype == np.float16
            np.testing.assert_array_equal(stored[name], array.astype(np.float16), err_msg=name)
        else:
            np.testing.assert_array_equal(stored[name].reshape(array.shape), array, err_msg=name)


def test_llama_cpp_runs_a_gelu_tanh_model_as_myllm_does(tmp_path):
    llama_cpp = pytest.importorskip(
        "llama_cpp", reason="llama-cpp-python is not installed (it builds llama.cpp from source)"
    )
    source, path = export(tmp_path, backend="torch", activation="gelu_tanh")
    checkpoint, tokenizer = (
        read_checkpoint(source),
        load_tokenizer(source.parent / "tokenizer.json"),
    )
    llm = llama_cpp.Llama(str(path), n_ctx=64, logits_all=True, n_threads=1, verbose=False)
    ids = llm.tokenize(PROMPT.encode("utf-8"), add_bos=False, special=False)
    assert ids == tokenizer.encode(PROMPT)
    llm.eval(ids)
    theirs = np.asarray(llm.scores[: len(ids)])[:, : checkpoint.model_config.vocab_size]
    backend, trainer = myllm_model("torch", checkpoint)
    ours = logits_of(backend, trainer.model, np.array([ids]))[0]
    assert np.abs(theirs - ours).max() <= LLAMA_TOLERANCE
    greedy = []
    for _ in range(64 - len(ids)):
        greedy.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([greedy[-1]])
    assert greedy == myllm_greedy("torch", checkpoint, ids, len(greedy))
    assert llm.detokenize(greedy).decode("utf-8", "replace") == tokenizer.decode(greedy)
