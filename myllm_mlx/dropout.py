"""Counter-based dropout in MLX: myllm/train/dropout.py's keep_mask in uint32 array ops.

MLX has unsigned 32-bit integers, so this is the numpy reference line for line (torch's twin
works in int32). Inside the compiled training step the hash fuses into one loop.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from myllm.train.dropout import MIX_1, MIX_2, SIGN_BIT, dropout_rule


class Dropout(nn.Module):
    """Dropout at one site of the model; its mask comes from that site's keys, not a generator."""

    def __init__(self, p: float, site: int):
        super().__init__()
        self.rule = dropout_rule(p)
        self.site = site

    def __call__(self, x: mx.array, keys: mx.array | None) -> mx.array:
        """x [B, ...] with dropout applied when training; keys [B, sites, 2] uint32 or None."""
        if not (self.training and self.rule.active) or keys is None:
            return x
        return mx.where(self.mask(keys, x.shape[1:]), x * self.rule.scale, 0.0)

    def mask(self, keys: mx.array, shape: tuple[int, ...]) -> mx.array:
        return keep_mask(keys[:, self.site], tuple(shape), self.rule.threshold)


def keep_mask(keys: mx.array, shape: tuple[int, ...], threshold: int) -> mx.array:
    """Boolean keep mask [rows, *shape] of one site from its keys [rows, 2] uint32."""
    rows, size = keys.shape[0], math.prod(shape)
    pairs = (size + 1) // 2
    h = mx.arange(pairs, dtype=mx.uint32)[None, :] ^ keys[:, 0:1]  # [rows, pairs]
    h = h ^ (h >> 16)
    h = h * uint32(MIX_1)
    h = h ^ keys[:, 1:2]  # the second key word, between the rounds
    h = h ^ (h >> 15)
    h = h * uint32(MIX_2)
    high = (h ^ uint32(SIGN_BIT)) >= uint32(threshold << 16)
    low = ((h ^ (h >> 16)) & uint32(0xFFFF)) >= uint32(threshold)
    return mx.concatenate([high, low], axis=1)[:, :size].reshape(rows, *shape)


def uint32(value: int) -> mx.array:
    """A uint32 scalar (a Python int would be int32 in MLX, and MIX_2 is past its range)."""
    return mx.array(value, dtype=mx.uint32)
