"""The hostile-input table: classes of bad input and faults, tried on every command.

A case is a command and its setup (files, a resource limit, a signal, a deleted folder, a full
disk as stdout). Its outcome is one of:

  clean      the expected exit code, no traceback, every file the case protects unchanged,
             and for bad input (exit 2) one line on stderr
  unclear    no traceback and nothing lost, but not clean (several lines, another exit code)
  traceback  a Python traceback on stderr
  data lost  a protected file (a checkpoint, metrics, a user's file) changed or gone
  hang       still running at --timeout

Run it class by class on a shared machine:
  python benchmarks/hostile_cases.py --only memory --timeout 120 --out benchmarks/results/x.json
Without --only every class runs. The JSON holds each case's outcome, exit code and last line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
TINY = ["--d-model", "32", "--n-heads", "4", "--n-layers", "2", "--block-size", "16",
        "--batch-size", "8", "--device", "cpu"]  # fmt: skip
OUTCOMES = ("clean", "unclear", "traceback", "data lost", "hang")
GIB = 1024**3


@dataclass
class Case:
    """One command in one setup; `expect` the exit code a clean outcome has."""

    group: str
    name: str
    args: list[str]
    expect: int = 2
    setup: Callable[[Path], None] | None = None
    protect: tuple[str, ...] = ("base",)  # paths (under the work folder) that must not change
    address_space: int | None = None  # RLIMIT_AS for the command
    stdout: str | None = None  # "/dev/full", "pipe" (closed after 10 bytes)
    stdin: str | None = None
    signal_after: tuple[int, str] | None = None  # (signal, file whose appearance triggers it)
    deleted_cwd: bool = False
    must_say: str = ""  # words a clean message must contain
    extra: dict = field(default_factory=dict)


def myllm(*args: str) -> list[str]:
    return [sys.executable, "-m", "myllm", *args]


def fingerprint(root: Path, names: tuple[str, ...]) -> dict[str, str]:
    """sha256 of every file under the protected paths (a folder: all its files but run.lock)."""
    found = {}
    for name in names:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.name != "run.lock":
                found[str(file.relative_to(root))] = (
                    hashlib.sha256(file.read_bytes()).hexdigest() if file.exists() else "missing"
                )
    return found


def prepare(work: Path) -> None:
    """small.txt and a 30-step tiny torch run `base`, as the issue's reproductions use."""
    (work / "small.txt").write_text(DATA.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    subprocess.run(
        myllm("train", "--data", "small.txt", "--checkpoint-dir", "base", *TINY, "--max-steps",
              "30", "--eval-interval", "10", "--eval-iters", "2"),
        cwd=work, env=environment(), check=True, capture_output=True,
    )  # fmt: skip
    (work / "notes.txt").write_text("the user's own file\n")


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def run_case(case: Case, work: Path, timeout: float) -> dict:
    """Run `case` in a fresh copy of the work folder and judge its outcome."""
    folder = Path(tempfile.mkdtemp(prefix="hostile-", dir=work.parent))
    shutil.copytree(work, folder, dirs_exist_ok=True)
    if case.setup:
        case.setup(folder)
    before = fingerprint(folder, case.protect)
    cwd = folder
    if case.deleted_cwd:
        (folder / "gone").mkdir()
        cwd = folder / "gone"
    started = time.monotonic()
    outcome, code, stderr, stdout = run_process(case, folder, cwd, timeout)
    after = fingerprint(folder, case.protect)
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if outcome is None:
        if "Traceback" in stderr:
            outcome = "traceback"
        elif before != after:
            outcome = "data lost"
        elif (
            code == case.expect
            and (case.expect != 2 or len(lines) <= 1)
            and (case.must_say in stderr + stdout)
        ):
            outcome = "clean"
        else:
            outcome = "unclear"
    shutil.rmtree(folder, ignore_errors=True)
    return {"group": case.group, "case": case.name, "command": " ".join(case.args),
            "outcome": outcome, "exit_code": code, "seconds": round(time.monotonic() - started, 1),
            "last_line": lines[-1][:300] if lines else ""}  # fmt: skip


def run_process(case: Case, folder: Path, cwd: Path, timeout: float):
    """(outcome if decided here, exit code, stderr, stdout) of the case's command."""
    limit = case.address_space

    def before_exec() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = myllm(*(arg.replace("{folder}", str(folder)) for arg in case.args))
    if case.deleted_cwd:
        command = ["sh", "-c", f'rmdir "{cwd}" && exec "$@"', "sh", *command]
    stdout = open(case.stdout, "w") if case.stdout == "/dev/full" else subprocess.PIPE  # noqa: SIM115
    process = subprocess.Popen(
        command, cwd=cwd, env=environment(), stdout=stdout, stderr=subprocess.PIPE,
        stdin=subprocess.PIPE if case.stdin is not None else subprocess.DEVNULL,
        preexec_fn=before_exec, text=True,
    )  # fmt: skip
    try:
        if case.stdout == "pipe":
            process.stdout.read(10)
            process.stdout.close()
        if case.signal_after is not None:
            signum, trigger = case.signal_after
            deadline = time.monotonic() + timeout
            while not (folder / trigger).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            process.send_signal(signum)
        if case.stdout == "pipe":
            output, stderr = "", process.stderr.read()
            process.wait(timeout=timeout)
        else:
            output, stderr = process.communicate(input=case.stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return "hang", None, "", ""
    finally:
        if stdout is not subprocess.PIPE:
            stdout.close()
    return None, process.returncode, stderr or "", output or ""


def write(relative: str, content: bytes | str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def copy(source: str, target: str) -> Callable[[Path], None]:
    return lambda folder: shutil.copyfile(folder / source, folder / target)


def export_nanogpt(folder: Path) -> None:
    """out/ckpt.pt and out/meta.pkl: the base run as nanoGPT's files."""
    subprocess.run(
        myllm("convert", "base/checkpoint_last.pt", "out/ckpt.pt", "--to", "nanogpt"),
        cwd=folder, env=environment(), check=True, capture_output=True,
    )  # fmt: skip


def cases() -> list[Case]:
    """Each class tried on several commands; instances stand for the class, not the reverse."""
    train = ["train", "--data", "small.txt", "--checkpoint-dir", "new", *TINY, "--max-steps", "3"]
    last = "base/checkpoint_last.pt"
    generate = ["generate", "--checkpoint", last]
    huge = str(2**64)
    found = [
        # hostile values: every command's counts and sizes
        Case("values", "train max-steps 2**64", [*train, "--max-steps", huge]),
        Case("values", "train lr nan", [*train, "--lr", "nan"]),
        Case(
            "values",
            "train config beta1 1.5",
            [*train, "--config", "c.toml"],
            setup=write("c.toml", "beta1 = 1.5\n"),
        ),
        Case("values", "train empty checkpoint dir", [*train, "--checkpoint-dir", ""]),
        Case(
            "values",
            "train warm-up past an epoch run",
            [
                "train",
                "--data",
                "small.txt",
                "--checkpoint-dir",
                "new",
                *TINY,
                "--epochs",
                "1",
                "--warmup-steps",
                "100000",
            ],
        ),
        Case("values", "generate max-new-tokens 2**64", [*generate, "--max-new-tokens", huge]),
        Case("values", "generate top-p nan", [*generate, "--top-p", "nan"]),
        Case(
            "values",
            "eval eval-iters 10**12",
            ["eval", "--checkpoint", last, "--eval-iters", str(10**12)],
        ),
        Case(
            "values",
            "bench block-size 2**64",
            ["bench", "--backends", "torch", "--block-size", huge],
        ),
        Case(
            "values",
            "convert empty dataset",
            ["convert", last, "x/ckpt.pt", "--to", "nanogpt", "--dataset", ""],
        ),
        # never ends: counts that the model or the time cannot give
        Case(
            "never ends",
            "repl set max_new_tokens 10**14",
            [*generate, "-i"],
            expect=0,
            stdin=f"/set max_new_tokens {10**14}\n/quit\n",
            must_say="would take at least",
        ),
        Case(
            "never ends",
            "generate 10**6 tokens x 1024 samples no cache",
            [*generate, "--max-new-tokens", str(10**6), "--num-samples", "1024", "--no-kv-cache"],
            address_space=4 * GIB,
        ),
        # memory: checked against the smallest limit before allocating
        Case("memory", "train batch 10**9", [*train, "--batch-size", str(10**9)]),
        Case(
            "memory",
            "train gpt2-small under RLIMIT_AS 4 GiB",
            [
                "train",
                "--data",
                "small.txt",
                "--checkpoint-dir",
                "new",
                "--preset",
                "gpt2-small",
                "--batch-size",
                "24",
                "--block-size",
                "1024",
                "--device",
                "cpu",
            ],
            address_space=4 * GIB,
            must_say="RLIMIT_AS",
        ),
        Case(
            "memory",
            "generate 1024 samples under RLIMIT_AS 4 GiB",
            [*generate, "--num-samples", "1024", "--max-new-tokens", str(10**6)],
            address_space=4 * GIB,
        ),
        Case(
            "memory",
            "bench batch 100000 x block 1024",
            ["bench", "--backends", "torch", "--batch-size", "100000", "--block-size", "1024"],
        ),
        Case(
            "memory",
            "bench block 10**6",
            ["bench", "--backends", "torch", "--block-size", str(10**6)],
        ),
        # the output: a full disk, a reader that goes away
        Case(
            "output",
            "generate > /dev/full",
            [*generate, "--max-new-tokens", "50"],
            stdout="/dev/full",
        ),
        Case(
            "output",
            "eval > /dev/full",
            ["eval", "--checkpoint", last, "--eval-iters", "1"],
            stdout="/dev/full",
        ),
        Case("output", "data list > /dev/full", ["data", "list"], stdout="/dev/full"),
        Case(
            "output",
            "generate | head -c 10",
            [*generate, "--max-new-tokens", str(10**5)],
            stdout="pipe",
            expect=1,
        ),
        # the environment: the working directory deleted
        Case(
            "environment",
            "generate in a deleted folder",
            ["generate", "--checkpoint", "{folder}/base/checkpoint_last.pt"],
            must_say="working directory was deleted",
            deleted_cwd=True,
        ),
        Case(
            "environment",
            "train in a deleted folder",
            ["train", "--data", "{folder}/small.txt", "--checkpoint-dir", "{folder}/new", *TINY],
            deleted_cwd=True,
            must_say="working directory was deleted",
        ),
        # signals: a closed terminal
        Case(
            "signals",
            "SIGHUP mid-run",
            [
                "train",
                "--data",
                "small.txt",
                "--checkpoint-dir",
                "hup",
                *TINY,
                "--max-steps",
                "100000",
                "--log-interval",
                "1",
            ],
            expect=129,
            signal_after=(signal.SIGHUP, "hup/metrics.jsonl"),
            must_say="Resume with:",
        ),
        # runs never lost: overwrite, resume, divergence, foreign writes
        Case(
            "files",
            "overwrite keeps keep.pt and for_mlx.safetensors",
            [
                "train",
                "--data",
                "small.txt",
                "--checkpoint-dir",
                "base",
                *TINY,
                "--max-steps",
                "3",
                "--overwrite",
            ],
            expect=0,
            setup=lambda f: (
                copy(last, "base/keep.pt")(f),
                write("base/for_mlx.safetensors", b"converted")(f),
            ),
            protect=("base/keep.pt", "base/for_mlx.safetensors", "notes.txt"),
        ),
        Case(
            "files",
            "new run into a run",
            ["train", "--data", "small.txt", "--checkpoint-dir", "base", *TINY],
        ),
        Case(
            "files",
            "resume with max-steps reached",
            ["train", "--resume", last, "--max-steps", "20"],
        ),
        Case(
            "files",
            "resume with its own d-model",
            [
                "train",
                "--resume",
                last,
                "--d-model",
                "32",
                "--max-steps",
                "32",
                "--checkpoint-dir",
                "cont",
            ],
            expect=0,
        ),
        Case(
            "files",
            "weight decay 1e6 diverges",
            [*train, "--max-steps", "40", "--weight-decay", "1e6", "--log-interval", "1"],
            expect=1,
            must_say="diverged",
        ),
        Case(
            "files",
            "convert onto another run's checkpoint",
            ["convert", last, "other/checkpoint_last.safetensors"],
            setup=lambda f: (
                write("other/checkpoint_last.safetensors", b"other run")(f),
                copy("base/tokenizer.json", "other/tokenizer.json")(f),
            ),
            protect=("base", "other"),
        ),
        # damaged or foreign files given as inputs
        Case(
            "files given",
            "meta.pkl of random bytes",
            ["convert", "out/ckpt.pt", "m/model.pt", "--meta", "out/meta.pkl"],
            setup=lambda f: (export_nanogpt(f), write("out/meta.pkl", os.urandom(300))(f)),
            must_say="not a whole pickle",
        ),
        Case(
            "files given", "a file as the checkpoint dir", [*train, "--checkpoint-dir", "notes.txt"]
        ),
        Case(
            "files given",
            "a file as the cache dir",
            [*train, "--cache-dir", "notes.txt"],
            must_say="not a folder",
        ),
        Case("files given", "a folder as --data", [*train, "--data", "base"]),
        Case(
            "files given",
            "a folder as --tokenizer",
            [*generate, "--tokenizer", "base"],
            must_say="is a directory",
        ),
        Case(
            "files given",
            "random bytes as a checkpoint",
            ["generate", "--checkpoint", "r/x.pt"],
            setup=write("r/x.pt", os.urandom(4096)),
        ),
        Case(
            "files given",
            "plot a folder with a folder metrics.jsonl",
            ["plot", "p"],
            setup=lambda f: (f / "p" / "metrics.jsonl").mkdir(parents=True),
        ),
        Case(
            "files given",
            "bench --json a folder",
            ["bench", "--backends", "torch", "--config", "tiny", "--json", "base"],
        ),
        Case(
            "files given",
            "data prepare a FIFO",
            ["data", "prepare", "fifo"],
            setup=lambda f: os.mkfifo(f / "fifo"),
            must_say="not a regular file",
        ),
    ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="one class (group), e.g. memory")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/hostile_cases.json"))
    options = parser.parse_args()
    chosen = [case for case in cases() if options.only in (None, case.group)]
    if not chosen:
        parser.error(f"no class {options.only!r}: use one of {sorted({c.group for c in cases()})}")
    root = Path(tempfile.mkdtemp(prefix="hostile-cases-"))
    work = root / "work"
    work.mkdir()
    prepare(work)
    results = []
    for case in chosen:
        results.append(run_case(case, work, options.timeout))
        result = results[-1]
        print(f"{result['outcome']:>10}  {case.group}: {case.name}  (exit "
              f"{result['exit_code']})  {result['last_line'][:140]}", flush=True)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    counts = Counter(result["outcome"] for result in results)
    summary = {"tried": len(results), **{outcome: counts.get(outcome, 0) for outcome in OUTCOMES}}
    print(json.dumps(summary))
    out = Path(options.out)
    previous = json.loads(out.read_text()) if out.is_file() else {"cases": []}
    kept = [r for r in previous.get("cases", []) if r["group"] not in {c.group for c in chosen}]
    merged = kept + results
    merged_counts = Counter(result["outcome"] for result in merged)
    totals = {outcome: merged_counts.get(outcome, 0) for outcome in OUTCOMES}
    report = {"command": " ".join(sys.argv), "summary": {"tried": len(merged), **totals},
              "cases": merged}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
