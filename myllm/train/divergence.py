"""When a run has diverged: a loss, gradient norm or weight that is not finite, or a loss that
exploded.

A model starts near the loss of a uniform guess, ln(vocab_size) nats, and training lowers it. A
loss ten times that (e.g. 41.7 for a vocabulary of 65) is a run blown up by its settings
(`--weight-decay 1e6` reaches 1.4e9 while every value stays finite): it stops like a NaN does,
before the ruined weights are saved, and the checkpoints on disk stay as they are.
"""

from __future__ import annotations

import math

from myllm.config.settings import TrainConfig
from myllm.errors import UserError
from myllm.run.files import RunFiles

EXPLOSION_FACTOR = 10  # times ln(vocab_size), the loss of a uniform guess


def loss_ceiling(vocab_size: int) -> float:
    """The loss above which a run has diverged (a vocabulary of one counts as two)."""
    return EXPLOSION_FACTOR * math.log(max(vocab_size, 2))


def divergence(loss: float, grad_norm: float, ceiling: float) -> str | None:
    """What is wrong with a step's loss and gradient norm, or None when training may go on."""
    if not (math.isfinite(loss) and math.isfinite(grad_norm)):
        return f"loss {loss}, gradient norm {grad_norm}"
    if loss > ceiling:
        return f"loss {loss:.4g}, above {ceiling:.1f} = {EXPLOSION_FACTOR} x ln(vocab_size)"
    return None


def diverged(files: RunFiles, config: TrainConfig, step: int, what: str) -> UserError:
    """The one-line error that stops a diverged run (exit 1), naming the checkpoint kept."""
    latest = files.latest_checkpoint()
    kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint written"
    return UserError(
        f"training diverged at step {step} ({what}); {kept}; lower the learning rate "
        f"(now --lr {config.lr}) or the weight decay (now --weight-decay {config.weight_decay})",
        exit_code=1,
    )
