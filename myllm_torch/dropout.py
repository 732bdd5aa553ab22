"""Counter-based dropout in torch: myllm/train/dropout.py's keep_mask in int32 tensor ops.

torch has no unsigned 32-bit shifts or compares on CPU, so the hash runs on int32: multiplies
wrap around as uint32's do, a logical right shift is the arithmetic one masked to its low bits,
and the high half's unsigned compare is a signed one against a threshold offset by 2^31. The
bits are the reference's (MLX's twin works in uint32). The ops run in place where they can:
eager torch makes one pass over memory per op, and the cost of dropout is those passes
(benchmarks/results/dropout_cost.json).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from myllm.train.dropout import MIX_1, MIX_2, SIGN_BIT, dropout_rule

MIX_2_INT32 = MIX_2 - (1 << 32)  # the same 32 bits as a signed value


class Dropout(nn.Module):
    """Dropout at one site of the model; its mask comes from that site's keys, not a generator."""

    def __init__(self, p: float, site: int):
        super().__init__()
        self.rule = dropout_rule(p)
        self.site = site

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None) -> torch.Tensor:
        """x [B, ...] with dropout applied when training; keys [B, sites, 2] int32 or None."""
        if not (self.training and self.rule.active) or keys is None:
            return x
        # where, not x * mask: a bool factor would be cast to x's dtype, one more pass each way
        return torch.where(self.mask(keys, x.shape[1:]), x * self.rule.scale, 0.0)

    def mask(self, keys: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return keep_mask(keys[:, self.site], tuple(shape), self.rule.threshold)


def keep_mask(keys: torch.Tensor, shape: tuple[int, ...], threshold: int) -> torch.Tensor:
    """Boolean keep mask [rows, *shape] of one site from its keys [rows, 2] int32."""
    rows, size = keys.shape[0], math.prod(shape)
    pairs = (size + 1) // 2
    h = torch.arange(pairs, dtype=torch.int32, device=keys.device) ^ keys[:, 0:1]  # [rows, pairs]
    h ^= (h >> 16) & 0xFFFF
    h *= MIX_1
    h ^= keys[:, 1:2]  # the second key word, between the rounds
    h ^= (h >> 15) & 0x1FFFF
    h *= MIX_2_INT32
    high = h >= (threshold << 16) - SIGN_BIT
    h ^= h >> 16  # lowbias32's last mix; only its low 16 bits are read (no logical shift needed)
    h &= 0xFFFF
    # cat, not compares into slices of one mask: torch.compile cannot trace a non-contiguous out=
    keep = torch.cat([high, h[:, : size - pairs] >= threshold], dim=1)
    return keep.view(rows, *shape)
