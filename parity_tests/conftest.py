"""Parity tests compare the torch reference and the MLX port on the same weights (DESIGN §8)."""

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "parity: torch vs MLX numerical agreement")


@pytest.fixture(scope="session")
def parity_report():
    """Worst differences measured, printed at the end of the session (`pytest -s` shows them)."""
    report: dict[str, float] = {}
    yield report
    for name, value in report.items():
        print(f"parity {name}: {value:.3g}")
