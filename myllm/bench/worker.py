"""One backend of `myllm bench` in a process of its own: `python -m myllm.bench.worker`.

Two frameworks in one process share its cores with two thread pools (torch's OpenMP, the BLAS
MLX loads), which spin after each call and slowed torch's cached decoding 3x (issue 25). So each
backend, and each dtype / compile / dropout cell, is measured in its own worker, and the parent
(myllm/bench/runner.py) interleaves them: it sends one JSON request per line on stdin and waits
for the one-line JSON reply on stdout before it asks the next worker, so only one runs at a time.

Requests: {"op": "start", "backend": name, "settings": BenchSettings fields} builds and warms up;
{"op": "measure", "index": i, "repeat": r} runs MEASUREMENTS[i]; {"op": "matmul"} samples the
matmul peak; {"op": "result"} returns the BackendResult. A reply is {"ok": ...} or {"error":
text, "kind": "user" | "import" | "crash"}.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback
from typing import Any, TextIO

from myllm.bench.measure import MEASUREMENTS, BackendBench
from myllm.bench.plan import BenchSettings, make_batches, resolve_plan
from myllm.errors import UserError


def start(request: dict[str, Any]) -> BackendBench:
    from myllm.backend.registry import load_backend

    plan = resolve_plan(BenchSettings(**request["settings"]))
    bench = BackendBench(load_backend(request["backend"]), plan, make_batches(plan))
    bench.warm_up()
    gc.collect()  # once, before timing: the timed blocks run with the collector off
    return bench


def answer(request: dict[str, Any], bench: BackendBench | None) -> tuple[Any, BackendBench | None]:
    """(the reply's "ok" value, the bench from now on) for one request."""
    op = request["op"]
    if op == "start":
        return None, start(request)
    if bench is None:
        raise RuntimeError(f"{op!r} before 'start'")
    if op == "measure":
        MEASUREMENTS[request["index"]][1](bench, request["repeat"])
    elif op == "matmul":
        bench.time_matmul()
    elif op == "result":
        return bench.result().to_dict(), bench
    else:
        raise RuntimeError(f"unknown request {op!r}")
    return None, bench


def serve(requests: TextIO, replies: TextIO) -> None:
    bench = None
    for line in requests:
        try:
            value, bench = answer(json.loads(line), bench)
            reply: dict[str, Any] = {"ok": value}
        except UserError as error:
            reply = {"error": str(error), "kind": "user"}
        except ImportError as error:
            reply = {"error": f"its modules do not import yet ({error})", "kind": "import"}
        except Exception:  # the parent shows it and stops the other workers
            reply = {"error": traceback.format_exc(), "kind": "crash"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a framework prints goes to stderr, never into the replies
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
