"""Fixtures for the evaluation tests: the BigEarthNet folder and altered copies of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def ben(shared_data: Path) -> Path:
    return shared_data / "bigearthnet"


@pytest.fixture(scope="session")
def oscd_root(shared_data: Path) -> Path:
    return shared_data / "oscd"


S2_PAIRED = "S2A_MSIL2A_20170617T113321_36_85"
S1_PAIRED = "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_36_85"


def copy_pair(ben: Path, dest: Path, s1_transform=None, s2_labels=None) -> Path:
    """A v1 folder with one S2/S1 pair; `s1_transform(array, profile) -> (array, profile)`
    rewrites the S1 bands, `s2_labels` replaces the S2 labels."""
    import rasterio

    s2_dir, s1_dir = dest / "s2" / S2_PAIRED, dest / "s1" / S1_PAIRED
    shutil.copytree(ben / "s2-tiny" / S2_PAIRED, s2_dir)
    s1_dir.mkdir(parents=True)
    shutil.copy(ben / "s1-tiny" / S1_PAIRED / f"{S1_PAIRED}_labels_metadata.json", s1_dir)
    for pol in ("VV", "VH"):
        src = ben / "s1-tiny" / S1_PAIRED / f"{S1_PAIRED}_{pol}.tif"
        with rasterio.open(src) as ds:
            arr, profile = ds.read(1), ds.profile
        if s1_transform is not None:
            arr, profile = s1_transform(arr, profile)
        with rasterio.open(s1_dir / src.name, "w", **profile) as out:
            out.write(arr, 1)
    if s2_labels is not None:
        meta = s2_dir / f"{S2_PAIRED}_labels_metadata.json"
        info = json.loads(meta.read_text())
        info["labels"] = s2_labels
        meta.write_text(json.dumps(info))
    return dest


def to_linear(arr: np.ndarray, profile: dict):
    return np.power(10.0, arr / 10.0).astype(np.float32), profile


def crop_100(arr: np.ndarray, profile: dict):
    return arr[:100, :100], {**profile, "width": 100, "height": 100}


TRANSFORMS = {"linear": to_linear, "crop": crop_100, None: None}


@pytest.fixture
def pair_copy(ben: Path, tmp_path: Path):
    """make(s1=None|'linear'|'crop', s2_labels=None) -> a v1 folder with one altered pair."""

    def make(s1: str | None = None, s2_labels: list[str] | None = None) -> Path:
        return copy_pair(ben, tmp_path / "ben", TRANSFORMS[s1], s2_labels)

    return make


