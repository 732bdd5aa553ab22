"""Wall and CPU time of the whole test suite, for one or more checkouts (before and after).

Each checkout's suite runs in a child `pytest -q` with that checkout first on the path, one after
the other (or all at once with --together, so that a loaded machine slows them alike). The wall
time, the children's CPU time, the pass / skip / fail counts and the load average before and
after are written as JSON; the CPU time is the steadier figure on a shared machine.

    .venv/bin/python benchmarks/suite_time.py /tmp/before . [--together] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected)")


def start_suite(checkout: Path) -> subprocess.Popen:
    """`pytest -q` of `checkout`, run from it with its own code first on the path."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    return subprocess.Popen(
        command, cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finished(checkout: Path, process: subprocess.Popen, started: float) -> dict:
    """The result of one suite: its counts (from pytest's last line), its wall time, its git
    commit and its exit code."""
    output, _ = process.communicate()
    last_line = output.strip().splitlines()[-1] if output.strip() else ""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True
    ).stdout.strip()
    return {
        "checkout": str(checkout),
        "commit": commit,
        "exit_code": process.returncode,
        "wall_s": round(time.perf_counter() - started, 1),
        "counts": {kind: int(number) for number, kind in COUNTS.findall(last_line)},
        "summary": last_line,
    }


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(checkouts: list[Path], together: bool) -> list[dict]:
    """Run the suites in order (CPU time per suite) or all at once (CPU time for all)."""
    if together:
        started = time.perf_counter()
        processes = [start_suite(checkout) for checkout in checkouts]
        results = [finished(c, p, started) for c, p in zip(checkouts, processes, strict=True)]
        return [{**result, "cpu_s_all_suites": round(children_cpu_s(), 1)} for result in results]
    results = []
    for checkout in checkouts:
        cpu_before, started = children_cpu_s(), time.perf_counter()
        result = finished(checkout, start_suite(checkout), started)
        results.append({**result, "cpu_s": round(children_cpu_s() - cpu_before, 1)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--together", action="store_true", help="run the suites at the same time")
    parser.add_argument("--out", type=Path, help="the JSON file (default: benchmarks/results/)")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    suites = measure([checkout.resolve() for checkout in args.checkouts], args.together)
    report = {
        "command": [sys.executable, *sys.argv],
        "machine": {
            "os": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
        },
        "together": args.together,
        "suites": suites,
    }
    out = args.out or REPO / "benchmarks" / "results" / f"suite_time-{date.today():%Y%m%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for suite in suites:
        print(f"{suite['wall_s']:8.1f} s  {suite['summary']}  ({suite['checkout']})")
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
