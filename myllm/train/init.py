"""The initial parameters of a run, drawn once in numpy so every backend starts from the same ones.

Each framework's own generator would give each backend its own start. Drawn here, from the seed,
under the canonical names, a torch run and an MLX run of one seed begin bit for bit equal. The
distributions are the reference's (nanoGPT's): Linear and Embedding weights N(0, 0.02), biases
zero, LayerNorm weights one and biases zero; no scaled init of the residual projections.
"""

from __future__ import annotations

import numpy as np

from myllm.checkpoint.state import parameter_shapes
from myllm.config.settings import ModelConfig

INIT_STREAM = 0x1A17  # the generator of the init is [seed, INIT_STREAM], apart from the sampler's
WEIGHT_STD = 0.02


def initial_weights(config: ModelConfig, seed: int) -> dict[str, np.ndarray]:
    """float32 weights for every canonical parameter name of `config`, drawn from `seed`."""
    rng = np.random.default_rng([seed, INIT_STREAM])
    weights = {}
    for name, shape in parameter_shapes(config).items():
        layer_norm = name.split(".")[-2].startswith("ln")  # ln1, ln2, ln_final
        if layer_norm and name.endswith("weight"):
            weights[name] = np.ones(shape, np.float32)
        elif name.endswith("bias"):
            weights[name] = np.zeros(shape, np.float32)
        else:
            weights[name] = rng.standard_normal(shape, dtype=np.float32) * np.float32(WEIGHT_STD)
    return weights
