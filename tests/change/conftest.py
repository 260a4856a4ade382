"""Fixtures for the change tests: real OSCD pairs, cropped to keep the suite fast."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bordeaux_pair(oscd: Path):
    """Bordeaux, both dates on one grid (imgs_2 uses the compact file-name convention)."""
    from eominer.change.align import align_pair, scene_from_path

    base = oscd / "images" / "bordeaux"
    return align_pair(scene_from_path(base / "imgs_1"), scene_from_path(base / "imgs_2"))


@pytest.fixture(scope="module")
def crop(bordeaux_pair):
    """A 160 x 160 px corner of Bordeaux with a hole of 'no data' in it."""
    x1 = bordeaux_pair.x1[:, :160, :160].copy()
    x2 = bordeaux_pair.x2[:, :160, :160].copy()
    valid = bordeaux_pair.valid[:160, :160].copy()
    valid[10:30, 10:30] = False
    return x1, x2, valid
