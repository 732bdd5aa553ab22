"""From text to batches: tokenizers, the token cache, the corpus, the seeded sampler."""
