"""Read a product's bands onto the grid of its 10 m bands and write its ARD COG.

No reprojection here: every band is resampled (same CRS, same bounds) onto the grid of
the reference band (B02 for Sentinel-2, VV for Sentinel-1). Aligning two dates or two
sensors is the change-detection and fusion code's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eominer import sensors as S
from eominer.domain import BandSource, SourceProduct
from eominer.errors import GridMismatchError, ProductReadError
from eominer.io.ard import tmp_path_for, write_cog


@dataclass(frozen=True)
class Grid:
    """The 10 m grid of a product: CRS (WKT), affine transform, size."""

    crs_wkt: str
    transform: tuple[float, ...]  # affine (a, b, c, d, e, f)
    width: int
    height: int


def reference_band(product: SourceProduct) -> str:
    return "B02" if product.sensor == "S2" else "VV"


def _open(src: BandSource):
    import rasterio

    try:
        return rasterio.open(src.path)
    except rasterio.errors.RasterioIOError as exc:
        raise ProductReadError(
            f"cannot open {src.path}: {exc}; the file may be truncated or corrupt: "
            "download or copy it again"
        ) from exc


def product_grid(product: SourceProduct) -> Grid:
    """The reference band's grid; every other band must share its CRS and footprint."""
    ref = product.bands[reference_band(product)]
    with _open(ref) as ds:
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


def read_band(src: BandSource, grid: Grid, sensor: str) -> np.ndarray:
    """One band resampled onto `grid` (bilinear for coarser S2 bands; exact when equal)."""
    import rasterio
    from rasterio.enums import Resampling

    with _open(src) as ds:
        try:
            if (ds.width, ds.height) == (grid.width, grid.height):
                return ds.read(src.index)
            return ds.read(
                src.index, out_shape=(grid.height, grid.width), resampling=Resampling.bilinear
            )
        except rasterio.errors.RasterioIOError as exc:
            raise ProductReadError(
                f"cannot read {src.path}: {exc}; the file is truncated or corrupt: "
                "download or copy it again"
            ) from exc


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


def write_ard(
    product: SourceProduct, dest: Path, progress: Callable[[str], None] | None = None,
) -> tuple[Grid, np.ndarray]:
    """Write the product's ARD COG at `dest`; return its grid and valid-pixel mask.

    Bands are read and written one at a time (a full tile is 13 x 120 MB), into a tiled
    GeoTIFF, then copied to a COG; the temporary file never stays behind."""
    import rasterio
    from rasterio.transform import Affine

    grid = product_grid(product)
    names = list(product.bands)
    s2 = product.sensor == "S2"
    profile = {
        "driver": "GTiff", "width": grid.width, "height": grid.height, "count": len(names),
        "dtype": "uint16" if s2 else "float32", "nodata": 0 if s2 else np.nan,
        "crs": grid.crs_wkt, "transform": Affine(*grid.transform), "tiled": True,
        "blockxsize": 512, "blockysize": 512, "compress": "ZSTD", "BIGTIFF": "IF_SAFER",
    }
    tmp = tmp_path_for(dest)
    valid = np.ones((grid.height, grid.width), dtype=bool)
    try:
        with rasterio.open(tmp, "w", **profile) as out:
            for i, name in enumerate(names, start=1):
                if progress:
                    progress(name)
                band = read_band(product.bands[name], grid, product.sensor)
                if s2:
                    band = band.astype(np.uint16, copy=False)
                    valid &= band != 0
                else:
                    band, _ = to_db(band)
                    valid &= np.isfinite(band)
                out.write(band, i)
                out.set_band_description(i, name)
        tmp_cog = dest.with_name(dest.name + ".partial")
        write_cog(tmp, tmp_cog)
        tmp_cog.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
        dest.with_name(dest.name + ".partial").unlink(missing_ok=True)
    return grid, valid


def band_names(product: SourceProduct) -> list[str]:
    order = S.S2_BAND_ORDER if product.sensor == "S2" else S.S1_BANDS
    return [b for b in order if b in product.bands]
