"""ByteTokenizer: byte-level vocabulary (the bytes present, at most 256), for any file.

Byte mode trains on text that is not UTF-8 (enwik8 and the like) and its losses convert to bits
per byte, the unit such benchmarks are quoted in. It is a Tokenizer (myllm/data/tokenizers.py):
it encodes a str prompt as its UTF-8 bytes and decodes ids back to a str (invalid sequences
replaced).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from myllm.data.text_file import read_chunks
from myllm.errors import UserError

FORMAT = "myllm.data.byte_tokenizer"


class ByteTokenizer:
    """Maps each byte value of a sorted vocabulary to its index."""

    mode = "byte"
    unit = "byte"
    FORMAT = FORMAT
    alphabet_size = 256

    def __init__(self, byte_values: list[int]):
        if sorted(set(byte_values)) != list(byte_values) or not all(
            isinstance(value, int) and 0 <= value <= 255 for value in byte_values
        ):
            raise UserError(
                "byte tokenizer vocabulary must be sorted distinct byte values 0..255: "
                "rebuild it from the data"
            )
        self.byte_values = list(byte_values)
        self.byte_to_idx = {value: i for i, value in enumerate(self.byte_values)}

    @classmethod
    def build_vocab(cls, data: bytes | str) -> ByteTokenizer:
        """Vocabulary = sorted set of the bytes of `data` (a str counts as its UTF-8 bytes)."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        counts = np.bincount(np.frombuffer(raw, dtype=np.uint8), minlength=256)
        return cls(np.flatnonzero(counts).tolist())

    @classmethod
    def from_symbols(cls, symbols: np.ndarray) -> ByteTokenizer:
        """The tokenizer of the sorted byte values found in a file (the token cache's scan)."""
        return cls([int(value) for value in symbols])

    @classmethod
    def from_vocabulary(cls, vocabulary: list[int]) -> ByteTokenizer:
        return cls(list(vocabulary))

    @staticmethod
    def symbol_chunks(
        path: Path, chunk_bytes: int | None = None
    ) -> Iterator[tuple[bytes, np.ndarray]]:
        """(raw chunk, its byte values) for each chunk of any file."""
        for chunk in read_chunks(path, chunk_bytes):
            yield chunk, np.frombuffer(chunk, dtype=np.uint8)

    @property
    def vocab_size(self) -> int:
        return len(self.byte_values)

    @property
    def vocabulary(self) -> list[int]:
        return self.byte_values

    @property
    def index(self) -> dict[int, int]:
        return self.byte_to_idx

    def show(self, symbols: list[int]) -> str:
        return " ".join(f"0x{value:02x}" for value in symbols[:20])

    @property
    def char_to_idx(self) -> dict[str, int]:
        """The one-byte (ASCII) characters of the vocabulary, as CharTokenizer names them."""
        return {chr(value): i for value, i in self.byte_to_idx.items() if value < 128}

    def unknown_bytes(self, raw: bytes) -> list[int]:
        return sorted(set(raw) - self.byte_to_idx.keys())

    def encode(self, text: str | bytes, skip_unknown: bool = False) -> list[int]:
        """Indices of the UTF-8 bytes of `text`; bytes outside the vocabulary raise a UserError."""
        raw = text.encode("utf-8") if isinstance(text, str) else text
        unknown = self.unknown_bytes(raw)
        if unknown and not skip_unknown:
            raise UserError(
                f"{len(unknown)} byte(s) not in the vocabulary: {self.show(unknown)}; "
                "remove them or pass --skip-unknown"
            )
        return [self.byte_to_idx[value] for value in raw if value in self.byte_to_idx]

    def decode_bytes(self, indices) -> bytes:
        return bytes(self.byte_values[int(i)] for i in indices)

    def decode(self, indices) -> str:
        """The text of `indices`; byte sequences that are not UTF-8 become U+FFFD."""
        return self.decode_bytes(indices).decode("utf-8", errors="replace")

    def stream_decoder(self) -> Callable[[int], str]:
        """A character may span tokens: the decoder holds back its first bytes until it is whole."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda token: decoder.decode(self.decode_bytes([token]))

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "mode": self.mode,
                "vocab_size": self.vocab_size,
                "bytes": self.byte_values,
            }
        )

    def save(self, path: str | Path) -> None:
        from myllm.atomic import atomic_write_text

        atomic_write_text(Path(path), self.to_json())

    @classmethod
    def from_payload(cls, payload: dict, path: Path) -> ByteTokenizer:
        """The tokenizer of a parsed tokenizer.json whose format is FORMAT."""
        values = payload.get("bytes")
        if not isinstance(values, list) or payload.get("vocab_size") != len(values):
            raise UserError(
                f"tokenizer file {path} is a damaged byte tokenizer (bytes / vocab_size): "
                "use the tokenizer.json written beside the checkpoint"
            )
        return cls(values)
