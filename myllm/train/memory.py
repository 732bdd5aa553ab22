"""How much memory a training step needs, estimated before anything is allocated.

A batch too large for the machine otherwise ends in a torch traceback ("can't allocate memory") or,
with MLX, in the kernel's OOM killer with no message at all. The estimate counts float32 values:
the weights, their gradients and AdamW's two moments, plus the activations the backward pass keeps.
It leaves out temporaries and the framework's own overhead, so it errs low: a step it refuses
cannot fit, while a step it accepts may still be tight.

The limit it is checked against is the smallest of what bounds this process: the physical RAM,
the memory available now (MemAvailable: other programs' memory is not ours), a cgroup's limit
(a container's `memory.max` or `memory.limit_in_bytes`) and the address space RLIMIT_AS leaves
(`ulimit -v`, `prlimit --as`), whichever the system reports.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass
from pathlib import Path

from myllm.checkpoint.state import parameter_count
from myllm.config.settings import ModelConfig
from myllm.errors import UserError

BYTES_PER_FLOAT = 4  # float32 throughout
GIB = 1024**3


@dataclass
class StepMemory:
    """The estimate in bytes, in its parts."""

    parameters: int  # how many parameters the model has
    weights_and_optimizer: int  # weights, gradients, AdamW exp_avg and exp_avg_sq
    activations: int  # what the forward pass keeps for the backward pass

    @property
    def total(self) -> int:
        return self.weights_and_optimizer + self.activations


def activation_count(config: ModelConfig, batch_size: int, block_size: int) -> int:
    """Float values kept for the backward pass of one step on a [batch_size, block_size] batch.

    Per layer: the norms' inputs and outputs, q, k, v, the attention output and its projection,
    the residual sums and dropout masks (about 10 values per token and channel), the feed-forward
    hidden layer before and after its activation (2 * d_ff), and the attention scores and their
    softmax (2 * n_heads * block_size per token). Then the embeddings and the logits with their
    log-softmax and gradient (3 * vocab_size per token).
    """
    tokens = batch_size * block_size
    per_token_per_layer = 10 * config.d_model + 2 * config.d_ff + 2 * config.n_heads * block_size
    per_token = config.n_layers * per_token_per_layer + 2 * config.d_model + 3 * config.vocab_size
    return tokens * per_token


def estimate_step_memory(config: ModelConfig, batch_size: int, block_size: int) -> StepMemory:
    parameters = parameter_count(config)
    return StepMemory(
        parameters=parameters,
        weights_and_optimizer=4 * parameters * BYTES_PER_FLOAT,
        activations=activation_count(config, batch_size, block_size) * BYTES_PER_FLOAT,
    )


@dataclass(frozen=True)
class MemoryLimit:
    """The most memory this process can have, in bytes, and which limit says so."""

    bytes: int
    source: str  # e.g. "available (MemAvailable)"

    def describe(self) -> str:
        return f"{self.bytes / GIB:,.1f} GiB {self.source}"


def memory_limit(device: str = "cpu") -> MemoryLimit | None:
    """The smallest memory limit the system reports for this process (None: none known).

    On a CUDA device the work lives in the GPU's memory, which the core cannot see without the
    framework: not checked. Elsewhere (CPU, or Apple's unified memory) it is the host's.
    """
    if device.lower().startswith("cuda"):
        return None
    found = [
        MemoryLimit(value, source)
        for value, source in (
            (physical_memory(), "of physical memory"),
            (_meminfo_available(), "available (MemAvailable)"),
            (_cgroup_limit(), "allowed by the cgroup (memory.max / memory.limit_in_bytes)"),
            (_address_space_left(), "of address space left by RLIMIT_AS (ulimit -v)"),
        )
        if value is not None and value > 0
    ]
    return min(found, key=lambda limit: limit.bytes, default=None)


def physical_memory() -> int | None:
    """The machine's physical RAM in bytes, or None where the system does not say."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return total if total > 0 else None


def _meminfo_available() -> int | None:
    """/proc/meminfo's MemAvailable: what can be allocated now without swapping (Linux)."""
    return _proc_field(Path("/proc/meminfo"), "MemAvailable:")


def _address_space_left() -> int | None:
    """RLIMIT_AS less the address space this process already maps (VmSize)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    return soft - (_proc_field(Path("/proc/self/status"), "VmSize:") or 0)


def _proc_field(path: Path, name: str) -> int | None:
    """A "Name:  123 kB" line of a /proc file, in bytes."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(name) and line.split()[1:2]:
            return int(line.split()[1]) * 1024
    return None


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (v2 memory.max, v1 memory.limit_in_bytes)."""
    candidates = []
    try:
        entries = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        entries = []
    for entry in entries:
        _, controllers, path = entry.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            candidates.append(Path(f"/sys/fs/cgroup{path}") / "memory.max")
        elif "memory" in controllers.split(","):
            candidates.append(Path(f"/sys/fs/cgroup/memory{path}") / "memory.limit_in_bytes")
    candidates += [
        Path("/sys/fs/cgroup/memory.max"),
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    ]
    limits = [_read_limit(path) for path in candidates]
    return min((limit for limit in limits if limit is not None), default=None)


def _read_limit(path: Path) -> int | None:
    """A cgroup limit file's bytes; None for "max", an absent file or v1's "no limit" (2**63)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit() or int(text) >= 2**62:
        return None
    return int(text)


def check_step_fits(
    config: ModelConfig, batch_size: int, block_size: int, limit: MemoryLimit | None
) -> StepMemory:
    """Refuse, in one line with both figures, a step that needs more than the `limit`.

    `limit` None (unknown, or an accelerator whose memory the core cannot see) checks nothing.
    """
    estimate = estimate_step_memory(config, batch_size, block_size)
    if limit is None or estimate.total <= limit.bytes:
        return estimate
    needs = (
        f"a training step needs at least {estimate.total / GIB:,.1f} GiB "
        f"({estimate.activations / GIB:,.1f} GiB of activations for --batch-size {batch_size} x "
        f"--block-size {block_size}, {estimate.weights_and_optimizer / GIB:,.1f} GiB of weights "
        f"and AdamW state) but this process has {limit.describe()}"
    )
    largest = largest_batch_that_fits(config, block_size, limit.bytes)
    if largest == 0:
        raise UserError(
            f"{needs}: even one sequence does not fit; use a smaller model (--d-model, "
            "--n-layers, --preset) or a shorter --block-size, or free memory"
        )
    raise UserError(f"{needs}: lower --batch-size to at most {largest} or lower --block-size")


def largest_batch_that_fits(config: ModelConfig, block_size: int, limit: int) -> int:
    """The largest batch size whose step estimate stays within `limit` bytes (0 when none)."""
    fixed = estimate_step_memory(config, 0, block_size).total
    per_sample = activation_count(config, 1, block_size) * BYTES_PER_FLOAT
    return max(0, math.floor((limit - fixed) / per_sample))
