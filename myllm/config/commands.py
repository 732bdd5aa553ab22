"""The numeric options of `myllm generate` and `myllm eval`, declared like the training settings.

Checked in the command before any checkpoint is read, so a hostile count (2**64 new tokens, a
billion samples) is one line naming the flag and its range instead of a run until killed.
"""

from __future__ import annotations

from dataclasses import dataclass

from myllm.config.schema import check_fields, setting
from myllm.config.settings import BATCHES_LIMIT, SEED_LIMIT

# A million characters is a novel, some 17 minutes at 1 ms a token; more is a typo.
TOKENS_LIMIT = 10**6
# Continuations are one batch, each row with its own KV cache: a thousand already take GBs.
SAMPLES_LIMIT = 1024
TOP_K_LIMIT = 2**31  # a top-k past the vocabulary is no cut


@dataclass
class GenerateOptions:
    """What `myllm generate` samples; the defaults are the command's."""

    max_new_tokens: int = setting(500, "characters to generate", low=0, high=TOKENS_LIMIT)
    temperature: float = setting(1.0, "0 = greedy", low=0.0)
    top_k: int = setting(0, "0 = off", low=0, high=TOP_K_LIMIT)
    top_p: float = setting(1.0, "1 = off", low=0.0, high=1.0, open_low=True)
    seed: int | None = setting(None, "seed for reproducible sampling", low=0, high=SEED_LIMIT - 1)
    num_samples: int = setting(1, "continuations, one batch", low=1, high=SAMPLES_LIMIT)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class EvalOptions:
    """What `myllm eval` averages over."""

    eval_iters: int | None = setting(None, "seeded batches", low=1, high=BATCHES_LIMIT)

    def __post_init__(self) -> None:
        check_fields(self)
