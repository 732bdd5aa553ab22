"""Peak memory of `myllm eval` on a 100 MB corpus: before (main at 5abc134) and after issue 22.

Before, `myllm eval` read the whole text into a str and encoded it in memory (several bytes per
character); after, it reads the run's token cache, memory-mapped, through training's own path.
The corpus is the four Gutenberg books of ../shared/data, concatenated and repeated to 100 MB.
A tiny model is trained for one step on it (this tree; that builds the token cache), then each
`myllm eval --eval-iters 2` (both versions) runs in its own process, and its peak resident set
(ru_maxrss of that one child) is recorded:

- before: the 5abc134 tree (`git archive`), text read whole;
- after, cache built: the normal case, the cache training wrote is memory-mapped;
- after, no cache yet: eval builds the cache itself (chunked: bounded by the chunk size);
- baseline: a Python that imports torch and numpy, nothing else (the floor of every figure).

    PYTHONPATH=. .venv/bin/python benchmarks/eval_memory.py [--megabytes 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEFORE_COMMIT = "5abc134"
BOOKS = ("alice_in_wonderland", "pride_and_prejudice", "shakespeare_complete", "sherlock_holmes")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data
TINY = ["--d-model", "32", "--n-heads", "4", "--n-layers", "2", "--block-size", "64",
        "--batch-size", "8", "--device", "cpu"]  # fmt: skip
# Runs one command as its only child and prints that child's peak RSS in kB (Linux ru_maxrss).
PEAK = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
)


def build_corpus(path: Path, megabytes: int) -> None:
    books = b"\n".join((SHARED_DATA / f"{name}.txt").read_bytes() for name in BOOKS)
    target = megabytes * 1_000_000
    with open(path, "wb") as out:
        written = 0
        while written < target:
            piece = books[: target - written]
            out.write(piece)
            written += len(piece)


def peak_rss(command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, float, str]:
    """(peak RSS in bytes, seconds, stdout) of `command` run as the only child of a fresh python.

    `cwd` is outside both trees: `python -m myllm` puts the working directory first on sys.path.
    """
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PEAK, *command], capture_output=True, text=True, env=env, cwd=cwd
    )
    seconds = time.perf_counter() - started
    code, kilobytes = result.stderr.strip().splitlines()[-1].split()
    if code != "0":
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return int(kilobytes) * 1024, seconds, result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/eval_memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        before_tree = work / "before"
        before_tree.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", BEFORE_COMMIT, "myllm", "myllm_torch"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(before_tree)], input=archive, check=True)
        data = work / "corpus.txt"
        build_corpus(data, args.megabytes)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MYLLM_CACHE": str(work / "cache")}
        after_env = {**env, "PYTHONPATH": str(REPO)}
        train = [sys.executable, "-m", "myllm", "train", "--data", str(data),
                 "--checkpoint-dir", str(work / "run"), "--max-steps", "1", "--eval-iters", "1",
                 *TINY]  # fmt: skip
        subprocess.run(train, env=after_env, check=True, capture_output=True, cwd=work)
        checkpoint = work / "run" / "checkpoint_last.pt"
        evaluate = [sys.executable, "-m", "myllm", "eval", "--checkpoint", str(checkpoint),
                    "--eval-iters", "2", "--device", "cpu"]  # fmt: skip
        runs = {
            "baseline_import_torch": ([sys.executable, "-c", "import numpy, torch"], after_env),
            "before": (evaluate, {**env, "PYTHONPATH": str(before_tree)}),
            "after_cache_built": (evaluate, after_env),
            "after_no_cache_yet": (evaluate, {**after_env, "MYLLM_CACHE": str(work / "cold")}),
        }
        figures = {}
        for name, (command, run_env) in runs.items():
            peak, seconds, printed = peak_rss(command, run_env, work)
            figures[name] = {"peak_rss_mb": round(peak / 1e6, 1), "seconds": round(seconds, 1),
                             "printed": printed}  # fmt: skip
            print(f"{name:>24}: {peak / 1e6:8.1f} MB peak RSS, {seconds:6.1f} s  {printed}")
    report = {
        "benchmark": "eval_memory",
        "corpus_bytes": args.megabytes * 1_000_000,
        "corpus": " + ".join(BOOKS) + f", repeated to {args.megabytes} MB",
        "before_commit": BEFORE_COMMIT,
        "command": "myllm eval --checkpoint RUN/checkpoint_last.pt --eval-iters 2 --device cpu",
        "model": " ".join(TINY),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "note": "peak RSS = ru_maxrss of the one child; the machine was shared (timings noisy)",
        "figures": figures,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
