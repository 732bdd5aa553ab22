"""torch.optim.AdamW's param group as plain data: what every torch checkpoint dict carries.

myllm's own .pt format (myllm_torch/checkpoint_format.py) and nanoGPT's ckpt.pt
(myllm/interop/nanogpt.py) both write torch's optimizer state_dict layout, so that torch can load
it back with optimizer.load_state_dict; the layout needs no torch to build.
"""

from __future__ import annotations

from typing import Any

from myllm.config.settings import TrainConfig


def adamw_param_group(config: dict[str, Any], num_params: int) -> dict[str, Any]:
    """torch.optim.AdamW's param group for the reference's hyper-parameters."""
    defaults = TrainConfig()
    return {
        "lr": config.get("lr", defaults.lr),
        "betas": (config.get("beta1", defaults.beta1), config.get("beta2", defaults.beta2)),
        "eps": config.get("eps", defaults.eps),
        "weight_decay": config.get("weight_decay", defaults.weight_decay),
        "amsgrad": False,
        "maximize": False,
        "foreach": None,
        "capturable": False,
        "differentiable": False,
        "fused": None,
        "decoupled_weight_decay": True,
        "params": list(range(num_params)),
    }
