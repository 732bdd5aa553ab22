"""The token cache: built once, memory-mapped after, rebuilt when the text or split changes or
the file is damaged; its tokens are exactly what encoding the whole text in memory gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from myllm.data import token_cache
from myllm.data.byte_tokenizer import ByteTokenizer
from myllm.data.char_tokenizer import CharTokenizer
from myllm.data.corpus import load_corpus
from myllm.data.token_cache import build_cache, load_cached_tokens, resolve_cache_dir, scan_text
from myllm.data.token_file import open_cache, read_header
from myllm.errors import UserError
from myllm.train.evaluation_plan import FULL_PASS_MAX_WINDOWS, SAMPLED_EVAL_BATCHES, plan_evaluation
from tests.helpers import text_corpus

MULTIBYTE = "héllo wörld — ünïcode 😀 Ω≈ç√ ∫˜µ\n" * 7


def cached(path: Path, cache_dir: Path, **kwargs):
    return load_cached_tokens(path, cache_dir=cache_dir, **kwargs)


def test_tokens_and_split_equal_todays_in_memory_encoding(text_file, tmp_path):
    corpus = text_corpus(text_file.read_text(encoding="utf-8"))
    result = cached(text_file, tmp_path / "cache")
    assert isinstance(result.tokens, np.memmap) and result.tokens.dtype == np.uint8
    assert result.tokenizer.chars == corpus.tokenizer.chars
    assert result.split == len(corpus.train_tokens)
    np.testing.assert_array_equal(result.tokens[: result.split], corpus.train_tokens)
    np.testing.assert_array_equal(result.tokens[result.split :], corpus.val_tokens)


def test_built_once_then_reused_without_encoding(text_file, tmp_path, monkeypatch):
    first = cached(text_file, tmp_path / "cache")
    written = first.path.stat().st_mtime_ns
    assert first.built

    def no_encoding(*args, **kwargs):
        raise AssertionError("the cache was re-encoded")

    monkeypatch.setattr(token_cache, "build_cache", no_encoding)
    second = cached(text_file, tmp_path / "cache")
    assert not second.built and second.path == first.path
    assert second.path.stat().st_mtime_ns == written
    np.testing.assert_array_equal(second.tokens, first.tokens)


def test_changed_text_or_split_or_mode_makes_a_new_cache(text_file, tmp_path):
    cache_dir = tmp_path / "cache"
    first = cached(text_file, cache_dir)
    other_split = cached(text_file, cache_dir, val_split=0.2)
    byte_mode = cached(text_file, cache_dir, mode="byte")
    text_file.write_text(text_file.read_text(encoding="utf-8") + "Z", encoding="utf-8")
    changed = cached(text_file, cache_dir)
    paths = {first.path, other_split.path, byte_mode.path, changed.path}
    assert len(paths) == 4 and all(result.built for result in (other_split, byte_mode, changed))
    assert changed.tokenizer.chars[-1] == "z" and "Z" in changed.tokenizer.chars
    assert other_split.split == int(len(other_split.tokens) * (1 - 0.2))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-5])


def _flip_a_token(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def _wrong_magic(path: Path) -> None:
    path.write_bytes(b"NOTCACHE" + path.read_bytes()[8:])


def _wrong_header(path: Path) -> None:
    header, _ = read_header(path)
    header["num_tokens"] ^= 1  # one more or one less: the same JSON length, a lie about the size
    data = bytearray(path.read_bytes())
    body = json.dumps(header, ensure_ascii=False).encode("utf-8")
    data[16 : 16 + len(body)] = body
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_truncate, "truncated"),
        (_flip_a_token, "checksum"),
        (_wrong_magic, "magic"),
        (_wrong_header, "size"),
    ],
)
def test_damaged_cache_is_detected_and_rebuilt(text_file, tmp_path, damage, reason):
    first = cached(text_file, tmp_path / "cache")
    expected = np.array(first.tokens)
    del first
    damage(cached(text_file, tmp_path / "cache").path)
    rebuilt = cached(text_file, tmp_path / "cache")
    assert rebuilt.built and reason in rebuilt.rebuilt_because
    np.testing.assert_array_equal(rebuilt.tokens, expected)
    assert not cached(text_file, tmp_path / "cache").built


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 7, 64])
def test_multibyte_characters_split_across_chunks(tmp_path, chunk_bytes):
    path = tmp_path / "unicode.txt"
    path.write_text(MULTIBYTE, encoding="utf-8")
    scan = scan_text(path, "char", chunk_bytes=chunk_bytes)
    destination = tmp_path / "cache.tokens"
    build_cache(path, scan, 0.1, destination, chunk_bytes=chunk_bytes)
    result = open_cache(destination, scan.sha256, "char", 0.1)
    expected = CharTokenizer.build_vocab(MULTIBYTE)
    assert result.tokenizer.chars == expected.chars
    np.testing.assert_array_equal(result.tokens, expected.encode(MULTIBYTE))


def test_non_utf8_text_in_char_mode_names_the_byte_and_byte_mode(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"abc" * 10 + b"\xe9" + b"def")
    with pytest.raises(UserError, match=r"byte 30\).*--tokenizer byte"):
        scan_text(path, "char", chunk_bytes=4)


def test_vocabulary_larger_than_a_byte_uses_uint16(tmp_path):
    text = "".join(chr(0x4E00 + i) for i in range(300)) * 2
    path = tmp_path / "cjk.txt"
    path.write_text(text, encoding="utf-8")
    result = cached(path, tmp_path / "cache")
    assert result.tokens.dtype == np.uint16 and result.tokenizer.vocab_size == 300
    np.testing.assert_array_equal(result.tokens, CharTokenizer.build_vocab(text).encode(text))


def test_cache_folder_flag_then_env_then_beside_the_data_else_user_cache(tmp_path, monkeypatch):
    data = tmp_path / "corpus" / "input.txt"
    data.parent.mkdir()
    monkeypatch.delenv(token_cache.CACHE_ENV, raising=False)
    assert resolve_cache_dir(data) == data.parent.resolve() / ".myllm_cache"
    monkeypatch.setenv(token_cache.CACHE_ENV, str(tmp_path / "env"))
    assert resolve_cache_dir(data) == tmp_path / "env"
    assert resolve_cache_dir(data, tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv(token_cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(token_cache.os, "access", lambda path, mode: False)  # a read-only folder
    assert resolve_cache_dir(data) == tmp_path / "xdg" / "myllm"


def test_missing_and_empty_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        cached(tmp_path / "missing.txt", tmp_path / "cache")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        cached(tmp_path / "empty.txt", tmp_path / "cache")


def test_resumed_tokenizer_renumbers_the_cached_tokens(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text("abcabcabc" * 20, encoding="utf-8")
    wider = CharTokenizer(list("_abcz"))  # trained on another text: a, b, c are 1, 2, 3
    corpus = load_corpus(path, 8, 0.1, "char", str(tmp_path / "cache"), wider)
    assert corpus.tokenizer is wider
    np.testing.assert_array_equal(corpus.train_tokens[:6], [1, 2, 3, 1, 2, 3])
    with pytest.raises(UserError, match="not in the run's vocabulary"):
        load_corpus(path, 8, 0.1, "char", str(tmp_path / "cache"), CharTokenizer(list("ab")))


def test_resumed_byte_tokenizer_renumbers_and_names_unknown_bytes(tmp_path):
    path = tmp_path / "input.bin"
    path.write_bytes(b"ab\xff" * 40)
    wider = ByteTokenizer([0, 97, 98, 255])  # a, b, 0xff are 1, 2, 3
    corpus = load_corpus(path, 8, 0.1, "byte", str(tmp_path / "cache"), wider)
    np.testing.assert_array_equal(corpus.train_tokens[:6], [1, 2, 3, 1, 2, 3])
    with pytest.raises(UserError, match=r"1 byte\(s\) not in the run's vocabulary: 0xff"):
        load_corpus(path, 8, 0.1, "byte", str(tmp_path / "cache"), ByteTokenizer([97, 98]))
    with pytest.raises(UserError, match="--tokenizer char differs from the checkpoint's byte"):
        load_corpus(path, 8, 0.1, "char", str(tmp_path / "cache"), wider)


def test_split_too_small_for_a_window_is_a_user_error(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abcdefghij" * 3, encoding="utf-8")
    with pytest.raises(UserError, match="validation split has 3 characters"):
        load_corpus(path, 8, 0.1, "char", str(tmp_path / "cache"))


def test_evaluation_full_pass_when_small_sampled_when_large_eval_iters_wins():
    tiny_shakespeare_val = 111_540  # tokens of its 10 % split
    assert plan_evaluation(tiny_shakespeare_val, 128, 64, None).eval_iters is None
    large = plan_evaluation(FULL_PASS_MAX_WINDOWS + 129, 128, 64, None)
    assert large.eval_iters == SAMPLED_EVAL_BATCHES and large.to_dict()["mode"] == "sampled"
    assert "sample of 256 batches of 64" in large.describe()
    assert plan_evaluation(10**8, 128, 64, 5).eval_iters == 5


def test_data_prepare_builds_then_finds_the_cache(text_file, tmp_path):
    from typer.testing import CliRunner

    from myllm import cli

    args = ["data", "prepare", str(text_file), "--cache-dir", str(tmp_path / "cache")]
    first = CliRunner().invoke(cli.app, args)
    second = CliRunner().invoke(cli.app, args)
    assert first.exit_code == 0 and "written" in first.output, first.output
    assert second.exit_code == 0 and "already up to date" in second.output
    assert len(list((tmp_path / "cache").glob("*.tokens"))) == 1
    bad = CliRunner().invoke(cli.app, [*args, "--tokenizer", "word"])
    assert isinstance(bad.exception, UserError) and "--tokenizer char or byte" in str(bad.exception)
    missing = CliRunner().invoke(cli.app, ["data", "prepare", str(tmp_path / "none.txt")])
    assert "none.txt not found" in str(missing.exception)
