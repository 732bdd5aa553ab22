"""The registry's checkpoint suffix table is each backend's own Backend.checkpoint_suffix."""

import pytest

from myllm.backend.registry import CHECKPOINT_SUFFIXES, checkpoint_suffix, load_backend
from tests.helpers import BACKENDS


@pytest.mark.parametrize("name", BACKENDS)
def test_the_suffix_table_is_each_backends_own(name):
    suffix = load_backend(name).checkpoint_suffix
    assert checkpoint_suffix(name) == suffix and CHECKPOINT_SUFFIXES[suffix] == name
