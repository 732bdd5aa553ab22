"""A declarative name table between myllm's canonical weights and another program's, used both ways.

One table per foreign format, as litgpt's convert_hf_checkpoint.py keeps one: each entry names a
foreign tensor and the myllm tensors it holds, with `{layer}` standing for the block index. Reading
and writing walk the same table, so a name can never be mapped one way and forgotten the other.
The foreign formats differ in a few regular ways, which an entry declares instead of code:

- several myllm tensors stacked on the first axis into one (nanoGPT's and GPT-2's `c_attn` is
  W_q, W_k and W_v; llama.cpp's `attn_qkv` too);
- stored transposed (Hugging Face GPT-2's Conv1D keeps [in, out], nn.Linear [out, in]);
- optional: a model without biases has none of them, which is myllm with every bias zero;
- foreign only (no myllm names): a bias myllm's layer has not, refused unless it is zero and
  written as zeros, as long as the first axis of the entry's weight;
- ignored (the table's `ignored`): foreign buffers that hold no weight (causal masks).

Hugging Face's GPT-2 and llama.cpp's GGUF "gpt2" are this table with other names (and HF's
Conv1D entries transposed); tests/interop/test_weight_map.py builds a GPT-2 one.

Arrays are numpy: the framework that reads or writes the foreign file converts at its edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from myllm.checkpoint.state import parameter_shapes
from myllm.config.settings import ModelConfig
from myllm.errors import UserError


@dataclass(frozen=True)
class Entry:
    """One foreign tensor: `foreign` holds `ours` (stacked on axis 0 when several)."""

    foreign: str
    ours: tuple[str, ...]
    transpose: bool = False  # stored [in, out] abroad
    optional: bool = False  # absent from a model without biases: zero here

    def names(self, layer: int | None) -> tuple[str, tuple[str, ...]]:
        """(foreign name, myllm names) with `{layer}` filled in."""
        fill = {} if layer is None else {"layer": layer}
        return self.foreign.format(**fill), tuple(name.format(**fill) for name in self.ours)


def entry(foreign: str, *ours: str, transpose: bool = False, optional: bool = False) -> Entry:
    """An Entry, spelled as a table line: entry("wte.weight", "token_embedding.weight")."""
    return Entry(foreign, ours, transpose, optional)


def weight_and_bias(
    foreign: str, ours: str, *, transpose: bool = False, optional_bias: bool = False
) -> tuple[Entry, Entry]:
    """A Linear or LayerNorm's two entries, `foreign`.weight/.bias holding `ours`.weight/.bias
    (only the weight is ever transposed: a bias is one axis)."""
    return (
        Entry(f"{foreign}.weight", (f"{ours}.weight",), transpose),
        Entry(f"{foreign}.bias", (f"{ours}.bias",), optional=optional_bias),
    )


@dataclass(frozen=True)
class WeightMap:
    """The whole table, in the foreign program's parameter order: what comes before the blocks,
    one block's entries (with `{layer}`), and what comes after them. `ignored`: foreign names
    (templates too) that hold no weight, such as causal-mask buffers."""

    before: tuple[Entry, ...]
    per_layer: tuple[Entry, ...]
    after: tuple[Entry, ...]
    ignored: tuple[str, ...] = ()

    def entries(self, n_layers: int) -> Iterator[tuple[Entry, str, tuple[str, ...]]]:
        """(entry, foreign name, myllm names) for every tensor of an n_layers model, in order."""
        for item in self.before:
            yield item, *item.names(None)
        for layer in range(n_layers):
            for item in self.per_layer:
                yield item, *item.names(layer)
        for item in self.after:
            yield item, *item.names(None)

    def foreign_names(self, n_layers: int, optional: bool) -> list[str]:
        """The foreign tensor names in order; `optional` False leaves the optional ones out."""
        return [name for item, name, _ in self.entries(n_layers) if optional or not item.optional]

    def to_foreign(
        self, weights: dict[str, np.ndarray], n_layers: int, optional: bool
    ) -> dict[str, np.ndarray]:
        """myllm's canonical weights (or AdamW moments) under the foreign names, float32."""
        state: dict[str, np.ndarray] = {}
        outputs: dict[str, int] = {}  # foreign weight name -> its layer's output width
        for item, name, ours in self.entries(n_layers):
            if item.optional and not optional:
                continue
            if not ours:  # foreign only: zeros as long as its layer's output
                rows = outputs[name.removesuffix(".bias") + ".weight"]
                state[name] = np.zeros(rows, np.float32)
                continue
            array = np.concatenate([weights[our] for our in ours])  # one name: a copy of it
            outputs[name] = array.shape[0]
            state[name] = np.ascontiguousarray(array.T if item.transpose else array, np.float32)
        return state

    def from_foreign(
        self, state: dict[str, np.ndarray], config: ModelConfig, source: str
    ) -> dict[str, np.ndarray]:
        """The canonical weights held by a foreign state dict; an absent optional tensor is zero.

        A missing tensor, or one whose shape is not the config's, is one UserError line naming
        it and `source`. Foreign-only tensors are checked by unrepresentable, unknown names by
        unknown.
        """
        shapes = parameter_shapes(config)
        weights: dict[str, np.ndarray] = {}
        for item, name, ours in self.entries(config.n_layers):
            if not ours:
                continue
            if item.optional and name not in state:
                weights.update({our: np.zeros(shapes[our], np.float32) for our in ours})
                continue
            if name not in state:
                raise UserError(f"{source} has no tensor {name!r}: it is not a model of this shape")
            array = np.asarray(state[name], np.float32)
            array = array.T if item.transpose else array
            expected = (sum(shapes[our][0] for our in ours), *shapes[ours[0]][1:])
            if array.shape != expected:
                shape = list(array.T.shape if item.transpose else array.shape)
                raise UserError(
                    f"{source}: {name} has shape {shape}, but its config makes it "
                    f"{list(expected[::-1] if item.transpose else expected)}: the weights do not "
                    "belong to this config"
                )
            weights.update(zip(ours, np.split(array, len(ours)), strict=True))
        return {name: np.ascontiguousarray(array) for name, array in weights.items()}

    def unrepresentable(self, state: dict[str, np.ndarray], n_layers: int) -> list[str]:
        """The foreign-only tensors of `state` that are not zero: myllm cannot hold them."""
        return [
            name
            for _, name, ours in self.entries(n_layers)
            if not ours and name in state and np.any(state[name] != 0)
        ]

    def unknown(self, state: dict[str, np.ndarray], n_layers: int) -> list[str]:
        """Foreign names the table neither maps nor ignores: parts of a model myllm has not."""
        known = {name for _, name, _ in self.entries(n_layers)}
        for name in self.ignored:
            known |= {name.format(layer=layer) for layer in range(n_layers)}
        return sorted(set(state) - known)
