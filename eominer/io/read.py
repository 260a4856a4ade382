"""Read a product's bands onto the grid of its 10 m bands (eominer.io.parts writes the ARD COG).

Sentinel-2 ARD scale: uint16, reflectance x 10000 (the convention of processing
baselines before 04.00), nodata 0, for every baseline. A product with an add-offset
and quantification value in its MTD_MSIL*.xml (baseline >= 04.00: offset -1000) is
converted at ingest: ARD = round((DN + offset) * 10000 / quantification), valid
pixels clipped to [1, 65535] (a reflectance <= 0 becomes 1, i.e. 0.0001, so it stays
valid), DN 0 stays 0 (nodata). Older products (offset 0, quantification 10000) are
written unchanged, so a 2021 and a 2023 product of the same ground compare directly.

Each band's own nodata value (from its file: 65535 on one band while the others use 0)
is set to the ARD's nodata before conversion and resampling, so it enters the product's
valid mask (a pixel is valid only where every band is) and patches' valid_fraction.

Sentinel-1 GRD SAFE products (`extra["format"] == "S1_SAFE"`) are calibrated, denoised
and geocoded to UTM by eominer.io.s1_safe: `product_grid` and `eominer.io.parts.write_ard`
hand them over.

No reprojection here (but for those): every band is resampled (same CRS, same bounds) onto the grid of
the reference band (B02 for Sentinel-2, or a stack's finest band; VV for Sentinel-1).
Aligning two dates or two
sensors is the change-detection and fusion code's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from eominer import sensors as S
from eominer.domain import BandSource, SourceProduct
from eominer.errors import GridMismatchError, ProductReadError

if TYPE_CHECKING:
    from rasterio.io import DatasetReader


@dataclass(frozen=True)
class Grid:
    """The 10 m grid of a product: CRS (WKT), affine transform, size."""

    crs_wkt: str
    transform: tuple[float, ...]  # affine (a, b, c, d, e, f)
    width: int
    height: int


def _is_s1_safe(product: SourceProduct) -> bool:
    return product.extra.get("format") == "S1_SAFE"  # eominer.io.s1_safe.FORMAT


def reference_band(product: SourceProduct) -> str:
    """B02 for Sentinel-2 (a stack without it: its finest band), VV for Sentinel-1."""
    if product.sensor != "S2":
        return "VV"
    if "B02" in product.bands:
        return "B02"
    return min(product.bands, key=lambda b: S.S2_BANDS[b][0])


def _open(src: BandSource) -> DatasetReader:
    import rasterio

    from eominer.io.discover import remote_href

    url = remote_href(src.path)
    if url is not None:
        # a remote asset: open it alone (no listing of its folder), no retries
        try:
            with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
                              GDAL_HTTP_MAX_RETRY="0", GDAL_HTTP_TIMEOUT="30"):
                return rasterio.open(src.path)
        except rasterio.errors.RasterioIOError as exc:
            raise ProductReadError(
                f"cannot read the STAC asset {url}: {exc}; check that the URL answers (it may "
                "have moved or expired: 404), that this machine reaches its host (network, "
                "proxy), and for s3:// the AWS_* credentials and region"
            ) from exc
    try:
        return rasterio.open(src.path)
    except rasterio.errors.RasterioIOError as exc:
        raise ProductReadError(
            f"cannot open {src.path}: {exc}; the file may be truncated or corrupt: "
            "download or copy it again"
        ) from exc


def product_grid(product: SourceProduct) -> Grid:
    """The reference band's grid; every other band must share its CRS and footprint."""
    if _is_s1_safe(product):
        from eominer.io import s1_safe

        return s1_safe.product_grid(product)
    ref = product.bands[reference_band(product)]
    with _open(ref) as ds:
        if ds.crs is None and ds.gcps[0]:
            raise GridMismatchError(
                f"{ref.path} is georeferenced by {len(ds.gcps[0])} ground control points only, "
                "not on a map grid: " + (
                    "it is a Sentinel-1 GRD measurement in radar geometry; ingest its SAFE "
                    "(folder or zip), or a STAC item that keeps the SAFE's schema-product, "
                    "schema-calibration and schema-noise assets: eominer then calibrates and "
                    "geocodes it" if product.sensor == "S1" else
                    "warp it onto one first (gdalwarp -t_srs EPSG:<its UTM zone> -tr 10 10)")
            )
        if ds.crs is None:
            raise GridMismatchError(f"{ref.path} has no CRS: eominer needs georeferenced bands")
        grid = Grid(ds.crs.to_wkt(), tuple(ds.transform)[:6], ds.width, ds.height)
        ref_crs, ref_bounds = ds.crs, ds.bounds
    for name, src in product.bands.items():
        with _open(src) as ds:
            if ds.crs != ref_crs:
                raise GridMismatchError(
                    f"band {name} ({src.path}) is in {ds.crs}, but {reference_band(product)} "
                    f"is in {ref_crs}: all bands of a product must share one CRS; "
                    "reproject the odd band (gdalwarp -t_srs) or use the original product"
                )
            tol = abs(grid.transform[0]) * 0.5
            if any(abs(a - b) > max(tol, abs(ds.transform[0]) * 0.5)
                   for a, b in zip(ds.bounds, ref_bounds)):
                raise GridMismatchError(
                    f"band {name} ({src.path}) covers {tuple(ds.bounds)}, but "
                    f"{reference_band(product)} covers {tuple(ref_bounds)}: bands must cover "
                    "the same area"
                )
    return grid


