"""Geocoding a Sentinel-1 GRD image onto a north-up grid from its tie points.

The thin-plate spline through the annotation's tie points maps image (row, col) to UTM
(x, y). Each destination block is geocoded by:
1. the spline inverted by Newton's method (analytic Jacobian) at a coarse grid of the
   block's pixel centres: every `STEP` pixels and the last row and column;
2. those image coordinates interpolated linearly to every pixel (along columns, then
   rows). On the full-size IW scene the interpolation is within 0.08 px of the exact
   inverse (the largest of 3,600 pixels in 12 random blocks; 0.28 px at a 64 px step);
3. the image resampled bilinearly at them (`scipy.ndimage.map_coordinates`), the weights
   of missing pixels (DN 0) shared among the others, as GDAL's warp does.

Why not GDAL's warp (`reproject` with `SRC_METHOD=GCP_TPS`), used up to 2026-12-05: its
default transformer approximates the inverse along each row (0.125 px error budget),
and its exact one is ten times slower. On 6 central 2048 px blocks of the full-size IW
scene this module takes 1.15 s against GDAL's 4.26 s (both on two threads), and differs
from GDAL's exact warp by 0.004 dB mean, where GDAL's default differs by 0.087 dB
(`python bench/bench_s1_geocode.py`, docs/sentinel1.md). The spline fitted the other
way (UTM -> image, what rasterio's `GCPTransformer.rowcol` evaluates) is not the forward
spline's inverse: with tie points at terrain heights up to 1.2 km apart the two part by
up to 1.5 px; here it is only Newton's first guess.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eominer.errors import ProductReadError

STEP = 32  # destination pixels between the points where the spline is inverted exactly
# image pixels: Newton stops after a step below it, which leaves an error of about its
# square (on the real tie points: steps of 4 px, 9e-4 px, then 5e-11 px)
NEWTON_TOL = 1e-3
NEWTON_MAX_STEPS = 12


class ThinPlateSpline:
    """The thin-plate spline through points `src` (n, 2) with values `dst` (n, 2): the
    interpolant that minimises bending energy, phi(r) = r^2 log r plus an affine part,
    solved once; values and Jacobians at many points are a few passes over an (m, n)
    array. No step depends on BLAS threads (the fit is solved on one, the rest uses no
    BLAS): the same pixels in a Ray worker limited to one thread as in a process with
    many, which the runner's resume and `tests/compute/test_ingest.py` rely on."""

    def __init__(self, src: np.ndarray, dst: np.ndarray) -> None:
        from threadpoolctl import threadpool_limits

        src = np.asarray(src, np.float64)
        # the spline does not change under shifts and scalings of `src`: centred and
        # scaled to unit spread, the system is well conditioned
        self._c0, self._s = src.mean(axis=0), float(src.std()) or 1.0
        self._centres = (src - self._c0) / self._s
        n = len(src)
        system = np.zeros((n + 3, n + 3))
        system[:n, :n] = self._phi(self._sq_dist(self._centres))
        system[:n, n], system[n, :n] = 1.0, 1.0
        system[:n, n + 1:], system[n + 1:, :n] = self._centres, self._centres.T
        rhs = np.zeros((n + 3, 2))
        rhs[:n] = dst
        try:
            with threadpool_limits(1, user_api="blas"):
                coef = np.linalg.solve(system, rhs)
        except np.linalg.LinAlgError as exc:
            raise ValueError("no thin-plate spline passes through these points (two of "
                             "them coincide, or all lie on one line)") from exc
        self._w, self._affine = coef[:n], coef[n:]  # (n, 2); rows 1, u, v

    def _sq_dist(self, p: np.ndarray) -> np.ndarray:
        c = self._centres
        d2 = (p[:, :1] - c[:, 0]) ** 2
        d2 += (p[:, 1:] - c[:, 1]) ** 2
        return d2

    @staticmethod
    def _phi(d2: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 0.5 * d2 * np.log(d2)  # r^2 log r = r^2 log(r^2) / 2; 0 at r = 0
        out[d2 == 0.0] = 0.0
        return out

    def _affine_at(self, p: np.ndarray) -> np.ndarray:
        a = self._affine
        return a[0] + p[:, :1] * a[1] + p[:, 1:] * a[2]

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        p = (np.asarray(pts, np.float64) - self._c0) / self._s
        return np.einsum("mn,nk->mk", self._phi(self._sq_dist(p)), self._w) + self._affine_at(p)

    def with_jacobian(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values (m, 2) and Jacobians (m, 2, 2): [i, k, j] = d value_k / d pts_j."""
        p = (np.asarray(pts, np.float64) - self._c0) / self._s
        d2 = self._sq_dist(p)
        phi = self._phi(d2)
        with np.errstate(divide="ignore"):
            g = np.log(d2) + 1.0  # d phi / d p = (p - c) (log r^2 + 1)
        g[d2 == 0.0] = 0.0
        values = np.einsum("mn,nk->mk", phi, self._w) + self._affine_at(p)
        gw = np.einsum("mn,nk->mk", g, self._w)  # sum_i g_i w_ik
        jac = np.empty((len(p), 2, 2))
        for j in range(2):
            gcw = np.einsum("mn,nk->mk", g, self._centres[:, j:j + 1] * self._w)
            jac[:, :, j] = (p[:, j:j + 1] * gw - gcw + self._affine[1 + j]) / self._s
        return values, jac


class TiePointSpline:
    """The thin-plate spline through tie points, image (row, col) -> (x, y), and its
    inverse. Rows and columns are in GDAL's pixel-corner convention (a pixel's centre
    at index + 0.5); x, y in the tie points' projected CRS."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, xs: np.ndarray,
                 ys: np.ndarray) -> None:
        rc = np.c_[rows, cols].astype(np.float64)
        xy = np.c_[xs, ys].astype(np.float64)
        self._xy0 = xy.mean(axis=0)  # values near 0: no digits lost to 8e6 m northings
        self._forward = ThinPlateSpline(rc, xy - self._xy0)
        self._guess = ThinPlateSpline(xy, rc)

    def xy(self, rows: Any, cols: Any) -> tuple[np.ndarray, np.ndarray]:
        out = self._forward(np.c_[np.ravel(rows), np.ravel(cols)]) + self._xy0
        return out[:, 0], out[:, 1]

    def rowcol(self, xs: Any, ys: Any) -> tuple[np.ndarray, np.ndarray]:
        """The image (row, col) that the spline maps onto each (x, y) (see NEWTON_TOL)."""
        xy = np.c_[np.ravel(xs), np.ravel(ys)].astype(np.float64)
        target = xy - self._xy0
        rc = self._guess(xy)
        for _ in range(NEWTON_MAX_STEPS):
            f, jac = self._forward.with_jacobian(rc)
            step = _solve2(jac, target - f)
            rc += step
            if not len(rc) or float(np.abs(step).max()) < NEWTON_TOL:
                break
        else:
            raise ProductReadError(
                "the tie points' spline could not be inverted (Newton's method did not "
                f"converge in {NEWTON_MAX_STEPS} steps): the annotation's geolocation grid "
                "is inconsistent; download the product again")
        return rc[:, 0], rc[:, 1]


