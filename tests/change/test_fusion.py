"""S1 + S2 change fusion on a PLANTED change in real co-registered BigEarthNet patches.

Place: patch 29UPU_36_85 (its S1 GRD and S2 L2A patches share one 10 m grid). Date 2 of
both sensors is date 1 with the same 60 x 60 px block pasted from patch 29UPU_4_55 (S1
from its S1 patch, S2 from its S2 patch, every band at its native resolution): the same
planted land-cover change seen by both sensors. The S2 date 2 also gets a thick cloud
(every band 0.6 reflectance) over the top half of the block, which the optical pair must
mask and the radar pair sees through. No real labelled S1/S2 change pair exists here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eominer.change.run import detect_change

BLOCK = (slice(30, 90), slice(30, 90))  # 10 m pixels; multiples of 6 for the 60 m bands
CLOUD = (slice(30, 60), slice(30, 120))


def _copy_with(src: Path, dst: Path, other: Path | None, cloud: bool) -> Path:
    """Copy a BigEarthNet patch folder band by band; paste `other`'s BLOCK (and a cloud)."""
    import rasterio

    dst.mkdir(parents=True)
    for tif in sorted(src.glob("*.tif")):
        with rasterio.open(tif) as ds:
            data, profile = ds.read(1), ds.profile
            f = 10.0 / ds.res[0]

        def at(s: tuple[slice, slice], f: float = f) -> tuple[slice, ...]:
            return tuple(slice(int(x.start * f), int(x.stop * f)) for x in s)

        if other is not None:
            band = tif.name.rsplit("_", 1)[1]
            (twin,) = other.glob(f"*_{band}")
            with rasterio.open(twin) as ds:
                data[at(BLOCK)] = ds.read(1)[at(BLOCK)]
        if cloud:
            data[at(CLOUD)] = 6000
        with rasterio.open(dst / tif.name, "w", **profile) as out:
            out.write(data, 1)
    for meta in src.glob("*.json"):
        (dst / meta.name).write_text(meta.read_text())
    return dst


@pytest.fixture(scope="module")
def four(ben, tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion")
    (s1a,) = (ben / "s1-tiny").glob("*_36_85")
    (s1o,) = (ben / "s1-tiny").glob("*_4_55")
    (s2a,) = (ben / "s2-tiny").glob("*_36_85")
    (s2o,) = (ben / "s2-tiny").glob("*_4_55")
    s1b = _copy_with(s1a, root / "s1_date2" / s1a.name, s1o, cloud=False)
    s2b = _copy_with(s2a, root / "s2_date2" / s2a.name, s2o, cloud=True)
    truth = np.zeros((120, 120), dtype=bool)
    truth[BLOCK] = True
    return str(s1a), str(s1b), str(s2a), str(s2b), truth, root


def f1(binary: np.ndarray, truth: np.ndarray) -> float:
    pred = binary == 1  # nodata (255) counts as "no change": masking is not free
    tp = np.count_nonzero(pred & truth)
    return 2 * tp / (2 * tp + np.count_nonzero(pred & ~truth) + np.count_nonzero(~pred & truth))


def test_fused_map_is_better_than_either_sensor_alone(four, workspace) -> None:
    import rasterio

    s1a, s1b, s2a, s2b, truth, root = four
    runs = {
        "s1 rom": detect_change(s1a, s1b, None, root / "s1.tif"),
        "s2 cva": detect_change(s2a, s2b, "cva", root / "s2.tif"),
        "fused": detect_change(s2a, s2b, "cva", root / "fused.tif", fuse=(s1a, s1b)),
    }
    scores = {}
    for name, run in runs.items():
        with rasterio.open(run.binary_path) as ds:
            scores[name] = f1(ds.read(1), truth)
    print("planted S1+S2 change, F1:", {k: round(v, 3) for k, v in scores.items()})
    assert runs["s1 rom"].method == "rom" and runs["s1 rom"].sensor == "S1"
    fused = runs["fused"]
    assert fused.method == "fusion" and fused.sensor == "S1+S2"
    assert fused.extra["s1_method"] == "rom" and fused.extra["s2_method"] == "cva"
    assert fused.cloud_fraction == pytest.approx(30 * 90 / 120**2, abs=0.01)
    # measured: S1 rom 0.945, S2 cva 0.496 (half the block under cloud), fused 0.953
    assert scores["fused"] >= 0.9
    assert scores["fused"] > scores["s2 cva"] + 0.3
    assert scores["fused"] >= scores["s1 rom"] - 0.01
    # the radar fills the optical pair's cloud: the fused map has data there
    with rasterio.open(fused.probability_path) as ds:
        p = ds.read(1)
    assert np.isfinite(p[CLOUD]).all()


def test_either_pair_may_come_first(four, workspace) -> None:
    s1a, s1b, s2a, s2b, truth, root = four
    import rasterio

    a = detect_change(s1a, s1b, "cva", root / "x.tif", fuse=(s2a, s2b), s1_method="logratio")
    assert a.method == "fusion"
    assert (a.extra["s2_method"], a.extra["s1_method"]) == ("cva", "logratio")
    assert a.extra["s1_first"] == s1a  # the S1 pair is recorded as such
    with rasterio.open(a.probability_path) as ds, rasterio.open(next(
            Path(s2a).glob("*_B02.tif"))) as s2:
        assert ds.transform == s2.transform and ds.crs == s2.crs
