"""Hugging Face GPT-2's tensor names in weight_map's declarative form.

The names are those of openai-community/gpt2's model.safetensors (GPT2Model's, without the
`transformer.` prefix that GPT2LMHeadModel adds: transformers reads both, mlx-lm's GPT-2 only
these). GPT-2 differs from myllm in three regular ways, each a table entry:
- `c_attn` is W_q, W_k and W_v stacked on the output axis, with a bias myllm's q, k, v have not
  (written as zeros; a checkpoint whose bias is not zero is refused on import);
- Conv1D keeps its weight [in, out]: every Linear entry is transposed;
- lm_head is tied to wte, so it is not stored.
"""

from __future__ import annotations

from myllm.interop.weight_map import Entry, WeightMap, entry, weight_and_bias

BLOCK, THEIR_BLOCK = "blocks.{layer}.", "h.{layer}."
QKV = tuple(BLOCK + f"attention.{part}.weight" for part in ("W_q", "W_k", "W_v"))
MODEL_PREFIX = "transformer."  # GPT2LMHeadModel.save_pretrained's names carry it


def layer(theirs: str, ours: str, transpose: bool = False) -> tuple[Entry, Entry]:
    return weight_and_bias(THEIR_BLOCK + theirs, BLOCK + ours, transpose=transpose)


GPT2 = WeightMap(
    before=(
        entry("wte.weight", "token_embedding.weight"),
        entry("wpe.weight", "position_embedding.weight"),
    ),
    per_layer=(
        *layer("ln_1", "ln1"),
        entry(THEIR_BLOCK + "attn.c_attn.weight", *QKV, transpose=True),
        entry(THEIR_BLOCK + "attn.c_attn.bias"),  # myllm's q, k, v have none: zeros
        *layer("attn.c_proj", "attention.W_o", transpose=True),
        *layer("ln_2", "ln2"),
        *layer("mlp.c_fc", "feed_forward.linear1", transpose=True),
        *layer("mlp.c_proj", "feed_forward.linear2", transpose=True),
    ),
    after=weight_and_bias("ln_f", "ln_final"),
    # The causal-mask buffers older transformers versions saved.
    ignored=(THEIR_BLOCK + "attn.bias", THEIR_BLOCK + "attn.masked_bias"),
)
