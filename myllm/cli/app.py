"""The `myllm` app: the typer application, its entry point and what every command shares.

Each command lives in its own module of this package (train, generate and eval, convert, data,
plot and bench); importing the package registers them all on `app`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from myllm.config.settings import DEVICE_HELP, DEVICE_NAMES  # noqa: F401  (DEVICE_HELP: shared)
from myllm.errors import UserError

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    context_settings=HELP_OPTIONS,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="One small GPT, trained and sampled natively in PyTorch and in Apple MLX.",
)
data_app = typer.Typer(
    context_settings=HELP_OPTIONS,
    no_args_is_help=True,
    help="List, fetch and prepare (tokenize once) the training corpora.",
)
app.add_typer(data_app, name="data")
err_console = Console(stderr=True)
# The reference's underscore spellings: accepted (translated in main()), hidden from --help.
# Those of train's settings are derived from the declarations (myllm/cli/train.py adds them).
UNDERSCORE_SPELLINGS = {"--gen_tokens", "--max_new_tokens", "--num_samples", "--top_k", "--top_p"}


def main() -> None:
    """Entry point: a UserError, or a flag typer cannot parse (`--epochs 1.5`, an unknown option),
    becomes one line on stderr and its exit code (2 for bad input), never a traceback or a box.

    Output that cannot be written is one line too (`> /dev/full`), and a reader that went away
    (`| head -c 10`) ends the command quietly (exit 1, as click does where it sees it first)."""
    try:
        code = _run_app(hyphenate_options(sys.argv[1:]))
        sys.stdout.flush()  # here, not at exit, where a failure would be a traceback
    except OSError as error:
        _silence_stdout()  # what is still buffered cannot be written either
        if error.errno == errno.EPIPE:
            sys.exit(1)  # quietly, with click's exit code for a reader that went away
        if error.filename is None:  # the output stream itself (a file name would be given)
            _print_error(
                f"could not write the output ({error.strerror or error}): free disk space or "
                "redirect the output to another file"
            )
        else:  # a path no check caught: still one line, naming it
            _print_error(
                f"{error.filename}: {error.strerror or error}: check the path and its permissions"
            )
        sys.exit(2)
    sys.exit(code)


def _run_app(args: list[str]) -> int:
    """The command's exit code; typer's and myllm's errors printed in one line, then exit."""
    errors = _click_exceptions()
    try:
        code = app(args=args, prog_name="myllm", standalone_mode=False)
    except errors.NoArgsIsHelpError:
        app(args=args, prog_name="myllm")  # typer prints the help itself and exits 2
        raise
    except errors.ClickException as error:
        context = getattr(error, "ctx", None)
        hint = f" ({context.command_path} -h lists the options)" if context else ""
        _print_error(" ".join(error.format_message().split()) + hint)
        sys.exit(error.exit_code)
    except typer.Abort:
        err_console.print("Aborted!", highlight=False)
        sys.exit(1)
    except UserError as error:
        _print_error(str(error))
        sys.exit(error.exit_code)
    return code if isinstance(code, int) else 0


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that Python's flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):  # no stdout at all: nothing to silence
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _print_error(message: str) -> None:
    """The one error line; the message is escaped (a "[interop]" in it is text, not markup)."""
    from rich.markup import escape

    err_console.print(
        f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True
    )


def _click_exceptions() -> Any:
    """Click's exception module: typer 0.2x vendors click as typer._click, older typer uses it."""
    vendored = getattr(typer, "_click", None)
    if vendored is not None:
        return vendored.exceptions
    import click

    return click.exceptions


def _choices(*names: str) -> dict[str, Any]:
    """Show an enumerated option's choices in --help and complete them in the shell.

    The value stays a string that the command checks itself, so a bad one is the usual one-line
    error naming the choices (exit 2); --device also takes an index (cuda:1)."""

    def complete(incomplete: str) -> list[str]:
        return [name for name in names if name.startswith(incomplete)]

    return {"metavar": "<" + "|".join(names) + ">", "autocompletion": complete}


BACKENDS = _choices("torch", "mlx")
DEVICES = _choices(*DEVICE_NAMES)


def hyphenate_options(args: list[str]) -> list[str]:
    """--batch_size 8 and --batch_size=8 become --batch-size (the reference's spellings)."""
    translated = []
    for arg in args:
        name, equals, value = arg.partition("=")
        if name in UNDERSCORE_SPELLINGS:
            arg = name.replace("_", "-") + equals + value
        translated.append(arg)
    return translated


def versions() -> dict[str, str]:
    """myllm, Python and the frameworks' versions, read from package metadata (nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from myllm import __version__

    found = {"myllm": __version__, "python": sys.version.split()[0]}
    for package in ("torch", "mlx"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(" ".join(f"{name} {v}" for name, v in versions().items()) + "\n")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="print the myllm, Python, torch and MLX versions and exit",
        ),
    ] = False,
) -> None:
    """One small GPT, trained and sampled natively in PyTorch and in Apple MLX."""
