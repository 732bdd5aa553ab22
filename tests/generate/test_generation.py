"""Generation on each backend: KV cache = no cache, cropping past the window, batched samples."""

import numpy as np
import pytest

from myllm.backend.registry import load_backend
from myllm.data.sampler import BatchSampler
from myllm.generate.loop import generate_tokens
from myllm.generate.sampling import SamplingSettings
from tests.helpers import BACKENDS, sample_text, text_corpus, tiny_model_config, tiny_train_config


@pytest.fixture(scope="module", params=BACKENDS)
def decoder(request, tmp_path_factory):
    """A tiny model after some steps on real text, so greedy decoding is not one repeated token."""
    backend = load_backend(request.param)
    tmp_path = tmp_path_factory.mktemp("generation")
    corpus = text_corpus(sample_text())
    config = tiny_model_config(corpus.tokenizer.vocab_size)
    trainer = backend.Trainer(config, tiny_train_config(tmp_path, tmp_path))
    sampler = BatchSampler(corpus.train_tokens, 16, 16, seed=0)
    for step in range(40):
        trainer.train_step(*sampler.batch(step), 3e-3)
    return trainer.decoder()


def generate(decoder, prompt, settings, seed=0, num_samples=1, use_kv_cache=True):
    rng = np.random.default_rng(seed)
    steps = generate_tokens(decoder, prompt, settings, rng, num_samples, use_kv_cache)
    return np.stack(list(steps), axis=1)  # [num_samples, max_new_tokens]


def test_cached_equals_uncached_for_three_windows(decoder):
    greedy = SamplingSettings(temperature=0.0, max_new_tokens=3 * decoder.max_seq_len)
    cached = generate(decoder, [1, 2, 3], greedy, use_kv_cache=True)
    uncached = generate(decoder, [1, 2, 3], greedy, use_kv_cache=False)
    assert cached.shape == (1, 48)
    np.testing.assert_array_equal(cached, uncached)
    assert len(set(cached[0].tolist())) > 1


def test_cached_logits_match_full_forward(decoder):
    """float32: a cached step's logits equal the uncached forward's within 1e-5."""
    tokens = np.random.default_rng(1).integers(0, 40, size=(2, 12))
    cache = decoder.new_cache(2)
    decoder.last_logits(tokens[:, :8], cache)
    for t in range(8, 12):
        cached = decoder.last_logits(tokens[:, t : t + 1], cache)
        full = decoder.last_logits(tokens[:, : t + 1], None)
        np.testing.assert_allclose(cached, full, atol=1e-5, rtol=0)


def test_seeded_sampling_repeats_and_batches_differ(decoder):
    settings = SamplingSettings(temperature=1.0, top_k=20, top_p=0.95, max_new_tokens=20)
    first = generate(decoder, [5], settings, seed=3, num_samples=4)
    again = generate(decoder, [5], settings, seed=3, num_samples=4)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (4, 20)
    assert len({tuple(row) for row in first.tolist()}) > 1


def test_prompt_longer_than_the_window_is_cropped(decoder):
    greedy = SamplingSettings(temperature=0.0, max_new_tokens=5)
    long_prompt = list(range(40))
    cropped = generate(decoder, long_prompt[-16:], greedy, use_kv_cache=False)
    np.testing.assert_array_equal(generate(decoder, long_prompt, greedy), cropped)
