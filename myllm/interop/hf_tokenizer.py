"""myllm's char and byte tokenizers as Hugging Face `tokenizer.json` files, and back.

Built with the `tokenizers` library as BPE models without merges, so every text splits into one
token per character (char mode: no pre-tokenizer, each character is a token) or per byte (byte
mode: GPT-2's ByteLevel pre-tokenizer spells each byte as one symbol), with myllm's ids.
The decoders join tokens without spaces (Fuse; ByteLevel).

One token is added after myllm's: END_OF_TEXT, GPT-2's bos and eos, which transformers, mlx-lm
and llama.cpp expect a model to have (llama.cpp otherwise takes token 11, a character, as its
end of generation). The exported model's embedding row for it is zero, so its logit is exactly
0 and the characters' logits are myllm's: greedy decoding only ends there if every character's
logit is below 0.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from myllm.data.byte_tokenizer import ByteTokenizer
from myllm.data.char_tokenizer import CharTokenizer
from myllm.data.tokenizers import Tokenizer
from myllm.errors import UserError
from myllm.interop import require

END_OF_TEXT = "<|endoftext|>"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@cache
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: each byte as one printable character (bytes_to_unicode)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    extra = (byte for byte in range(256) if byte not in printable)
    table = {byte: chr(byte) for byte in printable}
    table.update({byte: chr(256 + n) for n, byte in enumerate(extra)})
    return dict(sorted(table.items()))


def token_texts(tokenizer: Tokenizer) -> list[str]:
    """The text of each myllm token in the tokenizer.json: the character, or the byte's symbol."""
    if isinstance(tokenizer, ByteTokenizer):
        return [byte_to_unicode()[value] for value in tokenizer.byte_values]
    return list(tokenizer.chars)


def hf_tokenizer(tokenizer: Tokenizer):
    """A `tokenizers.Tokenizer`: myllm's tokens, then END_OF_TEXT as a special token."""
    tokenizers = require("tokenizers", "convert --to hf")
    texts = [*token_texts(tokenizer), END_OF_TEXT]
    vocab = {text: i for i, text in enumerate(texts)}
    hf = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=[]))
    if isinstance(tokenizer, ByteTokenizer):
        hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(
            add_prefix_space=False, use_regex=False
        )
        hf.decoder = tokenizers.decoders.ByteLevel()
    else:
        hf.decoder = tokenizers.decoders.Fuse()
    hf.add_special_tokens([END_OF_TEXT])
    return hf


def tokenizer_config(context_length: int) -> dict:
    """tokenizer_config.json: the fast tokenizer of tokenizer.json, nothing added to a prompt."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": END_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "model_max_length": context_length,
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
    }


def write_hf_tokenizer(tokenizer: Tokenizer, directory: Path, context_length: int) -> None:
    from myllm.atomic import atomic_write, atomic_write_text

    hf = hf_tokenizer(tokenizer)
    atomic_write(directory / "tokenizer.json", lambda temp: hf.save(str(temp)))
    config = json.dumps(tokenizer_config(context_length), indent=2)
    atomic_write_text(directory / "tokenizer_config.json", config + "\n")


def read_hf_tokenizer(directory: Path) -> tuple[Tokenizer, bool]:
    """(myllm tokenizer, whether END_OF_TEXT follows its tokens) of a model directory.

    Refused in one line: no tokenizer.json, merges (a BPE vocabulary of multi-character tokens),
    any other special token, or tokens that are not one character (or one byte) each.
    """
    path = directory / "tokenizer.json"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        model, pre_tokenizer = payload["model"], payload.get("pre_tokenizer")
        vocab, merges = model["vocab"], model.get("merges") or []
        added = [token["content"] for token in payload.get("added_tokens") or []]
    except FileNotFoundError:
        raise UserError(f"{directory} has no tokenizer.json: myllm needs its vocabulary") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{path} is not a tokenizer.json ({error}): pass the model's own") from None
    if model.get("type") != "BPE" or merges:
        raise UserError(
            f"{path} is a {model.get('type')} vocabulary with {len(merges)} merges: myllm's "
            "tokenizers are one token per character or byte (a char- or byte-level model only)"
        )
    texts = [text for text, _ in sorted(vocab.items(), key=lambda item: item[1])]
    if sorted(vocab.values()) != list(range(len(texts))) or set(added) - {END_OF_TEXT}:
        raise UserError(
            f"{path}: special tokens {sorted(set(added) - {END_OF_TEXT})} or gaps in the ids, "
            f"which myllm's tokenizers cannot hold (only a final {END_OF_TEXT})"
        )
    has_end = bool(texts) and texts[-1] == END_OF_TEXT
    texts = texts[:-1] if has_end else texts
    byte_level = (pre_tokenizer or {}).get("type") == "ByteLevel"
    return _myllm_tokenizer(texts, byte_level, path), has_end


def _myllm_tokenizer(texts: list[str], byte_level: bool, path: Path) -> Tokenizer:
    if not all(len(text) == 1 for text in texts):
        raise UserError(f"{path} has tokens longer than one character: myllm cannot hold them")
    if not byte_level:
        return CharTokenizer(texts)
    byte_of = {symbol: byte for byte, symbol in byte_to_unicode().items()}
    values = [byte_of.get(text, -1) for text in texts]
    if values != sorted(set(values)) or -1 in values:
        raise UserError(f"{path}: its bytes are not in myllm's order (sorted byte values)")
    return ByteTokenizer(values)
