"""nanoGPT's `meta.pkl` (its character vocabulary), read without letting the pickle run code.

nanoGPT's data/shakespeare_char/prepare.py pickles {'vocab_size': int, 'itos': {int: str},
'stoi': {str: int}}. Such a pickle needs no class at all, so the unpickler here refuses every
class or function a pickle asks for: a hostile file is refused before anything in it runs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from myllm.atomic import atomic_write
from myllm.data.char_tokenizer import CharTokenizer
from myllm.errors import UserError

PLAIN_TYPES = (dict, list, str, int)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a class or function: what could run code."""


class PlainDataUnpickler(pickle.Unpickler):
    """Admits only what pickle builds without a global: dicts, lists, strings, ints."""

    def find_class(self, module: str, name: str) -> Any:
        raise RefusedGlobal(f"{module}.{name}")


def read_meta(path: Path) -> CharTokenizer:
    """The CharTokenizer of a nanoGPT meta.pkl, in nanoGPT's own index order (itos)."""
    if not path.is_file():
        raise UserError(
            f"nanoGPT vocabulary {path} not found: pass --meta PATH/meta.pkl "
            "(nanoGPT writes it to data/DATASET/meta.pkl)"
        )
    try:
        meta = PlainDataUnpickler(io.BytesIO(path.read_bytes())).load()
    except RefusedGlobal as error:
        raise UserError(
            f"{path} was refused: its pickle asks for {error}, which could run code; "
            "a nanoGPT meta.pkl holds only dicts, strings and ints: use one you trust"
        ) from None
    except OSError as error:
        raise UserError(
            f"cannot read {path} ({error.strerror or error}): pass another --meta"
        ) from None
    except Exception as error:  # random bytes, a truncated file: damaged, not hostile
        raise UserError(
            f"{path} is not a whole pickle ({error or type(error).__name__}): it is damaged or "
            "not a meta.pkl; pass nanoGPT's data/DATASET/meta.pkl with --meta"
        ) from None
    itos = meta.get("itos") if isinstance(meta, dict) else None
    if not isinstance(itos, dict) or not _is_plain(meta):
        raise UserError(f"{path} is not a nanoGPT character meta.pkl (no itos dict of strings)")
    if sorted(itos) != list(range(len(itos))) or not all(
        isinstance(ch, str) and len(ch) == 1 for ch in itos.values()
    ):
        raise UserError(
            f"{path}: itos must map 0..{len(itos) - 1} to single characters; "
            "only character-level nanoGPT vocabularies convert"
        )
    return CharTokenizer([itos[index] for index in range(len(itos))])


def meta_bytes(tokenizer: CharTokenizer) -> bytes:
    """A meta.pkl exactly as nanoGPT's prepare.py writes it."""
    meta = {
        "vocab_size": tokenizer.vocab_size,
        "itos": dict(enumerate(tokenizer.chars)),
        "stoi": {ch: index for index, ch in enumerate(tokenizer.chars)},
    }
    return pickle.dumps(meta)


def write_meta(path: Path, tokenizer: CharTokenizer) -> None:
    atomic_write(path, lambda temp: temp.write_bytes(meta_bytes(tokenizer)))


def _is_plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_is_plain(k) and _is_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain(item) for item in value)
    return isinstance(value, PLAIN_TYPES)
