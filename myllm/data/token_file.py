"""The token cache's file: its layout, written atomically, read back only when it checks out.

Layout: MAGIC, header length (uint64 little-endian), the JSON header (vocabulary, dtype, token
count, split, the text's sha256, a crc32 of the tokens), zero padding to ALIGN bytes, then the
tokens (uint8 when the vocabulary has at most 256 entries, else uint16 / uint32). A file whose
magic, header, size or checksum is wrong is CacheDamaged: reported and rebuilt, never used.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from myllm.atomic import atomic_path
from myllm.data.text_file import CHUNK_BYTES, Progress
from myllm.data.tokenizers import Tokenizer, tokenizer_class
from myllm.errors import UserError

MAGIC = b"MYLLMTOK"
FORMAT = "myllm.data.token_cache"
VERSION = 1
ALIGN = 64


class CacheDamaged(Exception):
    """A cache file that must not be used; the message says what is wrong with it."""


@dataclass
class CachedTokens:
    """The memory-mapped tokens of one text, its vocabulary and the split index."""

    path: Path
    tokens: np.ndarray  # [num_tokens] uint8 / uint16 / uint32, memory-mapped read-only
    tokenizer: Tokenizer
    split: int
    built: bool  # True when this call wrote the file (first run, changed text, damaged file)
    rebuilt_because: str | None = None


def split_index(num_tokens: int, val_split: float) -> int:
    """The reference's split: int(len(tokens) * (1 - val_split))."""
    return int(num_tokens * (1 - val_split))


def token_dtype(vocab_size: int) -> np.dtype:
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def write_tokens(
    destination: Path, header: dict[str, Any], chunks: Iterator[np.ndarray], source: Path
) -> None:
    """Write `header` and the token `chunks` of text `source` to `destination`, atomically.

    The header's tokens_crc32 is filled in once the tokens are written (same length)."""
    header = {"format": FORMAT, "version": VERSION, **header, "tokens_crc32": "00000000"}
    crc, written = 0, 0
    with atomic_path(destination) as temp, open(temp, "wb") as out:
        out.write(_encode_prefix(header))
        for tokens in chunks:
            crc = zlib.crc32(tokens, crc)
            out.write(tokens.tobytes())
            written += len(tokens)
        if written != header["num_tokens"]:
            raise UserError(f"data file {source} changed while it was being encoded: run again")
        header["tokens_crc32"] = f"{crc:08x}"
        out.seek(0)
        out.write(_encode_prefix(header))


def _encode_prefix(header: dict[str, Any]) -> bytes:
    body = json.dumps(header, ensure_ascii=False).encode("utf-8")
    prefix = MAGIC + struct.pack("<Q", len(body)) + body
    return prefix + b"\0" * (-len(prefix) % ALIGN)


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a cache file and the offset of its tokens; CacheDamaged if unreadable."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        start = handle.read(len(MAGIC) + 8)
        if len(start) < len(MAGIC) + 8 or start[: len(MAGIC)] != MAGIC:
            raise CacheDamaged("not a myllm token cache (wrong magic)")
        (length,) = struct.unpack("<Q", start[len(MAGIC) :])
        if length > size:
            raise CacheDamaged("header longer than the file")
        try:
            header = json.loads(handle.read(length).decode("utf-8"))
        except ValueError as error:
            raise CacheDamaged(f"unreadable header ({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CacheDamaged("unreadable header (format)")
    offset = len(MAGIC) + 8 + length
    return header, offset + (-offset % ALIGN)


def open_cache(
    path: Path,
    sha256: str,
    mode: str,
    val_split: float,
    verify: bool = True,
    progress: Progress | None = None,
) -> CachedTokens:
    """Memory-map a cache file after checking header, size and (with `verify`) the checksum."""
    header, offset = read_header(path)
    expected = {"version": VERSION, "source_sha256": sha256, "mode": mode, "val_split": val_split}
    for key, value in expected.items():
        if header.get(key) != value:
            raise CacheDamaged(f"header {key} is {header.get(key)!r}, expected {value!r}")
    try:
        dtype = np.dtype(header["dtype"])
        num_tokens, split = int(header["num_tokens"]), int(header["split"])
        tokenizer = tokenizer_class(mode).from_vocabulary(header["vocab"])
    except (KeyError, TypeError, ValueError, UserError) as error:
        raise CacheDamaged(f"unreadable header ({error})") from None
    if dtype != token_dtype(tokenizer.vocab_size) or split != split_index(num_tokens, val_split):
        raise CacheDamaged("header dtype or split does not match its vocabulary and size")
    expected_size = offset + num_tokens * dtype.itemsize
    actual_size = path.stat().st_size
    if actual_size != expected_size:
        raise CacheDamaged(f"size {actual_size} bytes, expected {expected_size} (truncated?)")
    if verify:
        crc = _crc32_of_range(path, offset, actual_size, progress)
        if f"{crc:08x}" != header.get("tokens_crc32"):
            raise CacheDamaged("token checksum mismatch")
    tokens = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(num_tokens,))
    return CachedTokens(path, tokens, tokenizer, split, built=False)


def _crc32_of_range(path: Path, start: int, end: int, progress: Progress | None) -> int:
    crc = 0
    with open(path, "rb") as handle:
        handle.seek(start)
        done = start
        while chunk := handle.read(CHUNK_BYTES):
            crc = zlib.crc32(chunk, crc)
            done += len(chunk)
            if progress:
                progress("verify", done - start, end - start)
    return crc
