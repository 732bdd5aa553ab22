"""How much of the validation split one evaluation reads.

The reference evaluates the whole split. That stays the default while the split is small: up to
FULL_PASS_MAX_WINDOWS windows, which keeps Tiny Shakespeare (111,412 windows at block 128) on the
full pass and bounds an evaluation at batch 64 to 2,048 forward batches, about 680 training steps'
compute (a forward pass is about a third of a training step). A larger split (a 100 MB corpus has
~10 million windows: a full pass would cost ~50,000 training steps) is read as a fixed seeded
sample of SAMPLED_EVAL_BATCHES batches (~85 training steps at any batch size), the same windows at
every evaluation so that evaluations stay comparable. --eval-iters always wins.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FULL_PASS_MAX_WINDOWS = 131_072
SAMPLED_EVAL_BATCHES = 256


@dataclass(frozen=True)
class EvaluationPlan:
    """eval_iters None: every validation window once; else that many seeded batches."""

    eval_iters: int | None
    batch_size: int
    split_windows: int
    reason: str

    @property
    def windows_per_evaluation(self) -> int:
        return self.split_windows if self.eval_iters is None else self.eval_iters * self.batch_size

    def describe(self) -> str:
        if self.eval_iters is None:
            return f"Validation: a full pass over the {self.split_windows:,} validation windows."
        return (
            f"Validation: a fixed seeded sample of {self.eval_iters} batches of {self.batch_size} "
            f"windows (of {self.split_windows:,}) at every evaluation ({self.reason})."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "mode": "full" if self.eval_iters is None else "sampled",
            "windows_per_evaluation": self.windows_per_evaluation,
        }


def plan_evaluation(
    num_val_tokens: int, block_size: int, batch_size: int, eval_iters: int | None
) -> EvaluationPlan:
    """The evaluation a run uses: --eval-iters if given, else full pass or seeded sample by size."""
    split_windows = num_val_tokens - block_size
    if eval_iters is not None:
        return EvaluationPlan(eval_iters, batch_size, split_windows, "--eval-iters")
    if split_windows <= FULL_PASS_MAX_WINDOWS:
        return EvaluationPlan(None, batch_size, split_windows, "small split")
    return EvaluationPlan(
        SAMPLED_EVAL_BATCHES,
        batch_size,
        split_windows,
        f"the split has more than {FULL_PASS_MAX_WINDOWS:,} windows; --eval-iters N to choose",
    )
