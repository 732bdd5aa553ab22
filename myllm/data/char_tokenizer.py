"""CharTokenizer: the reference's character-level vocabulary, shared by both backends."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from myllm.data.text_file import decoded_chunks
from myllm.errors import UserError

FORMAT = "myllm.char_tokenizer"
UNICODE_POINTS = 0x110000


class CharTokenizer:
    """Maps each character of a sorted vocabulary to its index (the reference's stoi / itos)."""

    mode = "char"
    unit = "character"
    FORMAT = FORMAT
    alphabet_size = UNICODE_POINTS

    def __init__(self, chars: list[str]):
        if len(set(chars)) != len(chars):
            raise UserError(
                "tokenizer vocabulary has repeated characters: rebuild it from the text"
            )
        self.chars = list(chars)
        self.char_to_idx = {ch: i for i, ch in enumerate(self.chars)}

    @classmethod
    def build_vocab(cls, text: str) -> CharTokenizer:
        """Vocabulary = sorted set of the text's characters, as in the reference."""
        return cls(sorted(set(text)))

    @classmethod
    def from_symbols(cls, symbols: np.ndarray) -> CharTokenizer:
        """The tokenizer of the sorted code points found in a text (the token cache's scan)."""
        return cls([chr(int(point)) for point in symbols])

    @classmethod
    def from_vocabulary(cls, vocabulary: list[str]) -> CharTokenizer:
        return cls(list(vocabulary))

    @staticmethod
    def symbol_chunks(
        path: Path, chunk_bytes: int | None = None
    ) -> Iterator[tuple[bytes, np.ndarray]]:
        """(raw chunk, its code points): the text decoded from UTF-8 a chunk at a time."""
        return decoded_chunks(path, chunk_bytes)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def vocabulary(self) -> list[str]:
        return self.chars

    @property
    def index(self) -> dict[str, int]:
        return self.char_to_idx

    def show(self, symbols: list[str]) -> str:
        return " ".join(repr(ch) for ch in symbols[:20])

    def unknown_characters(self, text: str) -> list[str]:
        return sorted(set(text) - self.char_to_idx.keys())

    def encode(self, text: str, skip_unknown: bool = False) -> list[int]:
        """Indices of `text`; characters outside the vocabulary raise a UserError naming them."""
        unknown = self.unknown_characters(text)
        if unknown and not skip_unknown:
            raise UserError(
                f"{len(unknown)} character(s) not in the vocabulary: {self.show(unknown)}; "
                "remove them or pass --skip-unknown"
            )
        return [self.char_to_idx[ch] for ch in text if ch in self.char_to_idx]

    def decode(self, indices) -> str:
        return "".join(self.chars[int(i)] for i in indices)

    def stream_decoder(self) -> Callable[[int], str]:
        """One token is one character: each decodes on its own."""
        return lambda token: self.decode([token])

    def to_json(self) -> str:
        return json.dumps(
            {"format": FORMAT, "vocab_size": self.vocab_size, "chars": self.chars},
            ensure_ascii=False,
        )

    def save(self, path: str | Path) -> None:
        from myllm.atomic import atomic_write_text

        atomic_write_text(Path(path), self.to_json())

    @classmethod
    def from_payload(cls, payload: dict, path: Path) -> CharTokenizer:
        """The tokenizer of a parsed tokenizer.json whose format is FORMAT, checked whole."""
        return cls(tokenizer_chars(payload, path))


def tokenizer_chars(payload: object, path: Path) -> list[str]:
    """The vocabulary of a parsed tokenizer.json, checked whole, or a UserError naming the problem.

    Checked: the format tag, a list of single characters without repeats, and a vocab_size that
    equals its length.
    """
    problem = tokenizer_problem(payload)
    if problem is not None:
        raise UserError(
            f"tokenizer file {path} is not a valid myllm tokenizer.json ({problem}): "
            "use the tokenizer.json written beside the checkpoint"
        )
    assert isinstance(payload, dict)
    return list(payload["chars"])


def tokenizer_problem(payload: object) -> str | None:
    """What is wrong with a parsed tokenizer.json, or None when nothing is."""
    if not isinstance(payload, dict):
        return f"a JSON {type(payload).__name__}, not an object"
    if payload.get("format") != FORMAT:
        return f"format {payload.get('format')!r}, expected {FORMAT!r}"
    chars = payload.get("chars")
    if not isinstance(chars, list) or not chars:
        return "no list of characters under 'chars'"
    for index, entry in enumerate(chars):
        if not isinstance(entry, str) or len(entry) != 1:
            return f"entry {index} is {entry!r}, not one character"
    repeated = sorted(ch for ch, count in Counter(chars).items() if count > 1)
    if repeated:
        return f"repeated characters {' '.join(repr(ch) for ch in repeated[:5])}"
    vocab_size = payload.get("vocab_size")
    if vocab_size != len(chars) or isinstance(vocab_size, bool):
        return f"vocab_size {vocab_size!r} but {len(chars)} characters"
    return None
