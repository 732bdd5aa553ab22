"""The learning-rate schedule both backends step once per batch.

Linear warm-up over `warmup_steps`, then the reference's CosineAnnealingLR(T_max, eta_min) over the
remaining steps. With warmup_steps = 0 this is exactly torch's closed form for the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from myllm.config.settings import TrainConfig


@dataclass(frozen=True)
class CosineSchedule:
    """lr(step) for step = 0, 1, ...: warm-up, then cosine from base_lr down to min_lr."""

    base_lr: float
    total_steps: int
    warmup_steps: int = TrainConfig.warmup_steps
    min_lr_ratio: float = TrainConfig.min_lr_ratio

    @property
    def min_lr(self) -> float:
        return self.base_lr * self.min_lr_ratio

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        cosine_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(step - self.warmup_steps, cosine_steps) / cosine_steps
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2
