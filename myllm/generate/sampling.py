"""Choosing the next token from logits: temperature, top-k, top-p, greedy.

Sampling runs on the host in numpy for both backends: a char-level vocabulary is tiny, the logits
must reach the host anyway to stream text, and one seeded numpy generator makes both backends draw
the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from myllm.errors import UserError


@dataclass
class SamplingSettings:
    """Temperature 0 means greedy; top_k 0 and top_p 1.0 mean "no cut"."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_new_tokens: int = 500

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not math.isfinite(self.temperature):
            raise UserError(
                f"temperature {self.temperature} is not a finite number: use 0 (greedy) or more"
            )
        if self.temperature < 0:
            raise UserError(f"temperature {self.temperature} is negative: use 0 (greedy) or more")
        if self.top_k < 0:
            raise UserError(f"top_k {self.top_k} is negative: use 0 (off) or a positive count")
        if not 0.0 < self.top_p <= 1.0:
            raise UserError(f"top_p {self.top_p} is outside (0, 1]: use e.g. 0.9, or 1 for off")
        if self.max_new_tokens < 0:
            raise UserError(f"max_new_tokens {self.max_new_tokens} is negative: use 0 or more")


def top_p_mask(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Boolean mask [B, V] of the smallest set of tokens whose probability mass reaches top_p."""
    order = np.argsort(-probs, axis=-1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, axis=-1)
    mass_before = np.cumsum(sorted_probs, axis=-1) - sorted_probs
    keep_sorted = mass_before < top_p  # a token is kept if the mass before it is still short of p
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return keep


def next_token_probabilities(logits: np.ndarray, settings: SamplingSettings) -> np.ndarray:
    """Softmax(logits / T) restricted to top-k and top-p, renormalised. logits [B, V] -> [B, V]."""
    logits = logits.astype(np.float64) / settings.temperature
    if 0 < settings.top_k < logits.shape[-1]:
        kth = np.sort(logits, axis=-1)[:, -settings.top_k][:, None]
        logits = np.where(logits < kth, -np.inf, logits)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if settings.top_p < 1.0:
        probs = np.where(top_p_mask(probs, settings.top_p), probs, 0.0)
        probs /= probs.sum(axis=-1, keepdims=True)
    return probs


def sample_next(
    logits: np.ndarray, settings: SamplingSettings, rng: np.random.Generator
) -> np.ndarray:
    """One next token per row of logits [B, V]: argmax when temperature is 0, else a draw."""
    if settings.temperature == 0:
        return logits.argmax(axis=-1)
    probs = next_token_probabilities(logits, settings)
    cumulative = probs.cumsum(axis=-1)
    draws = rng.random((probs.shape[0], 1)) * cumulative[:, -1:]
    return np.minimum((cumulative <= draws).sum(axis=-1), probs.shape[-1] - 1)
