"""Sampling: greedy, top-k, top-p on hand-made distributions, seeded reproducibility."""

import numpy as np
import pytest

from myllm.errors import UserError
from myllm.generate.sampling import (
    SamplingSettings,
    next_token_probabilities,
    sample_next,
    top_p_mask,
)


def test_top_p_keeps_smallest_set_reaching_p():
    probs = np.array([[0.05, 0.5, 0.2, 0.25]])
    # sorted: 0.5, 0.25, 0.2, 0.05 -> 0.5 < 0.7, 0.75 >= 0.7: keep {1, 3}
    assert top_p_mask(probs, 0.7).tolist() == [[False, True, False, True]]
    assert top_p_mask(probs, 0.75).tolist() == [[False, True, False, True]]
    assert top_p_mask(probs, 0.76).tolist() == [[False, True, True, True]]
    assert top_p_mask(probs, 0.4).tolist() == [[False, True, False, False]]


def test_top_p_renormalises_the_kept_mass():
    logits = np.log(np.array([[0.05, 0.5, 0.2, 0.25]]))
    probs = next_token_probabilities(logits, SamplingSettings(temperature=1.0, top_p=0.7))
    np.testing.assert_allclose(probs, [[0.0, 2 / 3, 0.0, 1 / 3]], atol=1e-12)


def test_top_k_keeps_k_most_likely():
    logits = np.array([[1.0, 4.0, 3.0, 2.0]])
    probs = next_token_probabilities(logits, SamplingSettings(top_k=2))
    assert (probs[0] > 0).tolist() == [False, True, True, False]


def test_greedy_is_argmax_and_seeded_draws_repeat():
    logits = np.random.default_rng(0).normal(size=(3, 20))
    assert sample_next(logits, SamplingSettings(temperature=0), None).tolist() == list(
        logits.argmax(-1)
    )
    settings = SamplingSettings(temperature=1.0, top_k=10, top_p=0.9)
    first = [sample_next(logits, settings, rng).tolist() for rng in [np.random.default_rng(5)] * 8]
    second = [sample_next(logits, settings, rng).tolist() for rng in [np.random.default_rng(5)] * 8]
    assert first == second


def test_draws_follow_the_distribution():
    probs = np.array([[0.1, 0.6, 0.3]])
    rng = np.random.default_rng(1)
    draws = [int(sample_next(np.log(probs), SamplingSettings(), rng)[0]) for _ in range(4000)]
    frequencies = np.bincount(draws, minlength=3) / 4000
    np.testing.assert_allclose(frequencies, probs[0], atol=0.03)


@pytest.mark.parametrize(
    "values", [{"temperature": -1}, {"top_k": -1}, {"top_p": 0.0}, {"max_new_tokens": -1}]
)
def test_bad_settings_raise(values):
    with pytest.raises(UserError):
        SamplingSettings(**values)
