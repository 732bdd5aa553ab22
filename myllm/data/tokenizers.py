"""The Tokenizer protocol and its registry: one class per --tokenizer mode, found by name or file.

Everything that differs between modes (what a symbol of the text is, the unit of bits per
symbol, the tokenizer.json format, how a stream of tokens decodes) is a member of the class, so
the data path, the cache, training and generation never compare the mode as a string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from myllm.data.byte_tokenizer import ByteTokenizer
from myllm.data.char_tokenizer import CharTokenizer
from myllm.errors import UserError
from myllm.paths import check_file

# --tokenizer NAME -> its class.
TOKENIZERS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "byte": ByteTokenizer}
DAMAGED_FIX = "use the tokenizer.json written beside the checkpoint"


class Tokenizer(Protocol):
    """A vocabulary of symbols (characters or byte values) and the ids that stand for them."""

    mode: ClassVar[str]  # its --tokenizer name
    unit: ClassVar[str]  # what one token is, for "bits per ...": character or byte
    FORMAT: ClassVar[str]  # the "format" of its tokenizer.json
    alphabet_size: ClassVar[int]  # the symbols a text can hold: every code point, or 256 bytes

    @property
    def vocab_size(self) -> int: ...
    @property
    def vocabulary(self) -> list[Any]:
        """The symbols in id order, as the token cache's header stores them (JSON)."""

    @property
    def index(self) -> dict[Any, int]:
        """symbol -> id."""

    def encode(self, text: str, skip_unknown: bool = False) -> list[int]: ...
    def decode(self, indices: Any) -> str: ...
    def stream_decoder(self) -> Callable[[int], str]:
        """Decode one token at a time for streaming output."""

    def show(self, symbols: list[Any]) -> str:
        """Symbols as an error message names them."""

    def save(self, path: str | Path) -> None: ...
    @classmethod
    def from_symbols(cls, symbols: np.ndarray) -> Tokenizer:
        """The tokenizer of the sorted symbols (code points or byte values) found in a text."""

    @classmethod
    def from_vocabulary(cls, vocabulary: list[Any]) -> Tokenizer: ...
    @classmethod
    def from_payload(cls, payload: dict[str, Any], path: Path) -> Tokenizer: ...
    @staticmethod
    def symbol_chunks(
        path: Path, chunk_bytes: int | None = None
    ) -> Iterator[tuple[bytes, np.ndarray]]:
        """(raw chunk, its symbols) for each chunk of the file at `path`."""


def tokenizer_class(mode: str) -> type[Tokenizer]:
    """The class of --tokenizer `mode`, or a UserError naming the modes."""
    if mode not in TOKENIZERS:
        choices = " or ".join(TOKENIZERS)
        raise UserError(f"unknown tokenizer mode {mode!r}: use --tokenizer {choices}")
    return TOKENIZERS[mode]


def unit_name(mode: str) -> str:
    """What one token of `mode` is, for "bits per ..." in logs."""
    return tokenizer_class(mode).unit


def load_tokenizer(
    path: str | Path, fix: str = "pass --tokenizer PATH/tokenizer.json"
) -> Tokenizer:
    """The tokenizer in `path`, of the class its "format" names; `fix` says how to fix a missing
    or unreadable file in the command at hand."""
    path = Path(path)
    check_file(path, "tokenizer file", fix)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        raise UserError(
            f"tokenizer file {path} is not a myllm tokenizer.json ({error}): {DAMAGED_FIX}"
        ) from None
    formats = {cls.FORMAT: cls for cls in TOKENIZERS.values()}
    found = payload.get("format") if isinstance(payload, dict) else None
    if found not in formats:
        problem = (
            f"format {found!r}, expected one of {', '.join(map(repr, formats))}"
            if isinstance(payload, dict)
            else f"a JSON {type(payload).__name__}, not an object"
        )
        raise UserError(
            f"tokenizer file {path} is not a valid myllm tokenizer.json ({problem}): {DAMAGED_FIX}"
        )
    return formats[found].from_payload(payload, path)
