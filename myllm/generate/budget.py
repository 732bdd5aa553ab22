"""What a generation costs, estimated before its first token: memory and time.

generate's counts are bounded by their declarations (a million tokens, 1,024 samples), but within
them a large model, a batch of samples with a KV cache each, or a text past the model's window
(each token then recomputes the whole window, myllm/generate/loop.py) can still need more memory
than this process has, or days. Both are estimated from the model's shape and refused in one line
before anything is allocated; `/set` in the REPL is checked the same way.

The estimates err low, so what they refuse cannot run: memory counts float32 weights, the KV
caches, one forward's activations and the token buffers; time counts the multiply-adds at a
rate no machine of the kind exceeds, and a floor for each decoding step's host work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from myllm.config.settings import ModelConfig
from myllm.errors import UserError
from myllm.train.memory import GIB, MemoryLimit, memory_limit, parameter_count

BYTES_PER_FLOAT = 4
DAY_SECONDS = 24 * 3600
# A decoding step's host work (a forward call, a sync, sampling), measured on a 2-core CPU at
# about 1 ms a step and 40 us a sample, counted at a fifth of that: never less.
SECONDS_PER_STEP_FLOOR = 2e-4
SECONDS_PER_SAMPLE_STEP_FLOOR = 5e-6
PEAK_FLOPS_CPU = 5e12  # float32 FLOP/s; a many-core AVX-512 server stays below it
PEAK_FLOPS_ACCELERATOR = 2e15  # an H100's dense bfloat16 peak


@dataclass(frozen=True)
class GenerationCost:
    """At least this much memory and time."""

    memory_bytes: int
    seconds: float


@dataclass(frozen=True)
class GenerationBudget:
    """The model and the machine a generation runs on; checks a request before its first token."""

    config: ModelConfig
    device: str = "cpu"

    def cost(
        self, prompt_tokens: int, new_tokens: int, samples: int, kv_cache: bool
    ) -> GenerationCost:
        """The GenerationCost of `samples` continuations of `new_tokens` after the prompt."""
        config, window = self.config, self.config.max_seq_len
        prompt_tokens = max(1, min(prompt_tokens, window))
        computed = samples * tokens_computed(prompt_tokens, new_tokens, window, kv_cache)
        peak = PEAK_FLOPS_CPU if self.device.lower() == "cpu" else PEAK_FLOPS_ACCELERATOR
        host = new_tokens * (SECONDS_PER_STEP_FLOOR + samples * SECONDS_PER_SAMPLE_STEP_FLOOR)
        seconds = host + 2 * parameter_count(config) * computed / peak
        cache = 2 * config.n_layers * window * config.d_model if kv_cache else 0
        activations = window * (3 * config.d_model + config.d_ff + config.n_heads * window)
        per_sample = (cache + activations + config.vocab_size) * BYTES_PER_FLOAT
        # The int64 context (its last window) and the tokens kept for the text: a list entry
        # each, 8 bytes, plus an int object past the 257 small ints Python shares.
        kept = 8 if config.vocab_size <= 257 else 40
        buffers = samples * ((window + 1) * 8 + new_tokens * kept)
        weights = parameter_count(config) * BYTES_PER_FLOAT
        return GenerationCost(weights + samples * per_sample + buffers, seconds)

    def problem(
        self,
        prompt_tokens: int,
        new_tokens: int,
        samples: int,
        kv_cache: bool,
        tokens_setting: str = "--max-new-tokens",
    ) -> str | None:
        """Why the request cannot run (one line naming the setting to lower), or None."""
        cost = self.cost(prompt_tokens, new_tokens, samples, kv_cache)
        if cost.seconds > DAY_SECONDS:
            most = self.tokens_in_a_day(prompt_tokens, samples, kv_cache)
            return (
                f"generating {new_tokens:,} tokens x {samples:,} sample(s) would take at least "
                f"{cost.seconds / DAY_SECONDS:,.1f} days on --device {self.device}: lower "
                f"{tokens_setting} (to at most {most:,} for a day)"
            )
        limit = memory_limit(self.device)
        if limit is not None and cost.memory_bytes > limit.bytes:
            return (
                f"generating {samples:,} sample(s) needs at least {cost.memory_bytes / GIB:,.1f} "
                f"GiB but this process has {limit.describe()}: lower --num-samples (to at most "
                f"{self.samples_that_fit(prompt_tokens, new_tokens, kv_cache, limit):,})"
            )
        return None

    def check(
        self,
        prompt_tokens: int,
        new_tokens: int,
        samples: int,
        kv_cache: bool,
        tokens_setting: str = "--max-new-tokens",
    ) -> GenerationCost:
        """The cost, or a UserError when it is too large to run."""
        reason = self.problem(prompt_tokens, new_tokens, samples, kv_cache, tokens_setting)
        if reason is not None:
            raise UserError(reason)
        return self.cost(prompt_tokens, new_tokens, samples, kv_cache)

    def tokens_in_a_day(self, prompt_tokens: int, samples: int, kv_cache: bool) -> int:
        """The most new tokens a day allows (a bisection: the cost grows with the count)."""
        low, high = 0, 2**62
        while low < high:
            middle = (low + high + 1) // 2
            fits = self.cost(prompt_tokens, middle, samples, kv_cache).seconds <= DAY_SECONDS
            low, high = (middle, high) if fits else (low, middle - 1)
        return low

    def samples_that_fit(
        self, prompt_tokens: int, new_tokens: int, kv_cache: bool, limit: MemoryLimit
    ) -> int:
        one = self.cost(prompt_tokens, new_tokens, 1, kv_cache).memory_bytes
        two = self.cost(prompt_tokens, new_tokens, 2, kv_cache).memory_bytes
        return max(0, math.floor((limit.bytes - (2 * one - two)) / (two - one)))


def tokens_computed(prompt_tokens: int, new_tokens: int, window: int, kv_cache: bool) -> int:
    """Positions one sample's forward passes compute over `new_tokens` steps.

    With the KV cache: the prompt once, then one position a step while the context fits the
    window. Past the window (or without the cache) each step recomputes min(context, window).
    """
    cached = max(0, min(new_tokens, window - prompt_tokens + 1)) if kv_cache else 0
    done = prompt_tokens + max(0, cached - 1) if cached else 0
    remaining = new_tokens - cached
    first = prompt_tokens + cached  # the context of the first recomputed step
    below = max(0, min(remaining, window - first))  # steps whose context is under the window
    return done + below * first + below * (below - 1) // 2 + (remaining - below) * window
