"""The decoding loop both backends share: KV-cached steps, exact cropping past the window.

A backend supplies a `Decoder` (myllm/backend/contract.py, made by its generate.py): a forward
pass giving the last position's logits, with or without a KV cache. This loop decides which to
call, so cached and uncached generation follow the same rules in both frameworks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from myllm.backend.contract import Decoder
from myllm.generate.sampling import SamplingSettings, sample_next


def generate_tokens(
    decoder: Decoder,
    prompt_ids: list[int],
    settings: SamplingSettings,
    rng: np.random.Generator,
    num_samples: int = 1,
    use_kv_cache: bool = True,
) -> Iterator[np.ndarray]:
    """Yield the next token of each sample ([num_samples] ints), one step at a time.

    Within max_seq_len the KV cache makes each step one token's forward. Past it the model's
    absolute positions force the reference's semantics: recompute on the last max_seq_len tokens.
    That is exact, so it is what both paths do there.
    """
    window = decoder.max_seq_len
    context = np.tile(np.asarray(prompt_ids, dtype=np.int64), (num_samples, 1))  # [N, T]
    length = context.shape[1]  # tokens so far; `context` keeps only the last window + 1
    cache = None
    fed = 0  # tokens of `context` already in the cache
    for _ in range(settings.max_new_tokens):
        if use_kv_cache and length <= window:  # within the window nothing was cropped yet
            if cache is None:
                cache = decoder.new_cache(num_samples)
            logits = decoder.last_logits(context[:, fed:], cache)
            fed = length
        else:
            logits = decoder.last_logits(context[:, -window:], None)
        next_ids = sample_next(logits, settings, rng)  # [N]
        # Only the last window is read again: a long generation costs O(window) a step, not O(T).
        context = np.concatenate([context[:, -window:], next_ids[:, None]], axis=1)
        length += 1
        yield next_ids
