"""A myllm model as a GGUF file for llama.cpp (`llama-cli`, llama-cpp-python): arch "gpt2".

Written with the `gguf` package, llama.cpp's own. The tensors are the GGUF_GPT2 table below: GGUF
keeps torch's [out, in] layout (ggml lists the axes the other way round), so nothing is
transposed; q, k and v are one attn_qkv tensor with a zero bias. Weight matrices are float32 or
float16 (`--outtype`), norms and biases float32, as llama.cpp's own converter writes them.

The tokenizer is llama.cpp's "gpt2" BPE: each myllm token spelled in GPT-2's byte-level
alphabet, with merges that only join the bytes of one multi-byte character again, so llama.cpp
splits text into one token per character (or byte), with myllm's ids; then END_OF_TEXT, its bos
and eos, with a zero embedding row (myllm/interop/hf_tokenizer.py says why).

llama.cpp computes GELU's tanh form: a model trained with --activation gelu_tanh runs exactly
(to float32 rounding) there; one trained with the exact GELU runs with slightly different logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from myllm.checkpoint.state import Checkpoint
from myllm.data.byte_tokenizer import ByteTokenizer
from myllm.data.tokenizers import Tokenizer
from myllm.interop import require
from myllm.interop.hf import LAYER_NORM_EPS
from myllm.interop.hf_names import BLOCK, QKV
from myllm.interop.hf_tokenizer import END_OF_TEXT, byte_to_unicode, token_texts
from myllm.interop.weight_map import Entry, WeightMap, entry, weight_and_bias

OUTTYPES = ("f32", "f16")
# llama.cpp requires a merges list and gguf writes no empty array: with no multi-byte character
# to join, one merge that never applies (the end token is never a symbol inside a word).
NO_MERGE = f"{END_OF_TEXT} {END_OF_TEXT}"
THEIR_BLOCK = "blk.{layer}."


def layer(theirs: str, ours: str) -> tuple[Entry, Entry]:
    return weight_and_bias(THEIR_BLOCK + theirs, BLOCK + ours)


# llama.cpp's src/models/gpt2.cpp tensors (output.weight absent: tied to token_embd).
GGUF_GPT2 = WeightMap(
    before=(
        entry("token_embd.weight", "token_embedding.weight"),
        entry("position_embd.weight", "position_embedding.weight"),
    ),
    per_layer=(
        *layer("attn_norm", "ln1"),
        entry(THEIR_BLOCK + "attn_qkv.weight", *QKV),
        entry(THEIR_BLOCK + "attn_qkv.bias"),  # myllm's q, k, v have none: zeros
        *layer("attn_output", "attention.W_o"),
        *layer("ffn_norm", "ln2"),
        *layer("ffn_up", "feed_forward.linear1"),
        *layer("ffn_down", "feed_forward.linear2"),
    ),
    after=weight_and_bias("output_norm", "ln_final"),
)


def gguf_vocabulary(tokenizer: Tokenizer) -> tuple[list[str], list[str]]:
    """(token texts, merges) of llama.cpp's gpt2 tokenizer for myllm's tokens and END_OF_TEXT."""
    if isinstance(tokenizer, ByteTokenizer):
        return [*token_texts(tokenizer), END_OF_TEXT], []
    symbols = byte_to_unicode()
    texts, merges = [], {}
    for char in tokenizer.chars:
        spelled = [symbols[byte] for byte in char.encode("utf-8")]
        for end in range(2, len(spelled) + 1):  # "a b", then "ab c", ...
            merges.setdefault(f"{''.join(spelled[: end - 1])} {spelled[end - 1]}", None)
        texts.append("".join(spelled))
    return [*texts, END_OF_TEXT], list(merges)


def write_gguf(checkpoint: Checkpoint, tokenizer: Tokenizer, path: Path, outtype: str) -> None:
    """The GGUF file, written atomically."""
    from myllm.atomic import atomic_write

    atomic_write(path, lambda temp: _write(checkpoint, tokenizer, temp, outtype, path.stem))


def _write(checkpoint: Checkpoint, tokenizer: Tokenizer, path: Path, outtype: str, name: str):
    gguf = require("gguf", "convert --to gguf")
    config = checkpoint.model_config
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_name(name)
    writer.add_context_length(config.max_seq_len)
    writer.add_embedding_length(config.d_model)
    writer.add_feed_forward_length(config.d_ff)
    writer.add_block_count(config.n_layers)
    writer.add_head_count(config.n_heads)
    writer.add_layer_norm_eps(LAYER_NORM_EPS)
    half = outtype == "f16"
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if half else gguf.LlamaFileType.ALL_F32)
    texts, merges = gguf_vocabulary(tokenizer)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(texts)
    normal, control = gguf.TokenType.NORMAL, gguf.TokenType.CONTROL
    writer.add_token_types([normal] * (len(texts) - 1) + [control])
    writer.add_token_merges(merges or [NO_MERGE])
    writer.add_bos_token_id(len(texts) - 1)
    writer.add_eos_token_id(len(texts) - 1)
    writer.add_add_bos_token(False)
    tensors = GGUF_GPT2.to_foreign(checkpoint.weights, config.n_layers, optional=True)
    end_row = np.zeros((1, config.d_model), np.float32)
    tensors["token_embd.weight"] = np.concatenate([tensors["token_embd.weight"], end_row])
    for name, array in tensors.items():
        writer.add_tensor(name, array.astype(np.float16) if half and array.ndim == 2 else array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
