"""Token cache: a text is encoded once into a compact file that later runs memory-map.

Re-encoding a text at every start costs time and ~26 bytes of memory per character; the cache
costs one or two bytes per token on disk and almost nothing in memory (the operating system pages
the tokens in as the sampler touches them). The file is keyed by the text's sha256 and the split
settings, so a changed text or split gets a new file; the text is hashed at every start (about
1 GB/s) rather than trusting its modification time.

Building reads the text twice in chunks, never holding it whole: pass 1 hashes it and counts the
symbols (characters, or bytes in byte mode) to find the vocabulary; pass 2 encodes each chunk with
a lookup table and appends it to the file. UTF-8 is decoded incrementally, so a character split
across two chunks is decoded once, whole.

File layout: MAGIC, header length (uint64 little-endian), the JSON header (vocabulary, dtype,
token count, split, the text's sha256, a crc32 of the tokens), zero padding to ALIGN bytes, then
the tokens (uint8 when the vocabulary has at most 256 entries, else uint16 / uint32). A file whose
magic, header, size or checksum is wrong is reported and rebuilt, never used.

Where: --cache-dir, else $MYLLM_CACHE, else `.myllm_cache/` beside the text (as nanoGPT writes
train.bin beside its data).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from myllm.atomic import atomic_path
from myllm.data.byte_tokenizer import ByteTokenizer
from myllm.data.char_tokenizer import CharTokenizer
from myllm.data.sampler import check_data_file
from myllm.data.tokenizers import Tokenizer, check_mode
from myllm.errors import UserError

CACHE_ENV = "MYLLM_CACHE"
DEFAULT_CACHE_FOLDER = ".myllm_cache"
MAGIC = b"MYLLMTOK"
FORMAT = "myllm.data.token_cache"
VERSION = 1
CHUNK_BYTES = 16 << 20  # per read: bounds the memory a build uses (about 30x this at peak)
ALIGN = 64
UNICODE_POINTS = 0x110000

# progress(stage, done_bytes, total_bytes); stage is "scan", "encode" or "verify".
Progress = Callable[[str, int, int], None]


class CacheDamaged(Exception):
    """A cache file that must not be used; the message says what is wrong with it."""


@dataclass(frozen=True)
class TextScan:
    """Pass 1 over a text: its identity and its vocabulary."""

    sha256: str
    size_bytes: int
    mode: str
    symbols: np.ndarray  # sorted code points (char mode) or byte values (byte mode) present
    num_tokens: int


@dataclass
class CachedTokens:
    """The memory-mapped tokens of one text, its vocabulary and the split index."""

    path: Path
    tokens: np.ndarray  # [num_tokens] uint8 / uint16 / uint32, memory-mapped read-only
    tokenizer: Tokenizer
    split: int
    built: bool  # True when this call wrote the file (first run, changed text, damaged file)
    rebuilt_because: str | None = None


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


def split_index(num_tokens: int, val_split: float) -> int:
    """The reference's split: int(len(tokens) * (1 - val_split))."""
    return int(num_tokens * (1 - val_split))


def token_dtype(vocab_size: int) -> np.dtype:
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


# --- reading the text in chunks ---


def read_chunks(path: Path, chunk_bytes: int | None = None):
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            yield chunk


def decoded_chunks(path: Path, chunk_bytes: int | None = None):
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


def _with_final(chunks):
    """Each chunk with a flag that is True for the last one (an empty last chunk if needed)."""
    previous = None
    for chunk in chunks:
        if previous is not None:
            yield previous, False
        previous = chunk
    yield (previous or b""), True


def symbol_chunks(path: Path, mode: str, chunk_bytes: int | None = None):
    """(raw chunk, its symbols): code points in char mode, byte values in byte mode."""
    if mode == "byte":
        for chunk in read_chunks(path, chunk_bytes):
            yield chunk, np.frombuffer(chunk, dtype=np.uint8)
    else:
        yield from decoded_chunks(path, chunk_bytes)


def scan_text(
    path: Path, mode: str, progress: Progress | None = None, chunk_bytes: int | None = None
) -> TextScan:
    """Pass 1: sha256 of the file and the symbols it contains, a chunk at a time."""
    check_data_file(path)
    total = path.stat().st_size
    digest = hashlib.sha256()
    present = np.zeros(256 if mode == "byte" else UNICODE_POINTS, dtype=bool)
    done = num_tokens = 0
    for chunk, symbols in symbol_chunks(path, mode, chunk_bytes):
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


# --- the cache file ---


def vocabulary_of(mode: str, symbols: np.ndarray) -> list:
    """The JSON form of a vocabulary: byte values (byte mode), or characters."""
    if mode == "byte":
        return [int(value) for value in symbols]
    return [chr(int(point)) for point in symbols]


def tokenizer_from_vocabulary(mode: str, vocabulary: list) -> Tokenizer:
    return ByteTokenizer(list(vocabulary)) if mode == "byte" else CharTokenizer(list(vocabulary))


def build_cache(
    path: Path,
    scan: TextScan,
    val_split: float,
    destination: Path,
    progress: Progress | None = None,
    chunk_bytes: int | None = None,
) -> None:
    """Pass 2: encode the text chunk by chunk into `destination`, atomically."""
    dtype = token_dtype(len(scan.symbols))
    lookup = np.zeros(int(scan.symbols[-1]) + 1, dtype=dtype)
    lookup[scan.symbols] = np.arange(len(scan.symbols), dtype=dtype)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "mode": scan.mode,
        "val_split": val_split,
        "source_sha256": scan.sha256,
        "source_bytes": scan.size_bytes,
        "vocab": vocabulary_of(scan.mode, scan.symbols),
        "dtype": dtype.name,
        "num_tokens": scan.num_tokens,
        "split": split_index(scan.num_tokens, val_split),
        "tokens_crc32": "00000000",  # filled in once the tokens are written (same length)
    }
    prefix = _encode_prefix(header)
    crc, written, done = 0, 0, 0
    with atomic_path(destination) as temp, open(temp, "wb") as out:
        out.write(prefix)
        for chunk, symbols in symbol_chunks(path, scan.mode, chunk_bytes):
            tokens = lookup[symbols]
            crc = zlib.crc32(tokens, crc)
            out.write(tokens.tobytes())
            written += len(tokens)
            done += len(chunk)
            if progress:
                progress("encode", done, scan.size_bytes)
        if written != scan.num_tokens:
            raise UserError(f"data file {path} changed while it was being encoded: run again")
        header["tokens_crc32"] = f"{crc:08x}"
        out.seek(0)
        out.write(_encode_prefix(header))


def _encode_prefix(header: dict) -> bytes:
    body = json.dumps(header, ensure_ascii=False).encode("utf-8")
    prefix = MAGIC + struct.pack("<Q", len(body)) + body
    return prefix + b"\0" * (-len(prefix) % ALIGN)


def read_header(path: Path) -> tuple[dict, int]:
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
        tokenizer = tokenizer_from_vocabulary(mode, header["vocab"])
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
    check_mode(mode)
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
