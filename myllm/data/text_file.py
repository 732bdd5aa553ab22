"""A data file read as the token cache reads it: checked, then in chunks, never whole.

UTF-8 is decoded incrementally, so a character split across two chunks is decoded once, whole.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from myllm.errors import UserError
from myllm.paths import check_file

CHUNK_BYTES = 16 << 20  # per read: bounds the memory a cache build uses (about 30x this at peak)

# progress(stage, done_bytes, total_bytes); stage is "hash", "scan", "encode" or "verify".
Progress = Callable[[str, int, int], None]


def check_data_file(path: Path) -> None:
    """A UserError naming what `path` is when it is not a readable, non-empty regular file."""
    check_file(path, "data file", "pass --data PATH of a readable text file (`myllm data fetch`)")
    if path.stat().st_size == 0:
        raise UserError(f"data file {path} is empty: pass a text file with content")


def read_chunks(path: Path, chunk_bytes: int | None = None) -> Iterator[bytes]:
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            yield chunk


def decoded_chunks(
    path: Path, chunk_bytes: int | None = None
) -> Iterator[tuple[bytes, np.ndarray]]:
    """(raw chunk, its code points as uint32) for each chunk of a UTF-8 file, decoded incrementally.

    A character whose bytes straddle two chunks comes out whole with the later chunk.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    offset = 0
    chunks = read_chunks(path, chunk_bytes)
    for chunk, final in _with_final(chunks):
        held_back = len(decoder.getstate()[0])
        try:
            text = decoder.decode(chunk, final=final)
        except UnicodeDecodeError as error:
            raise UserError(
                f"data file {path} is not UTF-8 text (byte {offset - held_back + error.start}): "
                "pass --tokenizer byte to train on its bytes, or convert it, "
                "e.g. `iconv -f latin1 -t utf-8`"
            ) from None
        offset += len(chunk)
        yield chunk, np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _with_final(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Each chunk with a flag that is True for the last one (an empty last chunk if needed)."""
    previous = None
    for chunk in chunks:
        if previous is not None:
            yield previous, False
        previous = chunk
    yield (previous or b""), True


def hash_file(path: Path, progress: Progress | None = None) -> tuple[str, int]:
    """sha256 and size of `path`, read in chunks."""
    check_data_file(path)
    total = path.stat().st_size
    digest, done = hashlib.sha256(), 0
    for chunk in read_chunks(path):
        digest.update(chunk)
        done += len(chunk)
        if progress:
            progress("hash", done, total)
    return digest.hexdigest(), done
