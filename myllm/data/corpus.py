"""A training Corpus from a text file, through the token cache, with a progress bar.

The tokens stay memory-mapped: a 1 GB text costs a few MB of memory, not gigabytes. A resumed run
whose tokenizer.json differs from the text's own vocabulary (trained on another text) gets its
tokens re-numbered into that tokenizer's ids (an in-memory copy, the one case that needs one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from myllm.data.byte_tokenizer import ByteTokenizer
from myllm.data.sampler import Corpus, check_corpus_sizes, check_known_characters
from myllm.data.token_cache import CachedTokens, load_cached_tokens
from myllm.data.token_cache import Progress as ProgressCallback
from myllm.data.tokenizers import Tokenizer, tokenizer_mode, unit_name
from myllm.errors import UserError

STAGE_NAMES = {
    "hash": "hashing",
    "scan": "vocabulary",
    "encode": "encoding",
    "verify": "checking cache",
}


@contextlib.contextmanager
def byte_progress(console: Console, transient: bool = True) -> Iterator[ProgressCallback]:
    """A rich progress bar fed by the token cache's (stage, done, total) reports."""
    columns = (
        TextColumn("[bold]{task.description:>14}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=transient) as progress:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(STAGE_NAMES.get(stage, stage), total=total)
            progress.update(tasks[stage], completed=done)

        yield report


def load_corpus(
    data_path: Path,
    block_size: int,
    val_split: float,
    mode: str = "char",
    cache_dir: str | None = None,
    tokenizer: Tokenizer | None = None,
    console: Console | None = None,
) -> Corpus:
    """The train / validation tokens of `data_path` (memory-mapped) and their tokenizer."""
    if tokenizer is not None and tokenizer_mode(tokenizer) != mode:
        raise UserError(
            f"--tokenizer {mode} differs from the checkpoint's {tokenizer_mode(tokenizer)} "
            "tokenizer: drop the flag when resuming"
        )
    with contextlib.ExitStack() as stack:
        progress = stack.enter_context(byte_progress(console)) if console else None
        cached = load_cached_tokens(data_path, mode, val_split, cache_dir, progress)
    tokens = cached.tokens
    if tokenizer is not None:
        tokens = renumber(cached, tokenizer)
    else:
        tokenizer = cached.tokenizer
    train_tokens, val_tokens = tokens[: cached.split], tokens[cached.split :]
    check_corpus_sizes(len(tokens), len(train_tokens), len(val_tokens), block_size, unit_name(mode))
    return Corpus(tokenizer, train_tokens, val_tokens)


def renumber(cached: CachedTokens, tokenizer: Tokenizer) -> np.ndarray:
    """The cached tokens in `tokenizer`'s ids; a UserError names symbols it does not know."""
    source = cached.tokenizer
    if isinstance(source, ByteTokenizer):
        assert isinstance(tokenizer, ByteTokenizer)
        if source.byte_values == tokenizer.byte_values:
            return cached.tokens
        tokenizer.encode(bytes(source.byte_values))  # raises on unknown bytes
        table = np.array([tokenizer.byte_to_idx[v] for v in source.byte_values], dtype=np.int32)
    else:
        if source.chars == tokenizer.chars:
            return cached.tokens
        check_known_characters(tokenizer, source.chars)
        table = np.array([tokenizer.char_to_idx[ch] for ch in source.chars], dtype=np.int32)
    return table[cached.tokens]
