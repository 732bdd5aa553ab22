#!/usr/bin/env bash
# The GPU-only paths of myllm, run once on a Linux CUDA machine (docs/gpu_paths.md lists them).
#
#   bash benchmarks/gpu_check.sh            # fresh venv .venv-gpu with the CUDA builds, ~5-8 min
#   GPU_CHECK_VENV=.venv GPU_CHECK_SKIP_INSTALL=1 GPU_CHECK_ALLOW_CPU=1 bash benchmarks/gpu_check.sh
#                                           # the same steps on a CPU machine (no GPU claims)
#   GPU_CHECK_STEPS="probe parity"          # some steps only
#   GPU_CHECK_SPEED_ARGS="--d-model 64 --n-heads 4 --n-layers 2 --max-steps 40"
#                                           # a smaller tokens_per_second run (default model)
#
# Each step is a function below, listed in STEPS; each appends one JSON line (name, status,
# seconds, figures) and the script writes them all to benchmarks/results/gpu-check-*.json.
# A failed step is recorded and the next one runs; the exit status is 1 if any step failed.
# To add a step (e.g. bf16 runs): write step_NAME, add NAME to STEPS.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV=${GPU_CHECK_VENV:-.venv-gpu}
TORCH_INDEX=${GPU_CHECK_TORCH_INDEX:-https://download.pytorch.org/whl/cu128}
ALLOW_CPU=${GPU_CHECK_ALLOW_CPU:-0}
RESULT=${GPU_CHECK_RESULT:-benchmarks/results/gpu-check-$(hostname)-$(date +%Y%m%d-%H%M%S).json}
ALL_STEPS="install probe parity device_auto resume_across_backends rng_exactness tokens_per_second
bench_default quality_bf16"
read -ra STEPS <<< "$(echo ${GPU_CHECK_STEPS:-$ALL_STEPS})"  # GPU_CHECK_STEPS="probe parity"

WORK=$(mktemp -d)
DATA=$WORK/input.txt
PY=$VENV/bin/python
export PYTHONPATH=$PWD
export MYLLM_DATA_MIRROR=${MYLLM_DATA_MIRROR:-../shared/data}
TINY=(--d-model 64 --n-heads 4 --n-layers 2 --block-size 64 --batch-size 16 --eval-iters 5)
if [ "$ALLOW_CPU" = 1 ]; then GPU=cpu; TORCH_GPU=cpu; else GPU=gpu; TORCH_GPU=cuda; fi

record() {  # record NAME STATUS MILLISECONDS OUTPUT: one JSON line; figures = OUTPUT's last line
  "$PY" - "$@" >> "$WORK/steps.jsonl" <<'PY'
import json, sys
name, status, milliseconds, output = sys.argv[1:5]
try:
    figures = json.loads(output.strip().splitlines()[-1])
except (IndexError, ValueError):
    figures = {"output_tail": output.strip().splitlines()[-5:]}
print(json.dumps({"step": name, "status": status, "seconds": int(milliseconds) / 1000,
                  "figures": figures}))
PY
}

myllm() { "$PY" -m myllm "$@"; }

# --- the steps: each prints its figures as one JSON object on its last stdout line ---

step_install() {
  if [ "${GPU_CHECK_SKIP_INSTALL:-0}" = 1 ]; then echo '{"skipped_install": true}'; return; fi
  python3 -m venv "$VENV" &&
    "$VENV/bin/pip" install -q torch==2.13.0 --index-url "$TORCH_INDEX" &&
    "$VENV/bin/pip" install -q -e ".[torch,mlx-cuda,dev]" &&
    echo '{"venv": "'"$VENV"'"}'
}

step_probe() {  # which devices `auto` will take; fails unless both see the GPU (or ALLOW_CPU)
  "$PY" - "$ALLOW_CPU" <<'PY'
import json, sys
import torch
import myllm_mlx  # sets MLX_ENABLE_TF32 before mlx.core is imported
import mlx.core as mx
figures = {
    "torch": torch.__version__, "torch_cuda": torch.cuda.is_available(),
    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    "mlx": mx.__version__, "mlx_gpu": mx.is_available(mx.gpu),
}
print(json.dumps(figures))
sys.exit(0 if sys.argv[1] == "1" or (figures["torch_cuda"] and figures["mlx_gpu"]) else 1)
PY
}

step_parity() {  # torch vs MLX on the GPU, the CPU tolerances (float32, TF32 off)
  MYLLM_TEST_DEVICE=$GPU "$PY" -m pytest -q -p no:cacheprovider parity_tests -s |
    tee "$WORK/parity.log" | tail -20
  local status=${PIPESTATUS[0]}
  "$PY" - "$WORK/parity.log" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
print(json.dumps({m[0]: float(m[1]) for m in re.findall(r"^parity (.+): (\S+)$", text, re.M)}))
PY
  return "$status"
}

step_device_auto() {  # --device auto picks the GPU on both backends
  for backend in torch mlx; do
    myllm train --backend "$backend" --data "$DATA" --checkpoint-dir "$WORK/auto-$backend" \
      "${TINY[@]}" --max-steps 20 --log-interval 10 --device auto > "$WORK/auto-$backend.log" 2>&1 ||
      { tail -5 "$WORK/auto-$backend.log"; return 1; }
  done
  "$PY" - "$WORK" "$ALLOW_CPU" <<'PY'
import json, sys
work, allow_cpu = sys.argv[1], sys.argv[2] == "1"
devices = {b: json.load(open(f"{work}/auto-{b}/run.json"))["device"] for b in ("torch", "mlx")}
print(json.dumps(devices))
on_gpu = devices["torch"].startswith("cuda") and devices["mlx"].startswith("gpu")
sys.exit(0 if on_gpu or allow_cpu else 1)
PY
}

step_resume_across_backends() {  # MLX --device gpu -> torch resumes (no --device), and back
  myllm train --backend mlx --data "$DATA" --checkpoint-dir "$WORK/x-mlx" "${TINY[@]}" \
    --max-steps 20 --device "$GPU" > "$WORK/x1.log" 2>&1 &&
    myllm convert "$WORK/x-mlx/checkpoint_last.safetensors" "$WORK/x-torch/checkpoint_last.pt" &&
    myllm train --backend torch --resume "$WORK/x-torch/checkpoint_last.pt" --max-steps 40 \
      > "$WORK/x2.log" 2>&1 &&
    myllm convert "$WORK/x-torch/checkpoint_last.pt" "$WORK/x-back/checkpoint_last.safetensors" &&
    myllm train --backend mlx --resume "$WORK/x-back/checkpoint_last.safetensors" \
      --max-steps 60 > "$WORK/x3.log" 2>&1 || { tail -5 "$WORK"/x*.log; return 1; }
  "$PY" - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
runs = {name: json.load(open(f"{work}/{name}/run.json")) for name in ("x-mlx", "x-torch", "x-back")}
print(json.dumps({name: {"device": info["device"], "stored": info["train_config"]["device"]}
                  for name, info in runs.items()}))
PY
}

step_rng_exactness() {  # dropout 0.1: 40 steps straight vs resumed from its step-20 checkpoint
  # A text whose epoch is 20 steps: checkpoint_epoch_1 is then the state after step 20.
  "$PY" - "$DATA" "$WORK/rng.txt" <<'PY' || return 1
import sys
import math
text = open(sys.argv[1], encoding="utf-8").read()
for length in range(400, 800):
    train_windows = int(length * (1 - 0.3)) - 64  # the sampler's windows at block 64, split 0.3
    if math.ceil(train_windows / 16) == 20:  # batch 16
        open(sys.argv[2], "w", encoding="utf-8").write(text[:length])
        break
else:
    sys.exit("no text length gives a 20-step epoch")
PY
  for backend in torch mlx; do
    local suffix=.pt; [ "$backend" = mlx ] && suffix=.safetensors
    myllm train --backend "$backend" --data "$WORK/rng.txt" --val-split 0.3 \
      --checkpoint-dir "$WORK/rng-$backend-a" "${TINY[@]}" --dropout 0.1 --max-steps 40 \
      --log-interval 1 --device "$GPU" > "$WORK/rng.log" 2>&1 &&
      myllm train --backend "$backend" --resume "$WORK/rng-$backend-a/checkpoint_epoch_1$suffix" \
        --checkpoint-dir "$WORK/rng-$backend-b" --max-steps 40 >> "$WORK/rng.log" 2>&1 ||
      { tail -5 "$WORK/rng.log"; return 1; }
  done
  "$PY" - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
def losses(run):
    lines = open(f"{work}/{run}/metrics.jsonl").read().splitlines()
    return {r["step"]: r["train_loss"] for r in map(json.loads, lines) if "lr" in r}
figures = {}
for backend in ("torch", "mlx"):
    straight, resumed = losses(f"rng-{backend}-a"), losses(f"rng-{backend}-b")
    steps = sorted(s for s in resumed if s > 20)
    assert steps == list(range(21, 41)), steps
    gap = max(abs(straight[s] - resumed[s]) for s in steps)
    figures[backend] = {"bit_exact": all(straight[s] == resumed[s] for s in steps),
                        "max_abs_loss_diff": gap}
print(json.dumps(figures))
PY
}

step_tokens_per_second() {  # the logged rate vs the run's own clock (tokens seen / elapsed)
  for backend in torch mlx; do
    myllm train --backend "$backend" --data "$DATA" --checkpoint-dir "$WORK/speed-$backend" \
      --max-steps 200 --log-interval 20 --eval-interval 1000 --eval-iters 1 --dropout 0 \
      ${GPU_CHECK_SPEED_ARGS:-} --device "$GPU" > "$WORK/speed-$backend.log" 2>&1 ||
      { tail -5 "$WORK/speed-$backend.log"; return 1; }
  done
  "$PY" - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
figures = {}
for backend in ("torch", "mlx"):
    lines = open(f"{work}/speed-{backend}/metrics.jsonl").read().splitlines()
    logs = [r for r in map(json.loads, lines) if "lr" in r and r["tokens_per_second"]]
    window = logs[-1]["tokens_seen"] - logs[0]["tokens_seen"]
    timed = window / (logs[-1]["elapsed_s"] - logs[0]["elapsed_s"])  # windows 2.. (no warm-up)
    logged = window / sum(
        (b["tokens_seen"] - a["tokens_seen"]) / b["tokens_per_second"]
        for a, b in zip(logs, logs[1:])
    )
    figures[backend] = {"logged_tokens_per_s": logged, "timed_tokens_per_s": timed,
                        "logged_over_timed": logged / timed}
print(json.dumps(figures))
PY
}

step_bench_default() {  # both backends, the default model, on the GPU, float32 and bfloat16
  myllm bench --config default --device "$GPU" --dtype float32,bfloat16 \
    --json "$WORK/bench.json" > "$WORK/bench.log" 2>&1 ||
    { tail -5 "$WORK/bench.log"; return 1; }
  "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps(r))" \
    "$WORK/bench.json"
}

step_quality_bf16() {  # the 2,000-step nanoGPT-budget run, torch at bfloat16: val <= 1.92
  myllm train --backend torch --config configs/nanogpt-cpu.toml --data "$DATA" --device "$GPU" \
    --dtype bfloat16 --checkpoint-dir "$WORK/quality-bf16" > "$WORK/quality.log" 2>&1 ||
    { tail -5 "$WORK/quality.log"; return 1; }
  "$PY" - "$WORK/quality-bf16/metrics.jsonl" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
val = [r for r in records if "val_loss" in r]
print(json.dumps({"steps": val[-1]["step"], "val_loss": val[-1]["val_loss"],
                  "ok": val[-1]["val_loss"] <= 1.92}))
PY
}

# --- run them ---

failed=0
for name in "${STEPS[@]}"; do
  if [ "$name" != install ] && [ ! -f "$DATA" ]; then  # the steps train on Tiny Shakespeare
    "$PY" -m myllm data fetch tinyshakespeare --dest "$WORK" > /dev/null 2>&1 &&
      mv "$WORK/tinyshakespeare.txt" "$DATA"
  fi
  echo "== $name" >&2
  start=$(date +%s%N)
  output=$("step_$name" 2>&1)
  status=$?
  milliseconds=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "$output" | tail -3 | cut -c1-300 >&2
  if [ "$status" = 0 ]; then record "$name" ok "$milliseconds" "$output"
  else record "$name" failed "$milliseconds" "$output"; failed=1; fi
done

mkdir -p "$(dirname "$RESULT")"
"$PY" - "$WORK/steps.jsonl" "$RESULT" "$ALLOW_CPU" <<'PY'
import json, platform, sys
steps = [json.loads(line) for line in open(sys.argv[1])]
report = {"machine": platform.node(), "allow_cpu": sys.argv[3] == "1", "steps": steps}
json.dump(report, open(sys.argv[2], "w"), indent=1)
PY
echo "Wrote $RESULT (work files in $WORK)" >&2
exit $failed
