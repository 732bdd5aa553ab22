# Set-up and the two commands of the README: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU machines get the pinned CPU build of torch: a looser spec may pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# Machines without internet read the corpora from the shared mirror when it is there.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/SOURCES.md),)
export MYLLM_DATA_MIRROR ?= $(SHARED_DATA)
endif

.PHONY: install train test lint bench clean

install: $(VENV)/.installed

# The distribution was named myllm until it became myllm-twin: an old editable install is dropped.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	-$(BIN)/python -m pip uninstall -q -y myllm 2>/dev/null
	$(BIN)/python -m pip install -q -e ".[torch,mlx,interop,dev]"
	touch $@

# A short real training run of a small model on Tiny Shakespeare, then a sample from it:
# configs/nanogpt-cpu.toml's model, shortened (flags override the file); a rerun replaces it.
train: install
	$(BIN)/myllm train --config configs/nanogpt-cpu.toml --backend torch \
		--checkpoint-dir checkpoints/make-train --overwrite \
		--max-steps 1500 --eval-interval 500 --eval-iters 50 --batch-size 16
	$(BIN)/myllm generate --checkpoint checkpoints/make-train/best_model.pt \
		--prompt "ROMEO:" --max-new-tokens 300 --temperature 0.8 --seed 0

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/myllm bench --json benchmarks/results/bench-$(shell hostname)-$(shell date +%Y%m%d).json

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
