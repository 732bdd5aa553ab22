"""The tokenizer modes (char, byte) and loading a tokenizer.json of either kind."""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from pathlib import Path

from myllm.data.byte_tokenizer import FORMAT as BYTE_FORMAT
from myllm.data.byte_tokenizer import ByteTokenizer
from myllm.data.char_tokenizer import CharTokenizer
from myllm.errors import UserError

Tokenizer = CharTokenizer | ByteTokenizer
TOKENIZER_MODES = ("char", "byte")


def check_mode(mode: str) -> str:
    if mode not in TOKENIZER_MODES:
        raise UserError(f"unknown tokenizer mode {mode!r}: use --tokenizer char or byte")
    return mode


def tokenizer_mode(tokenizer: Tokenizer) -> str:
    return "byte" if isinstance(tokenizer, ByteTokenizer) else "char"


def unit_name(mode: str) -> str:
    """What one token is, for "bits per ..." in logs."""
    return "byte" if mode == "byte" else "character"


def load_tokenizer(
    path: str | Path, fix: str = "pass --tokenizer PATH/tokenizer.json"
) -> Tokenizer:
    """The tokenizer in `path`: a byte tokenizer by its format, else a CharTokenizer.

    `fix` says how to fix a missing file in the command at hand.

    Char tokenizer.json files keep the format they always had (no mode key), so files written
    before byte mode existed load unchanged.
    """
    path = Path(path)
    if path.is_file():
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            payload = None  # CharTokenizer.load names the problem
        if isinstance(payload, dict) and payload.get("format") == BYTE_FORMAT:
            return ByteTokenizer.from_payload(payload, path)
    return CharTokenizer.load(path, fix=fix)


def stream_decoder(tokenizer: Tokenizer) -> Callable[[int], str]:
    """Decode one token at a time for streaming output; byte mode holds back split characters."""
    if isinstance(tokenizer, ByteTokenizer):
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda token: decoder.decode(tokenizer.decode_bytes([token]))
    return lambda token: tokenizer.decode([token])
