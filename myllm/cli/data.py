"""The training corpora: `myllm data list|fetch|prepare`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from myllm.cli.app import data_app, err_console

# --- data ---


@data_app.command("list")
def data_list() -> None:
    """The corpora `myllm data fetch` knows."""
    from rich.table import Table

    from myllm.data.corpora import list_corpora

    table = Table(title="Corpora (myllm data fetch NAME)")
    for column in ("name", "MB", "source", "sha256", "description"):
        table.add_column(column, justify="right" if column == "MB" else "left")
    for info in list_corpora():
        source = " + ".join(info.parts) if info.parts else info.url
        table.add_row(
            info.name, f"{info.bytes / 1e6:.2f}", source, info.sha256[:12], info.description
        )
    Console().print(table)


@data_app.command("fetch")
def data_fetch(
    names: Annotated[
        list[str] | None, typer.Argument(help="corpora to fetch (default: tinyshakespeare)")
    ] = None,
    mirror: Annotated[
        Path | None,
        typer.Option(help="a local directory with the raw files [env: MYLLM_DATA_MIRROR]"),
    ] = None,
    dest: Annotated[Path, typer.Option(help="where to write NAME.txt")] = Path("data"),
) -> None:
    """Download (or copy from a mirror), check sha256 and strip Gutenberg boilerplate."""
    from myllm.data.corpora import DEFAULT_CORPUS, corpus_info, fetch
    from myllm.paths import check_directory

    names = names or [DEFAULT_CORPUS]
    if mirror is not None:
        check_directory(mirror, "--mirror", "pass --mirror DIR of a folder holding the raw files")
    for name in names:
        corpus_info(name)  # an unknown name fails before anything is fetched
    for name in names:
        path = fetch(name, dest_dir=dest, mirror=mirror)
        err_console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")


@data_app.command("prepare")
def data_prepare(
    file: Annotated[Path, typer.Argument(help="the text (or any file, with --tokenizer byte)")],
    tokenizer: Annotated[str, typer.Option(help="char or byte")] = "char",
    val_split: Annotated[
        float, typer.Option("--val-split", "--val_split", help="as train's --val-split")
    ] = 0.1,
    cache_dir: Annotated[
        str | None,
        typer.Option(
            "--cache-dir",
            help="token cache folder [env: MYLLM_CACHE] (default: .myllm_cache/ beside FILE)",
        ),
    ] = None,
) -> None:
    """Encode FILE into the token cache that `myllm train --data FILE` then memory-maps."""
    import time

    from myllm.config.settings import TrainConfig
    from myllm.data.corpus import byte_progress
    from myllm.data.token_cache import load_cached_tokens
    from myllm.paths import check_file

    TrainConfig(val_split=val_split, tokenizer=tokenizer)  # the same checks as train's
    check_file(file, "data file", "pass a readable text FILE (`myllm data fetch` gets some)")
    started = time.perf_counter()
    with byte_progress(err_console, transient=False) as progress:
        cached = load_cached_tokens(file, tokenizer, val_split, cache_dir, progress)
    seconds = time.perf_counter() - started
    size_mb = file.stat().st_size / 1e6
    state = "written" if cached.built else "already up to date"
    err_console.print(
        f"Token cache {cached.path} {state}: {len(cached.tokens):,} tokens "
        f"({cached.tokens.dtype}), vocabulary {cached.tokenizer.vocab_size}, split at "
        f"{cached.split:,}; {size_mb:,.1f} MB in {seconds:.1f} s "
        f"({size_mb / max(seconds, 1e-9):,.1f} MB/s).",
        highlight=False,
        soft_wrap=True,
    )
