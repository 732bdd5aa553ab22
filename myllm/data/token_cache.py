"""Token cache: a text is encoded once into a compact file that later runs memory-map.

Re-encoding a text at every start costs time and ~26 bytes of memory per character; the cache
costs one or two bytes per token on disk and almost nothing in memory (the operating system pages
the tokens in as the sampler touches them). The file is keyed by the text's sha256 and the split
settings, so a changed text or split gets a new file; the text is hashed at every start (about
1 GB/s) rather than trusting its modification time.

Building reads the text twice in chunks, never holding it whole: pass 1 hashes it and finds the
vocabulary (the symbols present: characters, or bytes in byte mode); pass 2 encodes each chunk with
a lookup table and appends it to the file (myllm/data/token_file.py holds its layout).

Where: --cache-dir, else $MYLLM_CACHE, else `.myllm_cache/` beside the text (as nanoGPT writes
train.bin beside its data).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from myllm.data.text_file import Progress, check_data_file, hash_file
from myllm.data.token_file import (
    CacheDamaged,
    CachedTokens,
    open_cache,
    split_index,
    token_dtype,
    write_tokens,
)
from myllm.data.tokenizers import tokenizer_class
from myllm.errors import UserError

CACHE_ENV = "MYLLM_CACHE"
DEFAULT_CACHE_FOLDER = ".myllm_cache"


@dataclass(frozen=True)
class TextScan:
    """Pass 1 over a text: its identity and its vocabulary."""

    sha256: str
    size_bytes: int
    mode: str
    symbols: np.ndarray  # sorted code points (char mode) or byte values (byte mode) present
    num_tokens: int


def resolve_cache_dir(data_path: Path, cache_dir: str | Path | None = None) -> Path:
    """--cache-dir, else $MYLLM_CACHE, else `.myllm_cache/` beside the text.

    A text in a folder this process cannot write (a read-only mount, someone else's data) gets
    the user's cache folder instead: $XDG_CACHE_HOME/myllm, by default ~/.cache/myllm.
    """
    chosen = cache_dir or os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen)
    beside = Path(data_path).resolve().parent / DEFAULT_CACHE_FOLDER
    writable = beside if beside.is_dir() else beside.parent
    if os.access(writable, os.W_OK):
        return beside
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "myllm"


def cache_file_name(sha256: str, mode: str, val_split: float) -> str:
    return f"{sha256[:24]}-{mode}-split{val_split!r}.tokens"


def scan_text(
    path: Path, mode: str, progress: Progress | None = None, chunk_bytes: int | None = None
) -> TextScan:
    """Pass 1: sha256 of the file and the symbols it contains, a chunk at a time."""
    check_data_file(path)
    tokenizer = tokenizer_class(mode)
    total = path.stat().st_size
    digest = hashlib.sha256()
    present = np.zeros(tokenizer.alphabet_size, dtype=bool)
    done = num_tokens = 0
    for chunk, symbols in tokenizer.symbol_chunks(path, chunk_bytes):
        digest.update(chunk)
        present[symbols_present(symbols, len(present))] = True
        num_tokens += len(symbols)
        done += len(chunk)
        if progress:
            progress("scan", done, total)
    return TextScan(digest.hexdigest(), done, mode, np.flatnonzero(present), num_tokens)


def symbols_present(symbols: np.ndarray, alphabet_size: int) -> np.ndarray:
    """The distinct values of `symbols`: a count per value when the chunk is large (linear time)."""
    if len(symbols) * 8 < alphabet_size:
        return np.unique(symbols)
    return np.flatnonzero(np.bincount(symbols, minlength=alphabet_size))


def build_cache(
    path: Path,
    scan: TextScan,
    val_split: float,
    destination: Path,
    progress: Progress | None = None,
    chunk_bytes: int | None = None,
) -> None:
    """Pass 2: encode the text chunk by chunk into `destination`, atomically."""
    tokenizer = tokenizer_class(scan.mode)
    dtype = token_dtype(len(scan.symbols))
    lookup = np.zeros(int(scan.symbols[-1]) + 1, dtype=dtype)
    lookup[scan.symbols] = np.arange(len(scan.symbols), dtype=dtype)
    header = {
        "mode": scan.mode,
        "val_split": val_split,
        "source_sha256": scan.sha256,
        "source_bytes": scan.size_bytes,
        "vocab": tokenizer.from_symbols(scan.symbols).vocabulary,
        "dtype": dtype.name,
        "num_tokens": scan.num_tokens,
        "split": split_index(scan.num_tokens, val_split),
    }

    def encoded() -> Iterator[np.ndarray]:
        done = 0
        for chunk, symbols in tokenizer.symbol_chunks(path, chunk_bytes):
            yield lookup[symbols]
            done += len(chunk)
            if progress:
                progress("encode", done, scan.size_bytes)

    write_tokens(destination, header, encoded(), path)


def load_cached_tokens(
    data_path: str | Path,
    mode: str = "char",
    val_split: float = 0.1,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    verify: bool = True,
) -> CachedTokens:
    """The tokens of `data_path` from its cache, building (or rebuilding) the cache if needed."""
    data_path = Path(data_path)
    tokenizer_class(mode)  # an unknown mode fails before the text is read
    sha256, _ = hash_file(data_path, progress)
    destination = resolve_cache_dir(data_path, cache_dir) / cache_file_name(sha256, mode, val_split)
    reason = None
    if destination.is_file():
        try:
            return open_cache(destination, sha256, mode, val_split, verify, progress)
        except CacheDamaged as error:
            reason = str(error)
        except OSError as error:
            reason = f"unreadable ({error.strerror or error})"
    scan = scan_text(data_path, mode, progress)
    if scan.sha256 != sha256:
        raise UserError(f"data file {data_path} changed while it was being read: run again")
    build_cache(data_path, scan, val_split, destination, progress)
    cached = open_cache(destination, sha256, mode, val_split, verify=False)
    cached.built, cached.rebuilt_because = True, reason
    return cached
