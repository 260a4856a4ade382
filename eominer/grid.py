"""The multi-level patch grid of a product.

Level L cuts the 10 m raster into L x L pixel patches from the top-left corner; only
whole patches are kept, so a raster of H x W pixels has floor(H/L) * floor(W/L) patches
at level L (the right and bottom strips narrower than L are not covered at that level).
Each fine patch points to the coarser patch that contains it (`parent_id`), which is
what cascaded active learning walks down.

`valid_fraction` and the mask fractions (`cloud_fraction`, `shadow_fraction`,
`snow_fraction`, `water_fraction`) are shares of ALL the patch's pixels (flagged pixels are
valid ones, eominer.io.clouds), so valid - cloud - shadow is the clear share. A class the
product's mask does not observe is NULL (unknown), not 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

DEFAULT_LEVELS: tuple[int, ...] = (32, 64, 128)
# Mask classes with a `<class>_fraction` column in `patches` (eominer.io.clouds).
MASK_CLASSES: tuple[str, ...] = ("cloud", "shadow", "snow", "water")


def parse_levels(text: str | Sequence[int]) -> tuple[int, ...]:
    """Grid levels from "32,64,128" or a sequence of ints: sorted, each once."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = [int(str(v).strip()) for v in parts]
    except ValueError:
        raise ValueError(f"grid levels are patch sizes in px separated by commas, like "
                         f"32,64,128; got {text!r}") from None
    if not values or any(v < 4 or v > 4096 for v in values):
        raise ValueError(f"grid levels must be patch sizes between 4 and 4096 px, got {values}")
    return tuple(sorted(set(values)))


def _block_mean(mask: np.ndarray, size: int) -> np.ndarray:
    rows, cols = mask.shape[0] // size, mask.shape[1] // size
    m = mask[: rows * size, : cols * size].reshape(rows, size, cols, size)
    return m.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def patch_grid(
    width: int, height: int, transform: Sequence[float], crs_wkt: str, valid: np.ndarray,
    levels: Sequence[int], product_id: str, first_id: int,
    masks: Mapping[str, np.ndarray] | None = None,
) -> pa.Table:
    """Patch rows for all levels (Arrow, columns of the `patches` table). `masks` maps a
    class of MASK_CLASSES to its bool raster (the grid's shape); absent classes are NULL."""
    masks = dict(masks or {})
    unknown = sorted(set(masks) - set(MASK_CLASSES))
    if unknown:
        raise ValueError(f"unknown mask class(es) {unknown}: expected some of {MASK_CLASSES}")
    for name, m in masks.items():
        if m.shape != valid.shape:
            raise ValueError(f"{name} mask is {m.shape}, the valid mask {valid.shape}: masks "
                             "must be on the product's 10 m grid")
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp_points

    a, b, c, d, e, f = transform[:6]
    cols_out: dict[str, list[np.ndarray]] = {k: [] for k in (
        "patch_id", "level", "size_px", "row", "col", "x_off", "y_off", "min_x", "min_y",
        "max_x", "max_y", "min_lon", "min_lat", "max_lon", "max_lat", "valid_fraction", "parent_id",
        *(f"{name}_fraction" for name in masks),
    )}
    next_id = first_id
    ids_by_level: dict[int, np.ndarray] = {}
    for size in sorted(levels, reverse=True):  # coarse first, so children find parents
        nr, nc = height // size, width // size
        if nr == 0 or nc == 0:
            continue
        rr, cc = np.meshgrid(np.arange(nr), np.arange(nc), indexing="ij")
        rr, cc = rr.ravel(), cc.ravel()
        n = rr.size
        ids = np.arange(next_id, next_id + n, dtype=np.int64)
        next_id += n
        ids_by_level[size] = ids.reshape(nr, nc)
        x0, y0 = cc * size, rr * size
        # corners in the product CRS (north-up rasters: e < 0)
        xs = np.stack([a * x0 + b * y0 + c, a * (x0 + size) + b * (y0 + size) + c])
        ys = np.stack([d * x0 + e * y0 + f, d * (x0 + size) + e * (y0 + size) + f])
        min_x, max_x = xs.min(0), xs.max(0)
        min_y, max_y = ys.min(0), ys.max(0)
        corner_x = np.concatenate([min_x, max_x, min_x, max_x])
        corner_y = np.concatenate([min_y, min_y, max_y, max_y])
        lon, lat = warp_points(CRS.from_wkt(crs_wkt), "EPSG:4326", corner_x, corner_y)
        lon, lat = np.asarray(lon).reshape(4, n), np.asarray(lat).reshape(4, n)
        # a patch across the antimeridian (UTM zones 1 and 60: Fiji, Chukotka, the
        # Aleutians) keeps continuous longitudes, past 180 (179.99 .. 180.01), instead of a
        # box around the world (-179.99 .. 179.99); `aoi.boxes_in_aoi` tests it both ways
        across = lon.max(0) - lon.min(0) > 180
        lon[:, across] = np.where(lon[:, across] < 0, lon[:, across] + 360, lon[:, across])
        coarser = [s for s in ids_by_level if s > size]
        parent = np.full(n, -1, dtype=np.int64)
        if coarser:
            ps = min(coarser)
            pr, pc = (rr * size) // ps, (cc * size) // ps
            grid = ids_by_level[ps]
            inside = (pr < grid.shape[0]) & (pc < grid.shape[1]) & (
                (rr + 1) * size <= grid.shape[0] * ps) & ((cc + 1) * size <= grid.shape[1] * ps)
            parent[inside] = grid[pr[inside], pc[inside]]
        for key, val in (
            ("patch_id", ids), ("level", np.full(n, size, np.int32)),
            ("size_px", np.full(n, size, np.int32)), ("row", rr.astype(np.int32)),
            ("col", cc.astype(np.int32)), ("x_off", x0.astype(np.int32)),
            ("y_off", y0.astype(np.int32)), ("min_x", min_x), ("min_y", min_y),
            ("max_x", max_x), ("max_y", max_y), ("min_lon", lon.min(0)), ("min_lat", lat.min(0)),
            ("max_lon", lon.max(0)), ("max_lat", lat.max(0)),
            ("valid_fraction", _block_mean(valid, size).ravel()), ("parent_id", parent),
            *((f"{name}_fraction", _block_mean(m, size).ravel()) for name, m in masks.items()),
        ):
            cols_out[key].append(np.asarray(val))
    data = {k: np.concatenate(v) if v else np.empty(0) for k, v in cols_out.items()}
    n_total = len(data["patch_id"])
    table = {
        "patch_id": pa.array(data["patch_id"].astype(np.int64)),
        "product_id": pa.array([product_id] * n_total, pa.string()),
    }
    for k, v in data.items():
        if k == "patch_id":
            continue
        if k == "parent_id":
            table[k] = pa.array(v.astype(np.int64), mask=v < 0)
        elif v.dtype.kind == "f":
            table[k] = pa.array(v.astype(np.float32 if k.endswith("_fraction") else np.float64))
        else:
            table[k] = pa.array(v.astype(np.int32))
    for name in MASK_CLASSES:
        table.setdefault(f"{name}_fraction", pa.nulls(n_total, pa.float32()))
    return pa.table(table)


def expected_patch_count(width: int, height: int, levels: Sequence[int]) -> int:
    return sum((height // s) * (width // s) for s in levels)
