"""A Sentinel-1 GRD STAC Item in stactools' layout (Planetary Computer's `sentinel-1-grd`):
the SAFE's measurements in radar geometry and its annotation, calibration, noise and
manifest files as assets. eominer calibrates and geocodes it like the SAFE itself.

The SAFE is test_s1_safe's: the real S1A IW GRDH metadata of the shared zip, cropped to
one tie-point cell, with measurements of real backscatter written as DN. The items here
are written the way stactools writes them (asset keys `vv`, `schema-product-vv`,
`schema-calibration-vv`, `schema-noise-vv`, `safe-manifest`); over http they are served
by a loopback server, nothing else is contacted."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import pytest

from eominer.errors import GridMismatchError, ProductReadError, UnsupportedFormatError
from eominer.ingest import ingest_paths
from eominer.io.ard import read_ard
from eominer.io.discover import discover
from eominer.store import open_store
from tests.cli.process import run
from tests.io.test_s1_safe import NAME, make_safe, snapshot
from tests.io.test_stac import serving


@pytest.fixture(scope="module")
def safe(tmp_path_factory, shared_data: Path) -> Path:
    return make_safe(tmp_path_factory.mktemp("s1item"), shared_data, shared_data / "bigearthnet")


@pytest.fixture(scope="module")
def safe_ard(tmp_path_factory, safe: Path) -> tuple[dict, np.ndarray]:
    """The SAFE ingested in a workspace of its own: its product row and ARD."""
    home = tmp_path_factory.mktemp("safe_ws")
    with open_store(f"duckdb:///{home / 'db.duckdb'}") as s:
        mp = pytest.MonkeyPatch()
        mp.setenv("EOMINER_HOME", str(home))
        try:
            (r,) = ingest_paths(s, [safe])
        finally:
            mp.undo()
        p = s.product(NAME)
        facts = {"platform": p.platform, "orbit": p.relative_orbit, "pass": p.orbit_direction,
                 "acquired": p.acquired, "bands": list(p.bands), "crs": p.crs,
                 "transform": p.transform, "size": (p.width, p.height), "patches": r.patches}
        return facts, read_ard(r.ard_path)


def stactools_assets(safe: Path, base: str) -> dict[str, str]:
    """The hrefs stactools gives a GRD item's assets, under `base` (a folder or URL that
    holds the SAFE)."""
    root = f"{base}/{safe.name}"
    hrefs = {"safe-manifest": f"{root}/manifest.safe"}
    for ann in sorted((safe / "annotation").glob("*.xml")):
        pol = ann.stem.split("-")[3]
        hrefs[f"schema-product-{pol}"] = f"{root}/annotation/{ann.name}"
        hrefs[f"schema-calibration-{pol}"] = f"{root}/annotation/calibration/calibration-{ann.name}"
        hrefs[f"schema-noise-{pol}"] = f"{root}/annotation/calibration/noise-{ann.name}"
        hrefs[pol] = f"{root}/measurement/{ann.stem}.tiff"
    return hrefs


def grd_item(path: Path, hrefs: dict[str, str], item_id: str = NAME[:-5], **props) -> Path:
    """A GRD item as stactools writes it (Planetary Computer ids drop the SAFE's CRC)."""
    properties = {"platform": "SENTINEL-1A", "constellation": "sentinel-1",
                  "sar:instrument_mode": "IW", "sar:polarizations": ["VV", "VH"],
                  "sar:product_type": "GRD", "sat:orbit_state": "descending",
                  "sat:relative_orbit": 79, "start_datetime": "2021-01-19T03:16:53.496513Z",
                  "end_datetime": "2021-01-19T03:17:18.495227Z", **props}
    item = pystac.Item(item_id, geometry=None, bbox=None,
                       datetime=dt.datetime(2021, 1, 19, 3, 17, 5, tzinfo=dt.UTC),
                       properties=properties)
    for key, href in hrefs.items():
        media = "image/tiff; application=geotiff" if key in ("vv", "vh") else "application/xml"
        item.add_asset(key, pystac.Asset(href, media_type=media,
                                         roles=["data" if key in ("vv", "vh") else "metadata"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    item.save_object(dest_href=str(path), include_self_link=False)
    return path


def ingested(store, item: Path) -> tuple[dict, np.ndarray]:
    (r,) = ingest_paths(store, [item])
    assert r.status == "ingested", r
    p = store.product(r.product_id)
    facts = {"platform": p.platform, "orbit": p.relative_orbit, "pass": p.orbit_direction,
             "acquired": p.acquired, "bands": list(p.bands), "crs": p.crs,
             "transform": p.transform, "size": (p.width, p.height), "patches": r.patches}
    return facts, read_ard(r.ard_path)


def test_a_grd_item_ingests_like_its_safe(store, workspace, safe: Path, safe_ard, tmp_path: Path):
    """Relative hrefs, as an item saved next to its SAFE has them: the same calibrated,
    denoised, geocoded dB as the SAFE's own ingest, pixel for pixel, and the same facts."""
    item = grd_item(safe.parent / "items" / "grd.json", stactools_assets(safe, ".."))
    (p,) = discover(item)
    assert p.extra["format"] == "S1_SAFE" and p.extra["ipf"] == "003.31"  # the manifest's
    assert p.product_id == NAME[:-5] and list(p.bands) == ["VV", "VH"]
    facts, ard = ingested(store, item)
    want, want_ard = safe_ard
    assert facts == want and facts["orbit"] == 79 and facts["pass"] == "DESCENDING"
    assert facts["acquired"] == dt.datetime(2021, 1, 19, 3, 16, 53)
    np.testing.assert_array_equal(ard, want_ard)
    assert np.isfinite(ard[0]).mean() > 0.5 and -40 <= np.nanmin(ard) < np.nanmax(ard) < 10


def test_an_item_without_its_manifest_takes_its_facts_from_its_properties(
        store, workspace, safe: Path, safe_ard, tmp_path: Path):
    hrefs = stactools_assets(safe, str(safe.parent))
    del hrefs["safe-manifest"]
    facts, ard = ingested(store, grd_item(tmp_path / "grd.json", hrefs))
    assert facts == safe_ard[0]
    np.testing.assert_array_equal(ard, safe_ard[1])


def test_a_safe_and_its_item_in_one_workspace_are_one_product(store, workspace, safe: Path,
                                                               tmp_path: Path):
    """Planetary Computer's id drops the SAFE's CRC, so the two names differ; the same
    platform and start (and so the same slice and grid) make them one scene, either way
    round: the second is reported as the first, nothing is written twice."""
    item = grd_item(tmp_path / "grd.json", stactools_assets(safe, str(safe.parent)))
    (a,) = ingest_paths(store, [safe])
    before = snapshot(store, workspace)
    (b,) = ingest_paths(store, [item])
    assert (b.status, b.product_id, b.same_scene_as) == ("already ingested", NAME, NAME[:-5])
    assert (b.patches, b.ard_path) == (a.patches, a.ard_path)
    assert snapshot(store, workspace) == before == (1, a.patches, [f"{NAME}.tif"])
    store.execute("DELETE FROM patches")
    store.execute("DELETE FROM products")
    (c,) = ingest_paths(store, [item])
    (d,) = ingest_paths(store, [safe])
    assert (c.status, d.status, d.product_id, d.same_scene_as) == (
        "ingested", "already ingested", NAME[:-5], NAME)
    # what the item says of itself, without its manifest: another start is another slice
    hrefs = stactools_assets(safe, str(safe.parent))
    del hrefs["safe-manifest"]
    later = grd_item(tmp_path / "later.json", hrefs, item_id="later",
                     start_datetime="2021-01-19T03:17:18.495227Z")
    (e,) = ingest_paths(store, [later])
    assert (e.status, e.product_id, e.same_scene_as) == ("ingested", "later", None)


def test_one_command_with_a_safe_and_its_item_ingests_it_once(safe: Path, tmp_path: Path):
    """`eominer ingest SAFE ITEM`, a real process through the ingest job: the item waits
    for its twin's commit, then is reported as it."""
    item = grd_item(tmp_path / "grd.json", stactools_assets(safe, str(safe.parent)))
    home = tmp_path / "ws"
    r = run(["ingest", str(safe), str(item), "--workers", "0"], home)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith(NAME[:-5])]
    assert len(lines) == 2 and NAME in lines[0] and "already ingested" not in lines[0]
    assert lines[1].startswith(NAME + " ") and lines[1].endswith(
        f"(already ingested: {NAME[:-5]} is the same scene, same platform, start and "
        "extent; nothing changed)")
    with open_store(f"duckdb:///{home / 'eominer.duckdb'}") as s:
        assert [p.product_id for p in s.product_list()] == [NAME]


@pytest.fixture
def safe_server(safe: Path, gdal_loopback_only):
    """The SAFE's folder on 127.0.0.1, answering range requests (GDAL's /vsicurl/)."""
    with serving(safe.parent) as served:
        yield served


def test_a_remote_item_ingests_like_its_safe(store, workspace, safe: Path, safe_ard,
                                            safe_server, tmp_path: Path):
    """http(s) hrefs: the XML files are fetched, the measurements read by range requests."""
    base, log = safe_server
    facts, ard = ingested(store, grd_item(tmp_path / "grd.json", stactools_assets(safe, base)))
    assert facts == safe_ard[0]
    np.testing.assert_array_equal(ard, safe_ard[1])
    fetched = {line.split()[1].rsplit("/", 1)[1] for line in log if line.startswith("GET")}
    assert "manifest.safe" in fetched and sum(f.startswith("noise-") for f in fetched) == 2
    assert any(line.startswith("GET") and ".tiff" in line and "bytes=" in line for line in log)


def test_an_expired_url_names_itself(store, workspace, safe: Path, safe_server, tmp_path: Path):
    base, _ = safe_server
    hrefs = stactools_assets(safe, base)
    gone = hrefs["schema-calibration-vh"].replace("/annotation/", "/gone/")
    hrefs["schema-calibration-vh"] = gone + "?se=2021-01-20&sig=SECRET"  # a signed URL
    with pytest.raises(ProductReadError, match=r"cannot read http://127\.0\.0\.1:\d+/.*/gone/"
                       r"calibration/calibration-s1a-iw-grd-vh-[^ ]*\.xml\?\.\.\.: HTTP Error "
                       r"404.*has not expired") as err:
        ingest_paths(store, [grd_item(tmp_path / "grd.json", hrefs)])
    assert "SECRET" not in str(err.value)  # the token stays out of logs
    assert snapshot(store, workspace) == (0, 0, [])


def test_an_item_missing_a_noise_asset_is_refused(store, workspace, safe: Path, tmp_path: Path):
    hrefs = stactools_assets(safe, str(safe.parent))
    del hrefs["schema-noise-vh"]
    with pytest.raises(ProductReadError, match=r"STAC item .*grd\.json has no asset "
                       r"'schema-noise-vh': its thermal noise LUTs are taken off VH; save the "
                       r"item with all its assets"):
        ingest_paths(store, [grd_item(tmp_path / "grd.json", hrefs)])
    assert snapshot(store, workspace) == (0, 0, [])


@pytest.mark.parametrize("props, error, message", [
    ({"sar:polarizations": ["HH", "HV"]}, UnsupportedFormatError,
     r"polarisation\(s\) HH, HV: .*needs VV and VH"),
    ({"sar:product_type": "SLC"}, UnsupportedFormatError,
     r"is a Sentinel-1 IW SLC product: eominer ingests GRD products"),
])
def test_what_the_item_says_it_is_is_checked(store, workspace, safe: Path, tmp_path: Path,
                                             props, error, message):
    hrefs = stactools_assets(safe, str(safe.parent))
    del hrefs["safe-manifest"]
    with pytest.raises(error, match=message):
        ingest_paths(store, [grd_item(tmp_path / "grd.json", hrefs, **props)])
    assert snapshot(store, workspace) == (0, 0, [])


def test_measurements_alone_say_what_is_missing(store, workspace, safe: Path, tmp_path: Path):
    """An item with only the `vv`/`vh` measurements (radar geometry, tie points as GCPs):
    before, "has no CRS"; now the error says what to ingest instead."""
    hrefs = {k: v for k, v in stactools_assets(safe, str(safe.parent)).items()
             if k in ("vv", "vh")}
    with pytest.raises(GridMismatchError, match=r"ground control points only, not on a map "
                       r"grid: it is a Sentinel-1 GRD measurement in radar geometry; ingest "
                       r"its SAFE .*schema-calibration"):
        ingest_paths(store, [grd_item(tmp_path / "grd.json", hrefs)])
    assert snapshot(store, workspace) == (0, 0, [])
