"""Real bands for descriptor tests, read straight from the shared data (no ingest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eominer.sensors import S2_REFLECTANCE_SCALE


def read_band(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.fixture(scope="session")
def bordeaux(shared_data: Path) -> dict[str, np.ndarray]:
    """Bordeaux 2016 10 m bands as float32 reflectance (517 x 461 px)."""
    folder = shared_data / "oscd" / "images" / "bordeaux" / "imgs_1"
    out = {}
    for band in ("B02", "B03", "B04", "B08"):
        (path,) = folder.glob(f"*_{band}.tif")
        out[band] = read_band(path).astype(np.float32) / np.float32(S2_REFLECTANCE_SCALE)
    return out


@pytest.fixture(scope="session")
def s1_patch(shared_data: Path) -> np.ndarray:
    """(2, 120, 120) VV, VH backscatter in dB from BigEarthNet S1."""
    folder = sorted((shared_data / "bigearthnet" / "s1-tiny").iterdir())[0]
    return np.stack([read_band(next(folder.glob(f"*_{p}.tif"))).astype(np.float32)
                     for p in ("VV", "VH")])


def _grid_windows(rows: int, cols: int, sizes=(32, 64)) -> np.ndarray:
    out = []
    for s in sizes:
        yy, xx = np.meshgrid(np.arange(rows // s) * s, np.arange(cols // s) * s, indexing="ij")
        out.append(np.stack([yy.ravel(), xx.ravel(), np.full(yy.size, s), np.full(yy.size, s)],
                            axis=1))
    return np.concatenate(out).astype(np.int64)


@pytest.fixture(scope="session")
def grid_windows():
    """grid_windows(rows, cols, sizes): windows of whole patches of each level, cut as
    the catalogue cuts them ([y_off, x_off, size, size])."""
    return _grid_windows


@pytest.fixture(scope="module")
def patches(shared_data):
    from eominer.evaluation import bigearthnet

    d = bigearthnet.load(shared_data / "bigearthnet")
    return np.stack([p.s2 for p in d.patches[:6]]), np.stack([p.s1 for p in d.patches[:6]])
