"""The declarative name table (myllm/interop/weight_map.py) that every converter walks both ways.

Framework-free: arrays are numpy, float32, and round trips are bit-exact."""

from __future__ import annotations

import numpy as np
import pytest

from myllm.checkpoint.state import parameter_shapes
from myllm.config.settings import ModelConfig
from myllm.errors import UserError
from myllm.interop.nanogpt import NANOGPT
from myllm.interop.weight_map import WeightMap, entry, weight_and_bias

CONFIG = ModelConfig(vocab_size=13, d_model=8, n_heads=2, n_layers=3, max_seq_len=6, d_ff=32)
# A GPT-2-like table: Conv1D weights stored [in, out], q, k, v fused, every bias present.
TRANSPOSED = WeightMap(
    before=(entry("wte", "token_embedding.weight"), entry("wpe", "position_embedding.weight")),
    per_layer=(
        *weight_and_bias("h.{layer}.ln_1", "blocks.{layer}.ln1"),
        entry(
            "h.{layer}.qkv",
            *(f"blocks.{{layer}}.attention.{part}.weight" for part in ("W_q", "W_k", "W_v")),
            transpose=True,
        ),
        *weight_and_bias("h.{layer}.o", "blocks.{layer}.attention.W_o", transpose=True),
        *weight_and_bias("h.{layer}.ln_2", "blocks.{layer}.ln2"),
        *weight_and_bias("h.{layer}.fc", "blocks.{layer}.feed_forward.linear1", transpose=True),
        *weight_and_bias("h.{layer}.proj", "blocks.{layer}.feed_forward.linear2", transpose=True),
    ),
    after=weight_and_bias("ln_f", "ln_final"),
)


def random_weights(seed: int = 0, biases: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = parameter_shapes(CONFIG)
    weights = {n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()}
    if not biases:
        weights = {n: a * 0 if n.endswith(".bias") else a for n, a in weights.items()}
    return weights


@pytest.mark.parametrize("table", [NANOGPT, TRANSPOSED], ids=["nanogpt", "transposed"])
@pytest.mark.parametrize("optional", [True, False])
def test_every_canonical_weight_goes_out_and_back_bit_exact(table, optional):
    weights = random_weights(biases=optional)
    foreign = table.to_foreign(weights, CONFIG.n_layers, optional)
    assert list(foreign) == table.foreign_names(CONFIG.n_layers, optional)  # the table's order
    back = table.from_foreign(foreign, CONFIG, "model")
    assert set(back) == set(weights)
    for name, array in weights.items():
        assert back[name].dtype == np.float32 and back[name].flags.c_contiguous
        np.testing.assert_array_equal(back[name], array, err_msg=name)


def test_transposed_and_stacked_entries_are_laid_out_as_the_foreign_program_reads_them():
    weights = random_weights()
    foreign = TRANSPOSED.to_foreign(weights, CONFIG.n_layers, optional=True)
    block = "blocks.1.attention."
    assert foreign["h.1.qkv"].shape == (8, 24)  # [in, 3 * out]
    np.testing.assert_array_equal(foreign["h.1.qkv"][:, 8:16], weights[block + "W_k.weight"].T)
    assert foreign["h.2.fc.weight"].shape == (8, 32) and foreign["h.2.fc.bias"].shape == (32,)


def test_nanogpt_without_biases_reads_as_zero_biases_and_its_qkv_bias_must_be_zero():
    foreign = NANOGPT.to_foreign(random_weights(), CONFIG.n_layers, optional=False)
    assert not any(name.endswith(".bias") for name in foreign)
    back = NANOGPT.from_foreign(foreign, CONFIG, "model")
    assert not np.any(back["blocks.0.attention.W_o.bias"]) and not np.any(back["ln_final.bias"])
    with_bias = NANOGPT.to_foreign(random_weights(), CONFIG.n_layers, optional=True)
    assert with_bias["transformer.h.2.attn.c_attn.bias"].shape == (3 * CONFIG.d_model,)
    assert NANOGPT.unrepresentable(with_bias, CONFIG.n_layers) == []  # written as zeros
    with_bias["transformer.h.2.attn.c_attn.bias"][4] = 0.5
    assert NANOGPT.unrepresentable(with_bias, CONFIG.n_layers) == [
        "transformer.h.2.attn.c_attn.bias"
    ]


@pytest.mark.parametrize("table", [NANOGPT, TRANSPOSED], ids=["nanogpt", "transposed"])
@pytest.mark.parametrize("damage", ["missing", "rows", "columns", "rank", "scalar"])
def test_a_missing_or_misshapen_tensor_is_one_line_naming_it(table, damage):
    """Every tensor the table requires (stacked, transposed or plain), each way of damaging it."""
    required = [
        name for item, name, ours in table.entries(CONFIG.n_layers) if ours and not item.optional
    ]
    for name in required:
        foreign = table.to_foreign(random_weights(), CONFIG.n_layers, optional=True)
        array = foreign.pop(name)
        changed = {
            "missing": None,
            "rows": array[:-1],
            "columns": array[..., :-1],
            "rank": array[None],
            "scalar": np.float32(1.0),
        }[damage]
        if changed is not None:
            foreign[name] = changed
        with pytest.raises(UserError) as refused:
            table.from_foreign(foreign, CONFIG, "ckpt.pt")
        message = str(refused.value)
        assert name in message and "ckpt.pt" in message and "\n" not in message, name


def test_unknown_names_are_those_neither_mapped_nor_ignored():
    table = WeightMap(NANOGPT.before, NANOGPT.per_layer, NANOGPT.after, ("h.{layer}.attn.mask",))
    foreign = table.to_foreign(random_weights(), CONFIG.n_layers, optional=False)
    foreign["h.2.attn.mask"] = np.ones((1, 1, 6, 6), np.float32)
    assert table.unknown(foreign, CONFIG.n_layers) == []
    foreign["h.0.attn.rotary"] = np.ones(3, np.float32)
    assert table.unknown(foreign, CONFIG.n_layers) == ["h.0.attn.rotary"]
