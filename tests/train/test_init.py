"""myllm/train/init.py: the initial weights both backends load, drawn once in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from myllm.checkpoint.state import parameter_shapes
from myllm.train.init import initial_weights
from tests.helpers import BACKENDS, tiny_model_config


def test_init_statistics_follow_the_reference():
    config = tiny_model_config(d_model=64)
    weights, biases = [], []
    for name, values in initial_weights(config, seed=0).items():
        assert values.dtype == np.float32 and values.shape == parameter_shapes(config)[name]
        if ".ln" in f".{name}":
            expected = 1.0 if name.endswith("weight") else 0.0
            assert np.all(values == expected), name
        elif name.endswith("bias"):
            biases.append(values)
        else:
            weights.append(values.ravel())
    weights = np.concatenate(weights)
    assert abs(weights.mean()) < 1e-3
    assert abs(weights.std() - 0.02) < 0.001  # N(0, 0.02) over ~100k draws
    assert all(np.all(b == 0.0) for b in biases)


def test_the_seed_decides_the_weights():
    config = tiny_model_config()
    first, again, other = (initial_weights(config, seed) for seed in (3, 3, 4))
    name = "blocks.0.attention.W_q.weight"
    assert np.array_equal(first[name], again[name])
    assert not np.array_equal(first[name], other[name])


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_each_trainer_starts_from_the_initial_weights_bit_for_bit(backend_name):
    from myllm.backend.registry import load_backend
    from myllm.config.settings import TrainConfig

    config = tiny_model_config()
    trainer = load_backend(backend_name).Trainer(config, TrainConfig(seed=11, device="cpu"))
    expected = initial_weights(config, seed=11)
    for name, values in trainer.checkpoint().weights.items():
        np.testing.assert_array_equal(values, expected[name], strict=True)  # float32, exact