def _solve2(m: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with m[i] @ x[i] = b[i] for (k, 2, 2) matrices: Cramer's rule."""
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    return np.stack([(b[:, 0] * m[:, 1, 1] - m[:, 0, 1] * b[:, 1]) / det,
                     (m[:, 0, 0] * b[:, 1] - b[:, 0] * m[:, 1, 0]) / det], axis=1)


def _lerp_at(nodes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For 0..n-1: the node before each (index) and the fraction of the way to the next."""
    if len(nodes) == 1:
        return np.zeros(n, np.int64), np.zeros(n)
    t = np.arange(n, dtype=np.float64)
    j = np.clip(np.searchsorted(nodes, t, side="right") - 1, 0, len(nodes) - 2)
    return j, (t - nodes[j]) / (nodes[j + 1] - nodes[j])


def _upsample(coarse: np.ndarray, gr: np.ndarray, gc: np.ndarray, out: np.ndarray) -> None:
    """`coarse` (values at rows gr x cols gc) interpolated linearly to every pixel of
    `out` (float32): along the columns on the small array, then one pass along the rows."""
    j, f = _lerp_at(gr, out.shape[0])
    step = np.diff(coarse, axis=0, append=coarse[-1:])
    rows = coarse[j] + step[j] * f[:, None]  # (height, len(gc)), float64
    j, f = _lerp_at(gc, out.shape[1])
    step = np.diff(rows, axis=1, append=rows[:, -1:]).astype(np.float32)
    np.take(rows.astype(np.float32), j, axis=1, out=out)
    part = np.take(step, j, axis=1)
    part *= f.astype(np.float32)
    out += part


def block_coords(spline: TiePointSpline, transform: tuple[float, ...],
                 win: tuple[int, int, int, int], step: int = STEP) -> np.ndarray:
    """(2, height, width) float32: image row and col under the centre of every pixel of the
    destination window (x_off, y_off, width, height) of a north-up grid with
    `transform` (GDAL order)."""
    a, _, c0, _, e, f0 = transform[:6]
    x_off, y_off, w, h = win
    gr = np.unique(np.r_[np.arange(0, h, step), h - 1]).astype(np.float64)
    gc = np.unique(np.r_[np.arange(0, w, step), w - 1]).astype(np.float64)
    xs = np.broadcast_to(c0 + a * (x_off + gc + 0.5), (len(gr), len(gc)))
    ys = np.broadcast_to((f0 + e * (y_off + gr + 0.5))[:, None], (len(gr), len(gc)))
    # one float32 array (0.002 px steps at 26,000 lines): map_coordinates reads it as is
    out = np.empty((2, h, w), np.float32)
    for k, v in enumerate(spline.rowcol(xs, ys)):
        _upsample(v.reshape(len(gr), len(gc)), gr, gc, out[k])
    return out


def image_window(coords: np.ndarray, lines: int, samples: int,
                 margin: int = 2) -> tuple[int, int, int, int] | None:
    """(r0, r1, s0, s1): the image part that bilinear resampling at `coords` (2, ...)
    reads, clipped to the image; None when the block lies outside it."""
    r0 = max(int(np.floor(coords[0].min())) - margin, 0)
    r1 = min(int(np.ceil(coords[0].max())) + margin, lines)
    s0 = max(int(np.floor(coords[1].min())) - margin, 0)
    s1 = min(int(np.ceil(coords[1].max())) + margin, samples)
    return (r0, r1, s0, s1) if r1 > r0 and s1 > s0 else None


def resample(power: np.ndarray, coords: np.ndarray, r0: int, s0: int, lines: int,
             samples: int) -> np.ndarray:
    """Bilinear samples of `power` (the image window whose first pixel is image (r0, s0);
    NaN: no data) at image (row, col) `coords` (2, ...) in the pixel-corner convention,
    which it overwrites. A missing neighbour's weight goes to the others; NaN where all
    four are missing and outside the image (0..lines x 0..samples)."""
    from scipy import ndimage

    outside = (coords[0] < 0) | (coords[0] > lines) | (coords[1] < 0) | (coords[1] > samples)
    coords[0] -= r0 + 0.5  # pixel centres at whole indices of the window
    coords[1] -= s0 + 0.5
    missing = np.isnan(power)
    kw = {"order": 1, "mode": "nearest", "prefilter": False, "output": np.float32}
    if missing.any():
        out = ndimage.map_coordinates(np.where(missing, np.float32(0), power), coords, **kw)
        weight = ndimage.map_coordinates((~missing).astype(np.float32), coords, **kw)
        with np.errstate(divide="ignore", invalid="ignore"):
            out /= weight
        out[weight < 1e-6] = np.nan
    else:
        out = ndimage.map_coordinates(power, coords, **kw)
    out[outside] = np.nan
    return out
