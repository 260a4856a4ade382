"""Fixtures for the learning tests: real OSCD Bordeaux features (16 px patches) in memory.
The real OSCD store (`oscd_db`, `learn_store`) is in tests/conftest.py: the CLI tests use it too."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.evaluation.oscd import OSCD_CHANGE_SHARE, oscd_city
from eominer.learning.engine import SessionData


@pytest.fixture(scope="module")
def bordeaux(shared_data):
    X, share = oscd_city(shared_data, "bordeaux", 16)
    y = np.where(share > OSCD_CHANGE_SHARE, 1, -1).astype(np.int8)
    data = SessionData(np.arange(len(X)) + 1000, X)
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.choice(np.flatnonzero(y == 1), 15, replace=False),
                           rng.choice(np.flatnonzero(y == -1), 60, replace=False)])
    return data, y, rows
