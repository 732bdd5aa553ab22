"""Does `myllm bench` measure each backend as it runs alone? Together vs solo, one sitting.

`myllm bench` runs every backend in a worker process of its own and interleaves them (issue 25:
in one shared process torch's cached decoding measured 3x slower beside MLX). This script runs,
in the same sitting, the bench of every backend together and then each backend solo, --rounds
times alternating, and reports for each backend and figure the ratio together / solo of the
medians: within 10 % (0.9 to 1.1) is the check. The machine's load is recorded: on a busy
machine the ratios say little.

    .venv/bin/python benchmarks/bench_solo_check.py [--config default] [--repeats 3] [--rounds 1] \
        [--json benchmarks/results/bench_solo_check-HOST-DATE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from myllm.bench import ROWS, BenchSettings, run_bench
from myllm.bench.machine import load_average, machine_info
from myllm.bench.report import NO_RATIO

TOLERANCE = 0.10
CHECKED = [key for _, key, _ in ROWS if key not in NO_RATIO and "mfu" not in key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    common = {"config": args.config, "repeats": args.repeats, "gen_tokens": args.gen_tokens}
    names = ["torch", "mlx"]
    together: dict[str, list[dict]] = {name: [] for name in names}
    solo: dict[str, list[dict]] = {name: [] for name in names}
    load_at_start = load_average()
    for round_index in range(args.rounds):
        print(f"round {round_index + 1}: both backends", file=sys.stderr)
        report = run_bench(BenchSettings(backends=names, **common))
        for name in names:
            together[name].append(report["backends"][name]["figures"])
        for name in names:
            print(f"round {round_index + 1}: {name} alone", file=sys.stderr)
            solo[name].append(
                run_bench(BenchSettings(backends=[name], **common))["backends"][name]["figures"]
            )
    ratios = {
        name: {
            key: statistics.median(f[key] for f in together[name])
            / statistics.median(f[key] for f in solo[name])
            for key in CHECKED
        }
        for name in names
    }
    within = {
        name: {key: abs(ratio - 1) <= TOLERANCE for key, ratio in ratios[name].items()}
        for name in names
    }
    for name in names:
        for key in CHECKED:
            mark = "ok " if within[name][key] else "OUT"
            print(f"{mark} {name:5s} {key:32s} together/solo {ratios[name][key]:.3f}")
    result = {
        "command": sys.argv,
        "machine": {**machine_info(), "load_average_at_start": list(load_at_start),
                    "load_average_at_end": list(load_average())},
        "settings": {**common, "rounds": args.rounds, "tolerance": TOLERANCE},
        "together_over_solo": ratios,
        "within_tolerance": within,
        "all_within": all(all(v.values()) for v in within.values()),
        "figures": {"together": together, "solo": solo},
    }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"Wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
