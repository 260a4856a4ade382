"""eominer.io.s1_safe on a real Sentinel-1 GRD SAFE: the metadata of an S1A IW GRDH
product (manifest, annotation with its 210 tie points, calibration and noise LUTs) with
a measurement written here, since the shared zip has no imagery.

The measurement is a crop of the annotated image, lines 2023..4046 x pixels 7782..9079
(2024 x 1298: one tie-point cell, across the IW1/IW2 boundary at pixel 8742), so every
line/pixel index of the annotation, calibration and noise files is shifted by the crop
offset and the size set to the crop's. All 210 tie points are kept (most now fall
outside the crop): the crop is geocoded by the same spline as the full product. The DN
are real backscatter: BigEarthNet S1 patches in dB, taken back to DN through the
product's own LUTs."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.warp import transform as warp_transform

from eominer.errors import ProductReadError, UnsupportedFormatError
from eominer.grid import expected_patch_count
from eominer.ingest import ingest_paths
from eominer.io import s1_safe
from eominer.io.ard import read_ard
from eominer.io.discover import discover
from eominer.io.parts import plan_ard, stage_part, valid_mask, write_ard

NAME = "S1A_IW_GRDH_1SDV_20210119T031653_20210119T031718_036201_043ED0_8255"
LINE0, PIXEL0 = 2023, 7782  # tie-point line 2023, tie-point pixel 7782
LINES, SAMPLES = 2024, 1298  # up to tie-point line 4046 and pixel 9079 (inclusive)


def _shift(el: ET.Element, tag: str, off: int) -> None:
    for e in el.iter(tag):
        e.text = " ".join(str(int(v) - off) for v in (e.text or "").split())


def crop_xml(xml: bytes, line0: int, pixel0: int, lines: int, samples: int) -> bytes:
    """An annotation, calibration or noise file of the crop: indices shifted, size set."""
    root = ET.fromstring(xml)
    info = root.find("imageAnnotation/imageInformation")
    if info is not None:
        info.find("numberOfLines").text = str(lines)
        info.find("numberOfSamples").text = str(samples)
        for p in root.iter("geolocationGridPoint"):
            _shift(p, "line", line0)
            _shift(p, "pixel", pixel0)
    for tag in ("calibrationVector", "noiseRangeVector"):
        for v in root.iter(tag):
            _shift(v, "line", line0)
            _shift(v, "pixel", pixel0)
    for v in root.iter("noiseAzimuthVector"):
        for t in ("firstAzimuthLine", "lastAzimuthLine", "line"):
            _shift(v, t, line0)
        for t in ("firstRangeSample", "lastRangeSample"):
            _shift(v, t, pixel0)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def backscatter_db(ben: Path, pol: str, shape: tuple[int, int]) -> np.ndarray:
    """The six BigEarthNet S1 patches (dB) side by side, repeated to `shape`."""
    tiles = []
    for d in sorted((ben / "s1-tiny").iterdir()):
        with rasterio.open(next(d.glob(f"*_{pol}.tif"))) as ds:
            tiles.append(ds.read(1).astype(np.float32))
    mosaic = np.block([tiles[:3], tiles[3:]])
    reps = (-(-shape[0] // mosaic.shape[0]), -(-shape[1] // mosaic.shape[1]))
    return np.tile(mosaic, reps)[: shape[0], : shape[1]]


def to_dn(db: np.ndarray, cal: s1_safe.Vectors, noise: s1_safe.Noise,
          row_off: int = 0) -> np.ndarray:
    """DN whose calibrated, denoised sigma0 is `db` (image lines from `row_off`):
    DN^2 = sigma0 * A^2 + noise."""
    rows = np.arange(row_off, row_off + db.shape[0], dtype=float)
    cols = np.arange(db.shape[1], dtype=float)
    a = cal.window(rows, cols).astype(np.float64)
    power = 10 ** (db.astype(np.float64) / 10) * a * a + noise.window(rows, cols)
    return np.clip(np.rint(np.sqrt(power)), 1, 65535).astype(np.uint16)


def make_safe(root: Path, shared: Path, ben: Path, measurement_lines: int = LINES) -> Path:
    """The cropped SAFE folder under `root`, with VV and VH measurements of real dB."""
    with zipfile.ZipFile(shared / "s1_grd_metadata" / f"{NAME}.zip") as z:
        z.extractall(root)
    safe = root / f"{NAME}.SAFE"
    for f in sorted((safe / "annotation").rglob("*.xml")):
        f.write_bytes(crop_xml(f.read_bytes(), LINE0, PIXEL0, LINES, SAMPLES))
    for f in sorted((safe / "annotation").glob("*.xml")):
        stem, pol = f.stem, f.stem.split("-")[3].upper()
        cal = s1_safe.read_calibration((safe / f"annotation/calibration/calibration-{stem}.xml").read_bytes())
        noise = s1_safe.read_noise((safe / f"annotation/calibration/noise-{stem}.xml").read_bytes())
        dn = to_dn(backscatter_db(ben, pol, (LINES, SAMPLES)), cal, noise)[:measurement_lines]
        # like ESA's, the measurement carries the tie points as GCPs (eominer reads the
        # annotation's, not these)
        pts = ET.fromstring(f.read_bytes()).iter("geolocationGridPoint")
        gcps = [GroundControlPoint(row=float(p.findtext("line")), col=float(p.findtext("pixel")),
                                   x=float(p.findtext("longitude")), y=float(p.findtext("latitude")))
                for p in pts]
        with rasterio.open(safe / "measurement" / f"{stem}.tiff", "w", driver="GTiff",
                           width=SAMPLES, height=dn.shape[0], count=1, dtype="uint16",
                           gcps=gcps, crs="EPSG:4326") as out:
            out.write(dn, 1)
    return safe


def zip_safe(safe: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(safe.rglob("*")):
            if f.is_file():
                z.write(f, prefix + str(f.relative_to(safe.parent)))
    return dest


@pytest.fixture(scope="module")
def s1_safe_dir(tmp_path_factory, shared_data: Path) -> Path:
    return make_safe(tmp_path_factory.mktemp("s1safe"), shared_data, shared_data / "bigearthnet")


@pytest.fixture
def s1_copy(tmp_path: Path, s1_safe_dir: Path) -> Path:
    dst = tmp_path / "copy" / s1_safe_dir.name
    shutil.copytree(s1_safe_dir, dst)
    return dst


# ---- calibration and noise ------------------------------------------------------------------
def node_table(xml: str, vector: str, lut: str) -> list[tuple[int, list[int], list[float]]]:
    """(line, pixels, values) of each vector, read with a regular expression (not with the
    module's parser)."""
    out = []
    for body in re.findall(rf"<{vector}>(.*?)</{vector}>", xml, re.S):
        line = int(re.search(r"<line>(-?\d+)</line>", body).group(1))
        pixels = [int(v) for v in re.search(r"<pixel[^>]*>([^<]*)<", body).group(1).split()]
        values = [float(v) for v in re.search(rf"<{lut}[^>]*>([^<]*)<", body).group(1).split()]
        out.append((line, pixels, values))
    return out


def bilinear_by_hand(table, row: int, col: int) -> float:
    """The LUT at (row, col) from the 4 nodes around it."""
    k = max(i for i, (line, _, _) in enumerate(table) if line <= row)
    (l0, px, v0), (l1, _, v1) = table[k], table[k + 1]
    j = max(i for i, p in enumerate(px) if p <= col)
    p0, p1 = px[j], px[j + 1]
    assert l0 < row < l1 and p0 < col < p1  # between the nodes, not on one
    t, u = (col - p0) / (p1 - p0), (row - l0) / (l1 - l0)
    return (1 - u) * ((1 - t) * v0[j] + t * v0[j + 1]) + u * ((1 - t) * v1[j] + t * v1[j + 1])


def azimuth_by_hand(xml: str, row: int, col: int) -> float:
    for body in re.findall(r"<noiseAzimuthVector>(.*?)</noiseAzimuthVector>", xml, re.S):
        first, last = (int(re.search(rf"<{t}>(-?\d+)<", body).group(1))
                       for t in ("firstRangeSample", "lastRangeSample"))
        if first <= col <= last:
            lines = [int(v) for v in re.search(r"<line[^>]*>([^<]*)<", body).group(1).split()]
            lut = [float(v) for v in re.search(r"<noiseAzimuthLut[^>]*>([^<]*)<", body).group(1).split()]
            k = max(i for i, v in enumerate(lines) if v <= row)
            assert lines[k] < row < lines[k + 1]
            u = (row - lines[k]) / (lines[k + 1] - lines[k])
            return (1 - u) * lut[k] + u * lut[k + 1]
    raise AssertionError(f"no azimuth block holds pixel {col}")


# (row, col) in the crop, between LUT nodes: two in IW1, one in IW2 (its pixel 8882 > 8742)
PIXELS = ((100, 250), (1700, 555), (1000, 1100))
# sigma0 (dB) of the VV DN written by make_safe at PIXELS, computed by hand from the LUT nodes
# (the figure the module must give back to 1e-3 dB; see test_calibration_by_hand)


def test_calibration_by_hand(s1_safe_dir: Path):
    """sigma0 = (DN^2 - noiseRange * noiseAzimuth) / sigmaNought^2 at 3 pixels, the LUTs
    interpolated by hand from their 4 (2) nodes, against the module to 1e-3 dB."""
    ann = next((s1_safe_dir / "annotation").glob("*-vv-*.xml"))
    cal_xml = (ann.parent / "calibration" / f"calibration-{ann.name}").read_text()
    noise_xml = (ann.parent / "calibration" / f"noise-{ann.name}").read_text()
    with rasterio.open(s1_safe_dir / "measurement" / f"{ann.stem}.tiff") as ds:
        dn = ds.read(1)
    got = s1_safe.sigma0(dn, 0, 0, s1_safe.read_calibration(cal_xml.encode()),
                         s1_safe.read_noise(noise_xml.encode()))
    cal = node_table(cal_xml, "calibrationVector", "sigmaNought")
    rng = node_table(noise_xml, "noiseRangeVector", "noiseRangeLut")
    for row, col in PIXELS:
        a = bilinear_by_hand(cal, row, col)
        noise = bilinear_by_hand(rng, row, col) * azimuth_by_hand(noise_xml, row, col)
        want = 10 * np.log10((float(dn[row, col]) ** 2 - noise) / a**2)
        assert 10 * np.log10(got[row, col]) == pytest.approx(want, abs=1e-3), (row, col)
        print(f"pixel {row},{col}: DN {dn[row, col]} A {a:.4f} noise {noise:.2f} -> {want:.4f} dB")


def test_noise_floor_and_nodata(s1_safe_dir: Path):
    """DN 0 is no data (NaN); a DN under the noise becomes the floor (-40 dB), not NaN."""
    ann = next((s1_safe_dir / "annotation").glob("*-vv-*.xml"))
    cal = s1_safe.read_calibration((ann.parent / "calibration" / f"calibration-{ann.name}").read_bytes())
    noise = s1_safe.read_noise((ann.parent / "calibration" / f"noise-{ann.name}").read_bytes())
    out = s1_safe.sigma0(np.array([[0, 1, 400]], dtype=np.uint16), 500, 500, cal, noise)
    assert np.isnan(out[0, 0])
    assert out[0, 1] == pytest.approx(s1_safe.SIGMA0_FLOOR)
    assert 10 * np.log10(out[0, 2]) > -40


def test_noise_before_ipf_2_9(s1_safe_dir: Path):
    """Products before IPF 2.9 have one `noiseVector` list (range only, no azimuth)."""
    ann = next((s1_safe_dir / "annotation").glob("*-vv-*.xml"))
    xml = (ann.parent / "calibration" / f"noise-{ann.name}").read_text()
    old = re.sub(r"<noiseAzimuthVectorList.*</noiseAzimuthVectorList>", "", xml, flags=re.S)
    old = old.replace("noiseRangeVector", "noiseVector").replace("noiseRangeLut", "noiseLut")
    new, before = s1_safe.read_noise(xml.encode()), s1_safe.read_noise(old.encode())
    assert not before.azimuth and len(new.azimuth) == 3
    rows, cols = np.arange(0.0, 2024, 100), np.arange(0.0, 1298, 50)
    np.testing.assert_allclose(before.window(rows, cols), new.range.window(rows, cols))


# ---- discovery and geocoding ----------------------------------------------------------------
def test_discover_s1_safe(s1_safe_dir: Path):
    (p,) = discover(s1_safe_dir)
    assert (p.sensor, p.platform, p.processing_level) == ("S1", "S1A", "GRD")
    assert p.product_id == NAME and list(p.bands) == ["VV", "VH"]
    assert p.acquired.isoformat() == "2021-01-19T03:16:53"
    assert p.extra["format"] == s1_safe.FORMAT and p.extra["mode"] == "IW"
    assert (p.extra["relative_orbit"], p.extra["orbit_direction"]) == ("79", "DESCENDING")


def corner_tie_points_utm(safe: Path) -> np.ndarray:
    """UTM x, y (EPSG:32736) of the tie points at the crop's first/last line x first/last
    pixel, as annotated."""
    ann = next((safe / "annotation").glob("*-vv-*.xml"))
    pts = {(int(p.findtext("line")), int(p.findtext("pixel"))):
           (float(p.findtext("longitude")), float(p.findtext("latitude")))
           for p in ET.parse(ann).getroot().iter("geolocationGridPoint")}
    corners = [pts[(r, c)] for r in (0, LINES - 1) for c in (0, SAMPLES - 1)]
    xs, ys = warp_transform("EPSG:4326", "EPSG:32736", [c[0] for c in corners],
                            [c[1] for c in corners])
    return np.array([xs, ys]).T


def test_geocoded_footprint_matches_corner_tie_points(store, s1_safe_dir: Path):
    """The ARD's valid data reaches the four corner tie points: its westmost, eastmost,
    northmost and southmost valid pixel centres are each within one pixel (10 m) of the
    corner tie point that is extreme that way, and the pixel under each corner is valid."""
    (r,) = ingest_paths(store, [s1_safe_dir])
    prod = store.product(r.product_id)
    assert "32736" in prod.crs or "UTM zone 36S" in prod.crs
    a, _, c0, _, e, f0 = prod.transform[:6]
    valid = np.isfinite(read_ard(r.ard_path, bands=[1])[0])
    rows, cols = np.nonzero(valid)
    extent = {"west": c0 + a * (cols.min() + 0.5), "east": c0 + a * (cols.max() + 0.5),
              "north": f0 + e * (rows.min() + 0.5), "south": f0 + e * (rows.max() + 0.5)}
    xy = corner_tie_points_utm(s1_safe_dir)
    want = {"west": xy[:, 0].min(), "east": xy[:, 0].max(),
            "north": xy[:, 1].max(), "south": xy[:, 1].min()}
    errors = {k: extent[k] - want[k] for k in want}
    print("footprint errors (m):", {k: round(v, 2) for k, v in errors.items()})
    assert all(abs(v) <= 10.0 for v in errors.values()), errors
    for x, y in xy:
        assert valid[int((y - f0) // e), int((x - c0) // a)], (x, y)
    # the grid holds the footprint with less than a pixel to spare on each side
    assert c0 <= want["west"] < c0 + 2 * a and f0 >= want["north"] > f0 + 2 * e


# ---- ingest ---------------------------------------------------------------------------------
def test_ingest_safe_folder_and_zip(store, s1_safe_dir: Path, tmp_path: Path, shared_data: Path,
                                    monkeypatch):
    """The SAFE folder, then the zip (SAFE one level down) in a fresh workspace: product
    rows, dB values of the BigEarthNet backscatter written as DN, patches, the same ARD."""
    (r,) = ingest_paths(store, [s1_safe_dir])
    assert (r.status, r.sensor, r.product_id) == ("ingested", "S1", NAME)
    prod = store.product(NAME)
    assert (prod.platform, prod.processing_level, list(prod.bands)) == ("S1A", "GRD", ["VV", "VH"])
    assert (prod.relative_orbit, prod.orbit_direction) == (79, "DESCENDING")
    assert prod.transform[0] == 10.0 and prod.transform[4] == -10.0
    assert r.patches == expected_patch_count(prod.width, prod.height, (32, 64, 128)) > 0
    ard = read_ard(r.ard_path)
    with rasterio.open(r.ard_path) as ds:
        assert (ds.dtypes, ds.descriptions) == (("float32",) * 2, ("VV", "VH"))
    ben = shared_data / "bigearthnet"
    for i, pol in enumerate(("VV", "VH")):
        band = ard[i][np.isfinite(ard[i])]
        src = backscatter_db(ben, pol, (LINES, SAMPLES))
        # bilinear in linear power stays within the source's range; -40 dB is the floor
        assert band.min() >= -40.0 and band.max() <= src.max() + 0.05
        # geocoding resamples (bilinear, in linear power): the distribution stays
        assert np.median(band) == pytest.approx(np.median(src), abs=0.3)
        assert np.percentile(band, 90) == pytest.approx(np.percentile(src, 90), abs=0.5)
    assert np.isfinite(ard[0]).sum() == np.isfinite(ard[1]).sum() > 0.5 * ard[0].size
    # the folder again: already there; the zip: the same files, so the same product
    (again,) = ingest_paths(store, [s1_safe_dir])
    assert again.status == "already ingested"
    zipped = zip_safe(s1_safe_dir, tmp_path / f"{NAME}.zip", prefix="download/")
    (z,) = ingest_paths(store, [zipped])
    assert (z.status, z.product_id) == ("already ingested", NAME)
    monkeypatch.setenv("EOMINER_HOME", str(tmp_path / "zipws"))
    from eominer.store import open_store

    with open_store(f"duckdb:///{tmp_path / 'zipws' / 'db.duckdb'}") as s:
        (rz,) = ingest_paths(s, [zipped])
        assert rz.status == "ingested" and s.product(NAME).source_path == str(zipped)
    np.testing.assert_array_equal(read_ard(rz.ard_path), ard)


def test_blocks_leave_no_seams(s1_safe_dir: Path, monkeypatch):
    """Geocoded in 384-pixel blocks or in one: each block inverts the spline on its own
    coarse grid, so only that grid's linear interpolation (hundredths of a pixel) differs,
    and a pixel of the swath's edge whose weight on valid data rounds to 0 in one (2 of
    8.1 million here)."""
    (p,) = discover(s1_safe_dir)
    grid = s1_safe.product_grid(p)
    one = s1_safe.read_bands(p, grid)
    monkeypatch.setattr(s1_safe, "BLOCK", 384)
    many = s1_safe.read_bands(p, grid)
    assert (np.isnan(one) != np.isnan(many)).sum() <= 10
    diff = np.abs(one - many)[np.isfinite(one) & np.isfinite(many)]
    print(f"|diff| dB: mean {diff.mean():.5f}, p99 {np.percentile(diff, 99):.4f}")
    assert diff.mean() < 0.005 and np.percentile(diff, 99) < 0.05


def test_parts_hold_the_whole_geocoding(s1_safe_dir: Path, tmp_path: Path, monkeypatch):
    """Ingest cuts each polarisation in row bands of `BLOCK` rows (one task each): the ARD
    holds the whole product's geocoding to the bit, and its valid mask."""
    monkeypatch.setattr(s1_safe, "BLOCK", 512)  # five row bands on the crop
    (p,) = discover(s1_safe_dir)
    plan = plan_ard(p)
    h = plan.grid.height
    rows = [(y, min(y + 512, h)) for y in range(0, h, 512)]
    assert len(rows) == 5
    assert [(x.band, x.index, x.rows) for x in plan.parts] == [
        (pol, i, r) for i, pol in enumerate(("VV", "VH"), start=1) for r in rows]
    grid, valid = write_ard(p, tmp_path / "ard.tif")
    whole = s1_safe.read_bands(p, grid)
    np.testing.assert_array_equal(read_ard(tmp_path / "ard.tif"), whole)
    np.testing.assert_array_equal(valid, np.isfinite(whole).all(axis=0))
    assert 0.5 < valid.mean() < 1.0


def test_the_valid_mask_from_the_parts_masks_or_their_pixels(s1_safe_dir: Path,
                                                             tmp_path: Path, monkeypatch):
    """Each staged part writes where it has data (8 pixels a byte); the assembly ANDs
    them. A part staged without one (an older version's, found on a resume) is read back
    from its pixels: the same mask either way, and it is where both bands are finite."""
    monkeypatch.setattr(s1_safe, "BLOCK", 512)
    (p,) = discover(s1_safe_dir)
    plan = plan_ard(p)
    folder = tmp_path / "parts"
    for part in plan.parts:
        stage_part(plan, part, folder)
    assert all((folder / part.mask_name).exists() for part in plan.parts)
    from_masks = valid_mask(plan, folder)
    for part in plan.parts[1::3]:
        (folder / part.mask_name).unlink()
    np.testing.assert_array_equal(valid_mask(plan, folder), from_masks)
    whole = s1_safe.read_bands(p, plan.grid)
    np.testing.assert_array_equal(from_masks, np.isfinite(whole).all(axis=0))
    assert 0.5 < from_masks.mean() < 1.0 and from_masks.dtype == bool


def test_geocode_threads_change_no_pixel(s1_safe_dir: Path, monkeypatch):
    """Blocks geocoded two at a time or one after the other: the same pixels, to the bit."""
    (p,) = discover(s1_safe_dir)
    grid = s1_safe.product_grid(p)
    assert s1_safe.GEOCODE_THREADS == 2
    two = s1_safe.read_bands(p, grid)
    monkeypatch.setattr(s1_safe, "GEOCODE_THREADS", 1)
    np.testing.assert_array_equal(s1_safe.read_bands(p, grid), two)
    assert np.isfinite(two).mean() > 0.5


def test_sar_descriptor_on_ingested_safe(store, s1_safe_dir: Path):
    """The `sar` descriptor reads the ingested VV/VH: finite values on a full patch."""
    from eominer.features.registry import build

    (r,) = ingest_paths(store, [s1_safe_dir], levels=(64,))
    t = store.patches(r.product_id, 64).to_pylist()
    full = next(p for p in t if p["valid_fraction"] == 1.0)
    desc = build("sar", ["VV", "VH"])
    h, y, x = desc.halo, full["y_off"], full["x_off"]
    stack = read_ard(r.ard_path, (x - h, y - h, 64 + 2 * h, 64 + 2 * h), boundless=True)
    out = desc.fn(stack, np.array([[0, 0, 64, 64]]), **desc.params, **desc.extra)
    assert out.shape == (1, desc.dims) and np.isfinite(out).all()


# ---- bad input: one clear message each, the database as before ---------------------------
def snapshot(store, workspace: Path) -> tuple:
    return (store.query("SELECT COUNT(*) FROM products")[0][0],
            store.query("SELECT COUNT(*) FROM patches")[0][0],
            sorted(p.name for p in (workspace / "ard").glob("*")))


def test_metadata_only_safe_is_refused(store, workspace, shared_data: Path):
    """The shared zip as it is (no imagery): named as S1, not as a broken S2 SAFE."""
    with pytest.raises(ProductReadError, match=r"measurement/s1a-iw-grd-vv-.*\.tiff is missing in "
                       r".*8255\.zip: it holds the VV image .*metadata only"):
        ingest_paths(store, [shared_data / "s1_grd_metadata" / f"{NAME}.zip"])
    assert snapshot(store, workspace) == (0, 0, [])


def test_missing_calibration_is_refused(store, workspace, s1_copy: Path):
    next((s1_copy / "annotation" / "calibration").glob("calibration-*-vv-*.xml")).unlink()
    with pytest.raises(ProductReadError, match=r"annotation/calibration/calibration-s1a-iw-grd-vv-"
                       r".*\.xml is missing in .*\.SAFE: its sigmaNought LUT calibrates VV .*"
                       r"download or unzip the full product again"):
        ingest_paths(store, [s1_copy])
    assert snapshot(store, workspace) == (0, 0, [])


@pytest.mark.parametrize("damage, message", [
    ("latitude", r"1 of 210 geolocation grid points lack a line, pixel, latitude or longitude"),
    ("duplicate", r"two geolocation grid points share a line and pixel"),
])
def test_damaged_tie_points_are_refused(store, workspace, s1_copy: Path, damage, message):
    """A tie point without its latitude, or one repeated at another's line and pixel (no
    spline passes through both): the product is refused, naming the annotation's fault,
    and nothing is written."""
    ann = next((s1_copy / "annotation").glob("*-vv-*.xml"))
    root = ET.fromstring(ann.read_bytes())
    points = list(root.iter("geolocationGridPoint"))
    if damage == "latitude":
        points[7].remove(points[7].find("latitude"))
    else:
        for tag in ("line", "pixel"):
            points[8].find(tag).text = points[7].find(tag).text
    ann.write_bytes(ET.tostring(root, encoding="UTF-8", xml_declaration=True))
    with pytest.raises(ProductReadError, match=message + r".*download the product again"):
        ingest_paths(store, [s1_copy])
    assert snapshot(store, workspace) == (0, 0, [])


def test_measurement_size_mismatch_is_refused(store, workspace, tmp_path: Path,
                                              shared_data: Path):
    safe = make_safe(tmp_path / "short", shared_data, shared_data / "bigearthnet",
                     measurement_lines=2000)
    with pytest.raises(ProductReadError, match=r"measurement/s1a-iw-grd-vv-.*\.tiff in .* is "
                       r"1298 x 2000 \(samples x lines\), but its annotation says 1298 x 2024"):
        ingest_paths(store, [safe])
    assert snapshot(store, workspace) == (0, 0, [])


def test_hh_hv_product_is_refused(store, workspace, s1_copy: Path):
    manifest = s1_copy / "manifest.safe"
    text = manifest.read_text().replace(">VV<", ">HH<").replace(">VH<", ">HV<")
    manifest.write_text(text)
    with pytest.raises(UnsupportedFormatError, match=r"polarisation\(s\) HH, HV: .*needs VV and VH"):
        ingest_paths(store, [s1_copy])
    assert snapshot(store, workspace) == (0, 0, [])


def test_change_scene_reads_the_safe_like_ingest(store, s1_safe_dir: Path):
    """`eominer change` given the SAFE path (not an ingested id) sees the ingested dB."""
    from eominer.change.align import scene_from_path

    (r,) = ingest_paths(store, [s1_safe_dir], levels=(128,))
    scene = scene_from_path(s1_safe_dir)
    assert scene.band_names == ("VV", "VH") and scene.sensor == "S1"
    np.testing.assert_array_equal(scene.data, read_ard(r.ard_path))
