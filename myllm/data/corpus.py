"""The one path from a text file to a Corpus (train, eval and bench): the token cache, a progress
bar, the run's tokenizer.

The tokens stay memory-mapped: a 1 GB text costs a few MB of memory, not gigabytes. A resumed run
whose tokenizer.json differs from the text's own vocabulary (trained on another text) gets its
tokens re-numbered into that tokenizer's ids (an in-memory copy, the one case that needs one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
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

from myllm.data.text_file import Progress as ProgressCallback
from myllm.data.token_cache import load_cached_tokens
from myllm.data.token_file import CachedTokens
from myllm.data.tokenizers import Tokenizer
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


@dataclass
class Corpus:
    """The tokens of one text, with its tokenizer and where the validation split starts."""

    tokenizer: Tokenizer
    tokens: np.ndarray  # [N] the token cache's memory-mapped uint8/16/32 (or a re-numbered copy)
    split: int  # the reference's int(N * (1 - val_split))

    @property
    def train_tokens(self) -> np.ndarray:
        return self.tokens[: self.split]

    @property
    def val_tokens(self) -> np.ndarray:
        return self.tokens[self.split :]


def read_corpus(
    data_path: Path,
    val_split: float,
    mode: str = "char",
    cache_dir: str | None = None,
    tokenizer: Tokenizer | None = None,
    console: Console | None = None,
) -> Corpus:
    """The tokens of `data_path` (memory-mapped, built once by the token cache) and a tokenizer.

    `tokenizer`, a run's own, must be of `mode`; the text's tokens are then in its ids.
    """
    if tokenizer is not None and tokenizer.mode != mode:
        raise UserError(
            f"--tokenizer {mode} differs from the checkpoint's {tokenizer.mode} "
            "tokenizer: drop the flag when resuming"
        )
    with contextlib.ExitStack() as stack:
        progress = stack.enter_context(byte_progress(console)) if console else None
        cached = load_cached_tokens(data_path, mode, val_split, cache_dir, progress)
    if tokenizer is None:
        return Corpus(cached.tokenizer, cached.tokens, cached.split)
    return Corpus(tokenizer, renumber(cached, tokenizer), cached.split)


def load_corpus(
    data_path: Path,
    block_size: int,
    val_split: float,
    mode: str = "char",
    cache_dir: str | None = None,
    tokenizer: Tokenizer | None = None,
    console: Console | None = None,
) -> Corpus:
    """The corpus a run trains on: read_corpus, each split holding at least one window."""
    corpus = read_corpus(data_path, val_split, mode, cache_dir, tokenizer, console)
    check_corpus_sizes(corpus, block_size)
    return corpus


def check_corpus_sizes(corpus: Corpus, block_size: int) -> None:
    """Each split must hold at least one window of block_size + 1 tokens."""
    unit = corpus.tokenizer.unit
    if len(corpus.tokens) < block_size + 1:
        raise UserError(
            f"the text has {len(corpus.tokens)} {unit}s, fewer than block_size + 1 = "
            f"{block_size + 1}: use a longer text or a smaller --block-size"
        )
    for name, tokens in (("training", corpus.train_tokens), ("validation", corpus.val_tokens)):
        if len(tokens) < block_size + 1:
            raise UserError(
                f"the {name} split has {len(tokens)} {unit}s, too few for one window of "
                f"block_size + 1 = {block_size + 1}: adjust --val-split or use a smaller "
                "--block-size or a longer text"
            )


def renumber(cached: CachedTokens, tokenizer: Tokenizer) -> np.ndarray:
    """The cached tokens in `tokenizer`'s ids; a UserError names symbols it does not know."""
    source = cached.tokenizer.vocabulary
    if source == tokenizer.vocabulary:
        return cached.tokens
    unknown = [symbol for symbol in source if symbol not in tokenizer.index]
    if unknown:
        raise UserError(
            f"the text has {len(unknown)} {tokenizer.unit}(s) not in the run's vocabulary: "
            f"{tokenizer.show(unknown)}; use the --data the run was trained on"
        )
    table = np.array([tokenizer.index[symbol] for symbol in source], dtype=np.int32)
    return table[cached.tokens]
