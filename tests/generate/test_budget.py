"""A generation's cost before its first token (issue 23 #3, #6): what the loop computes, a day's
worth of tokens, the memory of a batch of samples, and the REPL's /set checked the same way."""

from __future__ import annotations

import numpy as np
import pytest

import myllm.generate.budget as budget_module
from myllm.config.settings import ModelConfig
from myllm.errors import UserError
from myllm.generate.budget import DAY_SECONDS, GenerationBudget, tokens_computed
from myllm.generate.loop import generate_tokens
from myllm.generate.repl import GenerationRequest, apply_setting
from myllm.generate.sampling import SamplingSettings
from myllm.train.memory import GIB, MemoryLimit

GPT2_SMALL = ModelConfig(vocab_size=50304, max_seq_len=1024, d_model=768, n_heads=12, n_layers=12)


class CountingDecoder:
    """A Decoder that counts the positions it is asked to compute; every logit the same."""

    max_seq_len = 16

    def __init__(self) -> None:
        self.positions = 0

    def new_cache(self, batch_size: int) -> object:
        return object()

    def last_logits(self, tokens: np.ndarray, cache: object) -> np.ndarray:
        self.positions += tokens.shape[1]
        return np.zeros((tokens.shape[0], 5), dtype=np.float32)


@pytest.mark.parametrize("kv_cache", [True, False], ids=["cached", "uncached"])
@pytest.mark.parametrize(("prompt", "new"), [(1, 5), (3, 40), (10, 7), (30, 9)])
def test_the_positions_counted_are_those_the_loop_computes(prompt, new, kv_cache):
    decoder = CountingDecoder()
    settings = SamplingSettings(temperature=0.0, max_new_tokens=new)
    steps = generate_tokens(decoder, [1] * prompt, settings, np.random.default_rng(0), 2, kv_cache)
    assert sum(1 for _ in steps) == new
    assert decoder.positions == tokens_computed(prompt, new, 16, kv_cache)


def test_more_than_a_day_is_refused_naming_the_most_a_day_allows():
    budget = GenerationBudget(GPT2_SMALL, "cpu")
    with pytest.raises(UserError, match=r"would take at least [\d,.]+ days") as refused:
        budget.check(1, 10**6, 1024, True)
    most = budget.tokens_in_a_day(1, 1024, True)
    assert f"lower --max-new-tokens (to at most {most:,} for a day)" in str(refused.value)
    assert budget.cost(1, most, 1024, True).seconds <= DAY_SECONDS
    assert budget.cost(1, most + 1, 1024, True).seconds > DAY_SECONDS


def test_samples_past_the_memory_limit_are_refused_naming_the_most_that_fit(monkeypatch):
    limit = MemoryLimit(4 * GIB, "available (MemAvailable)")
    monkeypatch.setattr(budget_module, "memory_limit", lambda device: limit)
    budget = GenerationBudget(GPT2_SMALL, "cpu")
    most = budget.samples_that_fit(1, 100, True, limit)
    assert 0 < most < 1024
    assert budget.cost(1, 100, most, True).memory_bytes <= limit.bytes
    assert budget.cost(1, 100, most + 1, True).memory_bytes > limit.bytes
    with pytest.raises(UserError, match=f"lower --num-samples \\(to at most {most}\\)"):
        budget.check(1, 100, 1024, True)
    budget.check(1, 100, most, True)


def test_the_repl_checks_max_new_tokens_at_each_set():
    settings = SamplingSettings()
    request = GenerationRequest(
        tokenizer=_Tokenizer(), settings=settings, rng=np.random.default_rng(0),
        budget=GenerationBudget(GPT2_SMALL, "cpu"),
    )  # fmt: skip
    message = apply_setting(settings, f"/set max_new_tokens {10**14}", request)
    assert "would take at least" in message and "lower /set max_new_tokens" in message
    assert settings.max_new_tokens == SamplingSettings().max_new_tokens  # unchanged
    assert apply_setting(settings, "/set max_new_tokens 300", request) == "max_new_tokens = 300"


class _Tokenizer:
    """Just what encode_prompt needs."""

    def __init__(self) -> None:
        self.char_to_idx = {"\n": 0}

    def encode(self, text: str, skip_unknown: bool = False) -> list[int]:
        return [0] * len(text)
