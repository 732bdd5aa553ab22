"""Runs `myllm bench`: every backend in its own worker process, the measurements interleaved.

Each backend (and each dtype / compile / dropout cell) is one worker (myllm/bench/worker.py):
same model, same seeded batches. After every worker has warmed up, each repeat of each
measurement runs every worker in turn, one at a time (torch, mlx, torch, mlx, ...), so a machine
that speeds up or slows down during the run moves all of them alike, a ratio between cells (as
bfloat16 over float32) is taken side by side, and no framework's threads share a process with
another's. Medians of the repeats are reported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from myllm.backend.registry import backend_names, is_installed
from myllm.bench.machine import load_average
from myllm.bench.measure import MEASUREMENTS
from myllm.bench.plan import BenchSettings, resolve_plan
from myllm.bench.report import BackendResult, build_report
from myllm.errors import UserError

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding myllm/


class BackendDoesNotImport(Exception):
    """A worker could not import its backend's modules (the message says why)."""


class Worker:
    """The parent's handle on one worker process: one JSON request out, one JSON reply back."""

    def __init__(self, backend: str, settings: BenchSettings, env: dict[str, str] | None = None):
        """`env`: variables for this worker on top of this process's (benchmarks/ scripts)."""
        self.backend = backend
        self.settings = settings
        path = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, **(env or {})}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, path) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "myllm.bench.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip

    def ask(self, op: str, **fields: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # the reply below says that it died
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise RuntimeError(f"the {self.backend} bench worker stopped (exit code {code})")
        reply = json.loads(line)
        if "error" not in reply:
            return reply["ok"]
        if reply["kind"] == "user":
            raise UserError(reply["error"])
        if reply["kind"] == "import":
            raise BackendDoesNotImport(reply["error"])
        raise RuntimeError(f"the {self.backend} bench worker failed:\n{reply['error']}")

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def select_backends(names: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """The backends to run and, when none were named, why each other backend is skipped.

    Checked without importing a framework (the workers do). A named backend that is unknown or
    not installed is a UserError; unnamed ones are skipped with the reason.
    """
    explicit = names is not None
    chosen = names if explicit else backend_names()
    if explicit and not chosen:
        raise UserError("--backends is empty: use e.g. --backends torch,mlx")
    for name in chosen:
        if name not in backend_names():
            raise UserError(f"unknown backend {name!r}: use one of {', '.join(backend_names())}")
    selected, skipped = [], {}
    for name in [name for name in backend_names() if name in chosen]:
        if is_installed(name):
            selected.append(name)
        elif explicit:
            raise UserError(f"backend {name!r} cannot run: it is not installed")
        else:
            skipped[name] = "not installed"
    if not selected:
        raise UserError("no backend can run (none is installed): install torch or mlx")
    return selected, skipped


def start_workers(
    cells: list[BenchSettings], progress: Callable[[str], None]
) -> tuple[list[Worker], dict[str, str]]:
    """A warmed-up worker per cell and backend, one warm-up at a time; and what was skipped."""
    explicit = cells[0].backends is not None
    names, skipped = select_backends(cells[0].backends)
    workers: list[Worker] = []
    try:
        for settings in cells:
            for name in [name for name in names if name not in skipped]:
                progress(f"building and warming up {name} ({describe_cell(settings)})")
                worker = Worker(name, settings)
                workers.append(worker)
                try:
                    worker.ask("start", backend=name, settings=dataclasses.asdict(settings))
                except BackendDoesNotImport as failure:
                    if explicit:
                        raise UserError(f"backend {name!r} cannot run: {failure}") from None
                    skipped[name] = str(failure)
                    worker.close()
                    workers.remove(worker)
    except BaseException:
        for worker in workers:
            worker.close()
        raise
    if not workers:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped.items())
        raise UserError(f"no backend can run ({reasons}): install torch or mlx")
    return workers, skipped


def describe_cell(settings: BenchSettings) -> str:
    dropout = "model's" if settings.dropout is None else settings.dropout
    return f"dtype {settings.dtype}, compile {settings.compile}, dropout {dropout}"


def run_bench(
    settings: BenchSettings, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run every selected backend, interleaved after warm-up; return the report (JSON-ready)."""
    return run_matrix([settings], progress)[0]


def run_matrix(
    cells: list[BenchSettings], progress: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """One report per cell (a dtype x compile x dropout combination), all measured in one pass.

    Every cell's workers are resident together: a matrix needs that much more memory.
    """
    progress = progress or (lambda message: None)
    load_at_start = load_average()
    plans = [resolve_plan(settings) for settings in cells]  # bad input: before any process
    workers, skipped = start_workers(cells, progress)
    try:
        repeats = plans[0].repeats
        for index, (label, _) in enumerate(MEASUREMENTS):
            for repeat in range(repeats):
                for worker in workers:
                    progress(f"{label}: {worker.backend} {repeat + 1}/{repeats}")
                    worker.ask("measure", index=index, repeat=repeat)
                # The peak is sampled throughout the run, not in one phase that a burst of other
                # work on the machine could spoil; its median is robust to a few slow samples.
                for worker in workers:
                    worker.ask("matmul")
        results = [BackendResult(**worker.ask("result")) for worker in workers]
    finally:
        for worker in workers:
            worker.close()
    return [
        build_report(
            plan,
            [r for r, w in zip(results, workers, strict=True) if w.settings is settings],
            skipped,
            load_at_start,
        )
        for plan, settings in zip(plans, cells, strict=True)
    ]
