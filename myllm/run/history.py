"""A run's history read back: metrics.jsonl's records and run.json's labels, for `myllm plot`.

Every problem is one line naming the file (and the line of metrics.jsonl) and how to fix it; a
torn last line, left by a crash mid-write (see MetricsLog), is skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from myllm.errors import UserError
from myllm.paths import check_directory, check_file, unreadable
from myllm.run.files import METRICS, RUN_INFO

RUN_HINT = "pass a checkpoint directory written by `myllm train`"


@dataclass(frozen=True)
class RunHistory:
    """One run directory: its legend label and its metrics records with their line numbers."""

    label: str
    metrics_path: Path
    records: list[tuple[int, dict[str, Any]]]

    def points(self, key: str, evaluation: bool) -> list[tuple[int, dict[str, Any]]]:
        """The training (or evaluation) records that carry `key`, one per step, by step."""
        by_step = {}
        for number, record in self.records:
            if ("val_loss" in record) == evaluation and key in record:
                # A resumed run repeats the steps after its last checkpoint: the later line wins.
                by_step[record["step"]] = (number, record)
        return [by_step[step] for step in sorted(by_step)]

    def column(self, points: list[tuple[int, dict[str, Any]]], key: str) -> list[float]:
        """The values of `key` in `points`; a missing or non-numeric value names its line."""
        for number, record in points:
            if not is_number(record.get(key)):
                raise UserError(
                    f"{self.metrics_path} line {number}: {key!r} is {record.get(key)!r}, not a "
                    "number: fix or delete that line"
                )
        return [record[key] for _, record in points]


def run_labels(run_dirs: list[Path]) -> list[str]:
    """Directory names, or the paths as given when two runs share a name (a/ckpt, b/ckpt)."""
    names = [directory.resolve().name for directory in run_dirs]
    if len(set(names)) < len(names):
        names = [str(directory) for directory in run_dirs]
    return names


def read_run(directory: Path, name: str) -> RunHistory:
    """The history of run `directory`, labelled `name` and its backend and device."""
    check_directory(directory, "run directory", RUN_HINT)
    metrics_path = directory / METRICS
    if not metrics_path.exists():
        raise UserError(f"{directory} has no {METRICS}: {RUN_HINT}")
    check_file(metrics_path, "metrics file", RUN_HINT)
    info = run_info(directory / RUN_INFO)
    label = f"{name} ({info})" if info else name
    return RunHistory(label, metrics_path, read_metrics(metrics_path))


def run_info(path: Path) -> str:
    """'<backend>, <device>' from run.json; '' for old runs written before run.json existed."""
    if not path.exists():
        return ""
    fix = "fix it, or delete it to label the run by its directory name"
    check_file(path, "run file", fix)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error}): {fix}") from None
    except OSError as error:
        raise unreadable(path, "run file", fix, error) from None
    if not isinstance(info, dict):
        return ""
    text = ", ".join(str(info[key]) for key in ("backend", "device") if info.get(key))
    return re.sub(r" \(/[^()]*\)", "", text)  # library paths make the legend wider than the plot


def read_metrics(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) for each line of metrics.jsonl; a malformed line names its number."""
    records = []
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                record = parse_record(path, number, line)
                if record is not None:
                    records.append((number, record))
    except OSError as error:
        raise UserError(
            f"metrics file {path} cannot be read ({error.strerror}): {RUN_HINT}"
        ) from None
    if not records:
        raise UserError(f"{path} is empty: train until the first log line is written, then plot")
    return records


def parse_record(path: Path, number: int, line: str) -> dict[str, Any] | None:
    """The record on line `number`, or None for a blank or torn last line."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        if not line.endswith("\n"):
            return None  # a crash cut the last write short (see MetricsLog): skip that line
        raise UserError(
            f"{path} line {number} is not valid JSON ({error.msg}): fix or delete that line"
        ) from None
    if not isinstance(record, dict) or not is_number(record.get("step")):
        raise UserError(
            f'{path} line {number} is not a metrics record with a "step": fix or delete that line'
        )
    return record


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
