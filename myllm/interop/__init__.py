"""Other tools' formats: the name-table mechanism (weight_map), nanoGPT's ckpt.pt and meta.pkl,
Hugging Face GPT-2 directories (hf, hf_names, hf_tokenizer) and GGUF (gguf)."""

from __future__ import annotations

import importlib
from types import ModuleType

from myllm.errors import UserError


def require(package: str, purpose: str) -> ModuleType:
    """Import `package` for `purpose`, or say in one line how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise UserError(
            f"{purpose} needs the {package} package: pip install 'myllm-twin[interop]'"
        ) from None
