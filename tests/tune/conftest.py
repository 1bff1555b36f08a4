"""Fixtures of the tuner tests: quiet Optuna, in-memory studies."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
