"""Byte mode: a vocabulary of the bytes present, for any file; tokenizer.json records the mode."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from myllm.config.settings import ModelSettings
from myllm.data.byte_tokenizer import ByteTokenizer
from myllm.data.char_tokenizer import CharTokenizer
from myllm.data.token_cache import load_cached_tokens
from myllm.data.tokenizers import load_tokenizer
from myllm.errors import UserError
from myllm.train.setup import run_training
from tests.helpers import TINY_MODEL, tiny_train_config


def non_utf8_bytes(size: int = 6000) -> bytes:
    """English text with random bytes mixed in: not valid UTF-8."""
    rng = np.random.default_rng(0)
    text = bytearray(("to be or not to be, that is the question\n" * (size // 40)).encode())
    positions = rng.integers(0, len(text), size=len(text) // 50)
    text_array = np.frombuffer(bytes(text), dtype=np.uint8).copy()
    text_array[positions] = rng.integers(128, 256, size=len(positions))
    return text_array.tobytes()


def test_vocabulary_is_the_sorted_bytes_present_and_round_trips():
    data = non_utf8_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    tokenizer = ByteTokenizer.build_vocab(data)
    assert tokenizer.byte_values == sorted(set(data)) and tokenizer.vocab_size <= 256
    ids = tokenizer.encode(data)
    assert tokenizer.decode_bytes(ids) == data
    assert tokenizer.decode(ids) == data.decode("utf-8", errors="replace")


def test_prompt_is_encoded_as_utf8_and_unknown_bytes_are_named():
    tokenizer = ByteTokenizer.build_vocab("héllo\n")
    assert tokenizer.decode(tokenizer.encode("hé")) == "hé"
    assert "\n" in tokenizer.char_to_idx and "é" not in tokenizer.char_to_idx
    with pytest.raises(UserError, match="0x7a"):
        tokenizer.encode("z")
    assert tokenizer.encode("hz", skip_unknown=True) == tokenizer.encode("h")


def test_streamed_decoding_holds_back_a_split_character():
    tokenizer = ByteTokenizer.build_vocab("é😀a")
    decode = tokenizer.stream_decoder()
    pieces = [decode(token) for token in tokenizer.encode("😀éa")]
    assert pieces[:3] == ["", "", ""] and "".join(pieces) == "😀éa"


def test_load_tokenizer_dispatches_on_format_and_old_char_files_still_load(tmp_path):
    byte_path, char_path = tmp_path / "byte.json", tmp_path / "char.json"
    ByteTokenizer.build_vocab(b"ab\xff").save(byte_path)
    assert json.loads(byte_path.read_text())["mode"] == "byte"
    assert load_tokenizer(byte_path).byte_values == [97, 98, 255]
    char_path.write_text('{"format": "myllm.char_tokenizer", "vocab_size": 2, "chars": ["a", "b"]}')
    loaded = load_tokenizer(char_path)
    assert isinstance(loaded, CharTokenizer) and loaded.chars == ["a", "b"]
    (tmp_path / "bad.json").write_text('{"format": "myllm.data.byte_tokenizer", "bytes": [1]}')
    with pytest.raises(UserError, match="damaged byte tokenizer"):
        load_tokenizer(tmp_path / "bad.json")


def test_byte_cache_of_a_non_utf8_file(tmp_path):
    path = tmp_path / "mixed.bin"
    path.write_bytes(non_utf8_bytes())
    result = load_cached_tokens(path, "byte", 0.1, tmp_path / "cache")
    expected = ByteTokenizer.build_vocab(path.read_bytes())
    assert result.tokenizer.byte_values == expected.byte_values
    np.testing.assert_array_equal(result.tokens, expected.encode(path.read_bytes()))


def test_byte_mode_trains_on_non_utf8_and_reports_bits(tmp_path):
    path = tmp_path / "mixed.bin"
    path.write_bytes(non_utf8_bytes())
    config = tiny_train_config(
        path, tmp_path / "run", max_steps=4, eval_interval=4, tokenizer="byte",
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    result = run_training("torch", config, ModelSettings(**TINY_MODEL))
    assert result.step == 4
    saved = json.loads((tmp_path / "run" / "tokenizer.json").read_text())
    assert saved["format"] == "myllm.data.byte_tokenizer"
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    evaluation = [r for r in records if "val_loss" in r][-1]
    assert evaluation["val_bpc"] == pytest.approx(evaluation["val_loss"] / math.log(2))
    run_info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_info["tokenizer"] == "byte" and run_info["evaluation"]["eval_iters"] == 4


def test_streamed_generation_prints_whole_characters_in_byte_mode(monkeypatch):
    import myllm.generate.repl as repl
    from myllm.generate.sampling import SamplingSettings

    tokenizer = ByteTokenizer.build_vocab("é")  # ids 0, 1 = bytes 0xa9, 0xc3
    assert tokenizer.encode("é") == [1, 0]

    def fake_generate_tokens(decoder, ids, settings, rng, num_samples, use_kv_cache):
        yield from (np.array([token]) for token in [1, 0, 1, 0])  # "é" twice, a byte at a time

    monkeypatch.setattr(repl, "generate_tokens", fake_generate_tokens)
    chunks: list[str] = []
    out = type(
        "Out", (), {"write": lambda self, text: chunks.append(text), "flush": lambda self: None}
    )()
    request = repl.GenerationRequest(tokenizer, SamplingSettings(), np.random.default_rng(0))
    assert repl.generate_text(None, request, "é", out) == ["éé"]
    assert chunks == ["", "é", "", "é"]