def read_band(src: BandSource, grid: Grid, sensor: str,
              convert: Callable[[np.ndarray], np.ndarray] | None = None,
              rows: tuple[int, int] | None = None) -> np.ndarray:
    """One band resampled onto `grid` (bilinear for coarser S2 bands; exact when equal).

    `convert` (e.g. the S2 add-offset) runs on the band at its native resolution, before
    resampling: a product of another convention is then resampled from the same values
    as an older one, and nodata (0) blends into its neighbours the same way in both.

    `rows` (y0, y1): only those rows of the grid, for a band at the grid's own
    resolution (a row block of a large band; see eominer.io.parts)."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.io import MemoryFile
    from rasterio.windows import Window

    with _open(src) as ds:
        nodata = ds.nodatavals[src.index - 1]
        try:
            if (ds.width, ds.height) == (grid.width, grid.height):
                window = None if rows is None else Window(0, rows[0], grid.width,
                                                          rows[1] - rows[0])
                band = _blank_nodata(ds.read(src.index, window=window), nodata, sensor)
                return convert(band) if convert else band
            if rows is not None:
                raise ValueError(f"rows {rows} of {src.path}: a row block is read only from "
                                 "a band at the grid's resolution, not from a resampled one")
            if convert is None and _is_ard_nodata(nodata, sensor):
                return ds.read(
                    src.index, out_shape=(grid.height, grid.width), resampling=Resampling.bilinear
                )
            native = _blank_nodata(ds.read(src.index), nodata, sensor)
            if convert:
                native = convert(native)
            out_nodata = None if nodata is None else (0 if sensor == "S2" else np.nan)
            profile = {"driver": "GTiff", "width": ds.width, "height": ds.height, "count": 1,
                       "dtype": native.dtype.name, "crs": ds.crs, "transform": ds.transform,
                       "nodata": out_nodata}
        except rasterio.errors.RasterioIOError as exc:
            raise ProductReadError(
                f"cannot read {src.path}: {exc}; the file is truncated or corrupt: "
                "download or copy it again"
            ) from exc
    with MemoryFile() as mem:
        with mem.open(**profile) as tmp:
            tmp.write(native, 1)
        with mem.open() as tmp:
            return tmp.read(1, out_shape=(grid.height, grid.width), resampling=Resampling.bilinear)


def _is_ard_nodata(nodata: float | None, sensor: str) -> bool:
    """The band's nodata is none, or already the ARD's (0 for S2, NaN for S1)."""
    if nodata is None:
        return True
    return nodata == 0 if sensor == "S2" else bool(np.isnan(nodata))


def _blank_nodata(band: np.ndarray, nodata: float | None, sensor: str) -> np.ndarray:
    """The band with its own nodata value (e.g. 65535 on one band while the others use 0)
    set to the ARD's nodata (0 for S2, NaN for S1), so that it enters the product's
    valid mask and is never stored as a value."""
    if _is_ard_nodata(nodata, sensor):
        return band
    hit = band == nodata
    if not hit.any():
        return band
    if sensor != "S2" and not np.issubdtype(band.dtype, np.floating):
        band = band.astype(np.float32)
    band = band.copy() if not band.flags.writeable else band
    band[hit] = 0 if sensor == "S2" else np.nan
    return band


def to_ard_dn(dn: np.ndarray, offset: float = 0.0,
              quantification: float = S.S2_REFLECTANCE_SCALE) -> np.ndarray:
    """Sentinel-2 DN of any baseline -> ARD DN (uint16, reflectance x 10000, 0 = nodata)."""
    if offset == 0 and quantification == S.S2_REFLECTANCE_SCALE:
        return dn.astype(np.uint16, copy=False)
    nodata = dn == 0
    if quantification == S.S2_REFLECTANCE_SCALE and float(offset).is_integer():
        out = dn.astype(np.int32) + np.int32(offset)  # exact: integer arithmetic
    else:
        out = np.rint((dn.astype(np.float64) + offset) * (S.S2_REFLECTANCE_SCALE / quantification))
    out = np.clip(out, 1, np.iinfo(np.uint16).max).astype(np.uint16)
    out[nodata] = 0
    return out


def to_db(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """Sentinel-1 backscatter in dB. Linear power (all finite values >= 0 and the
    median below 1) is converted with 10*log10; dB input (mostly negative) is kept."""
    v = values.astype(np.float32)
    finite = v[np.isfinite(v)]
    if finite.size and finite.min() >= 0 and np.median(finite) < 1.0:
        with np.errstate(divide="ignore"):
            out = 10.0 * np.log10(v)
        out[~np.isfinite(out)] = np.nan
        return out, True
    return v, False


def _s2_convert(product: SourceProduct, band: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """DN -> ARD DN for one band of an S2 product whose metadata has an add-offset or
    another quantification; None when the DN are already on the ARD scale."""
    mtd = product.s2_metadata
    if product.sensor != "S2" or mtd is None:
        return None
    offset, quant = mtd.offset(band), mtd.quantification
    if offset == 0 and quant == S.S2_REFLECTANCE_SCALE:
        return None
    return lambda dn: to_ard_dn(dn, offset, quant)


def band_names(product: SourceProduct) -> list[str]:
    order = S.S2_BAND_ORDER if product.sensor == "S2" else S.S1_BANDS
    return [b for b in order if b in product.bands]
