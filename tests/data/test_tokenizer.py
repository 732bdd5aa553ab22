"""CharTokenizer: the reference's vocabulary, round trips, clear errors."""

import pytest

from myllm.data.char_tokenizer import CharTokenizer
from myllm.data.tokenizers import load_tokenizer
from myllm.errors import UserError
from tests.helpers import sample_text


def test_vocabulary_is_sorted_set_of_characters():
    tokenizer = CharTokenizer.build_vocab("hello world")
    assert tokenizer.chars == sorted(set("hello world"))
    assert tokenizer.vocab_size == 8


def test_encode_decode_round_trip_on_real_text():
    text = sample_text(5000)
    tokenizer = CharTokenizer.build_vocab(text)
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_unknown_characters_are_named_or_skipped():
    tokenizer = CharTokenizer.build_vocab("abc")
    with pytest.raises(UserError, match=r"2 character\(s\) not in the vocabulary: 'x' 'z'"):
        tokenizer.encode("axbz")
    assert tokenizer.encode("axbz", skip_unknown=True) == [0, 1]


def test_save_load_round_trip_keeps_unicode(tmp_path):
    tokenizer = CharTokenizer.build_vocab("naïve café — ok\n")
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert loaded.chars == tokenizer.chars


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match=r"not a myllm tokenizer\.json"):
        load_tokenizer(tmp_path / "bad.json")
