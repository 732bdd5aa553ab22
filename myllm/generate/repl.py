"""Streaming text generation and the interactive REPL behind `myllm generate`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TextIO

import numpy as np

from myllm.backend.contract import Decoder
from myllm.data.tokenizers import Tokenizer
from myllm.errors import UserError
from myllm.generate.budget import GenerationBudget
from myllm.generate.loop import generate_tokens
from myllm.generate.sampling import SamplingSettings

HELP = """Type a prompt and press Enter; end a line with \\ to continue the prompt on the next line.
Commands:
  /set temperature 0.8   sampling temperature (0 = greedy)
  /set top_k 40          keep the 40 most likely characters (0 = off)
  /set top_p 0.9         keep the smallest set with 90% of the mass (1 = off)
  /set max_new_tokens 300
  /settings              show the current settings
  /help                  this text
  /quit                  leave (Ctrl-D too); Ctrl-C stops a generation in progress"""


@dataclass
class GenerationRequest:
    """What one generation needs besides the decoder: text in, settings, randomness, and the
    budget that checks its cost before the first token (None: unchecked)."""

    tokenizer: Tokenizer
    settings: SamplingSettings
    rng: np.random.Generator
    num_samples: int = 1
    use_kv_cache: bool = True
    skip_unknown: bool = False
    budget: GenerationBudget | None = None

    def check(self, prompt: str, tokens_setting: str = "--max-new-tokens") -> float:
        """The seconds it takes at least; a UserError for a prompt with unknown characters, or
        a cost too large to run."""
        ids = encode_prompt(self.tokenizer, prompt, self.skip_unknown)
        if self.budget is None:
            return 0.0
        settings = self.settings
        return self.budget.check(
            len(ids), settings.max_new_tokens, self.num_samples, self.use_kv_cache, tokens_setting
        ).seconds


def encode_prompt(tokenizer: Tokenizer, prompt: str, skip_unknown: bool) -> list[int]:
    ids = tokenizer.encode(prompt, skip_unknown=skip_unknown)
    if ids:
        return ids
    return tokenizer.encode("\n") if "\n" in tokenizer.char_to_idx else [0]


def generate_text(
    decoder: Decoder, request: GenerationRequest, prompt: str, out: TextIO | None = None
) -> list[str]:
    """Generate `num_samples` continuations of `prompt`; with `out`, stream them as they come.

    One sample streams character by character; several are generated together in one batch and
    printed one after the other. Returns the continuations (without the prompt).
    """
    ids = encode_prompt(request.tokenizer, prompt, request.skip_unknown)
    decode_next = request.tokenizer.stream_decoder()  # byte mode: a character may span tokens
    produced: list[list[int]] = [[] for _ in range(request.num_samples)]
    steps = generate_tokens(
        decoder, ids, request.settings, request.rng, request.num_samples, request.use_kv_cache
    )
    for next_ids in steps:
        for sample, token in zip(produced, next_ids, strict=True):
            sample.append(int(token))
        if out is not None and request.num_samples == 1:
            out.write(decode_next(int(next_ids[0])))
            out.flush()
    texts = [request.tokenizer.decode(sample) for sample in produced]
    if out is not None and request.num_samples > 1:
        for index, text in enumerate(texts, start=1):
            out.write(f"--- sample {index} ---\n{prompt}{text}\n")
    return texts


def apply_setting(
    settings: SamplingSettings, line: str, request: GenerationRequest | None = None
) -> str:
    """Apply `/set NAME VALUE` to `settings`; return the message to show.

    With `request` (whose settings these are), a new max_new_tokens is checked against its
    budget at once, for the shortest prompt, as generate checks its flag."""
    parts = line.split()
    names = {f.name: f.type for f in fields(SamplingSettings)}
    if len(parts) != 3 or parts[1] not in names:
        return f"usage: /set NAME VALUE with NAME one of {', '.join(names)}"
    name, raw = parts[1], parts[2]
    cast: Callable[[str], float | int] = float if name in ("temperature", "top_p") else int
    try:
        value = cast(raw)
    except ValueError:
        return f"{name} takes a {cast.__name__}, not {raw!r}"
    previous = getattr(settings, name)
    setattr(settings, name, value)
    try:
        settings.validate()
        if request is not None and name == "max_new_tokens":
            request.check("", tokens_setting="/set max_new_tokens")
    except UserError as error:
        setattr(settings, name, previous)
        return str(error)
    return f"{name} = {value}"


def describe_settings(settings: SamplingSettings) -> str:
    return "  ".join(f"{f.name}={getattr(settings, f.name)}" for f in fields(settings))


def read_prompt(input_fn: Callable[[str], str]) -> str:
    """One prompt; lines ending with a backslash continue on the next line."""
    lines = [input_fn(">>> ")]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(input_fn("... "))
    return "\n".join(lines)


def enable_history() -> None:
    """Readline history in ~/.myllm_history, where readline exists."""
    try:
        import atexit
        import readline
    except ImportError:
        return
    history = Path.home() / ".myllm_history"
    with contextlib.suppress(OSError):
        readline.read_history_file(history)
    atexit.register(lambda: _save_history(readline, history))


def _save_history(readline, history: Path) -> None:
    with contextlib.suppress(OSError):
        readline.write_history_file(history)


def run_repl(
    decoder: Decoder,
    request: GenerationRequest,
    input_fn: Callable[[str], str] = input,
    out: TextIO = sys.stdout,
) -> None:
    """Prompt, generate, repeat; /set changes settings between prompts."""
    if input_fn is input:
        enable_history()
    out.write("myllm interactive generation; /help for commands, /quit to leave.\n")
    while True:
        try:
            prompt = read_prompt(input_fn)
        except EOFError:
            out.write("\n")
            return
        except KeyboardInterrupt:
            out.write("\n")
            continue
        command = prompt.strip()
        if command in ("/quit", "/exit"):
            return
        if command == "/help":
            out.write(HELP + "\n")
        elif command == "/settings":
            out.write(describe_settings(request.settings) + "\n")
        elif command.startswith("/set"):
            out.write(apply_setting(request.settings, command, request) + "\n")
        elif command.startswith("/"):
            out.write(f"unknown command {command.split()[0]}: /help lists the commands\n")
        else:
            generate_interruptibly(decoder, request, prompt, out)


def generate_interruptibly(
    decoder: Decoder, request: GenerationRequest, prompt: str, out: TextIO
) -> None:
    """One generation in the REPL: Ctrl-C stops it, bad characters are reported, the REPL lives."""
    try:
        request.check(prompt, tokens_setting="/set max_new_tokens")
        if request.num_samples == 1:
            out.write(prompt)
        generate_text(decoder, request, prompt, out)
    except KeyboardInterrupt:
        out.write("\n[stopped]")
    except UserError as error:
        out.write(f"error: {error}")
    out.write("\n")
