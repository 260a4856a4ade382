"""Cross-date regression (`regression`): date 2 predicted from date 1, the residual as the
change distance (image regression, Singh 1989; here multivariate: every band of date 2
from all bands of date 1).

One least-squares fit with intercept on a seeded sample of valid pixels. Most of a scene
does not change, so the fit learns the scene's common trajectory between the two dates:
gain and offset of the atmosphere and the sensor as IR-MAD does, and also the cross-band
effects of the season (a green field's red and near-infrared move together). What follows
that trajectory is predicted and cancels; what departs from it, a field that became a
building, remains. The distance is the length of the residual vector, each band's residual
divided by its median absolute value on the sample (robust to the changed pixels in it).

As `selftrain`'s guide (method `selftrain_regression`) it chooses the pseudo-labels and
adds its four features, as the encoder's distance does for `selftrain_encoder`, at the
cost of one 10 x 10 matrix product per pixel instead of a trained network
(docs/change.md, "Cross-date regression as the guide").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eominer.change.normalise import band_stats, sample_index

FIT_SAMPLE = 100_000  # pixels in the least-squares fit
BLOCK_ROWS = 256  # rows per block of the prediction (a full tile's block: 110 MB per date)


@dataclass(frozen=True, eq=False)
class RegressionFit:
    """Date 2 (standardised) = [date 1 (standardised), 1] @ coef; residual scales."""

    stats1: tuple[np.ndarray, np.ndarray]
    stats2: tuple[np.ndarray, np.ndarray]
    coef: np.ndarray  # (bands + 1, bands) float64, the last row the intercept
    scale: np.ndarray  # (bands,) median |residual| per band of date 2


def _standardised(x: np.ndarray, stats: tuple[np.ndarray, np.ndarray],
                  dtype: type = np.float64) -> np.ndarray:
    """(bands, n) of (bands, n) values, each band centred and scaled by `stats`."""
    m, s = (v.astype(dtype)[:, None] for v in stats)
    return (x.astype(dtype) - m) / s


def fit_regression(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, seed: int = 0,
                   stats: tuple[tuple[np.ndarray, np.ndarray], ...] | None = None,
                   ) -> RegressionFit:
    """The least-squares fit of date 2 on date 1 over a sample of the valid pixels
    (`stats`: each date's `band_stats`, when the caller has them already)."""
    from eominer.errors import ConfigError

    bands = x1.shape[0]
    idx = sample_index(valid, FIT_SAMPLE, seed)
    if idx.size < 2 * (bands + 1):
        raise ConfigError(
            f"regression needs at least {2 * (bands + 1)} valid pixels to fit {bands} bands; "
            f"the pair has {idx.size}: use method cva for such a pair"
        )
    s1, s2 = stats or (band_stats(x1, valid, seed), band_stats(x2, valid, seed))
    a = _standardised(x1.reshape(bands, -1)[:, idx], s1).T
    b = _standardised(x2.reshape(bands, -1)[:, idx], s2).T
    A = np.hstack([a, np.ones((a.shape[0], 1))])
    coef, *_ = np.linalg.lstsq(A, b, rcond=None)
    scale = np.median(np.abs(b - A @ coef), axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)  # a band predicted exactly: unit weight, no 1/0
    return RegressionFit(s1, s2, coef, scale)


def regression_distance(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, seed: int = 0,
                        stats: tuple[tuple[np.ndarray, np.ndarray], ...] | None = None,
                        ) -> np.ndarray:
    """(rows, cols) float32 length of the scaled residual of date 2; 0 outside `valid`.
    By blocks of rows, so memory stays at a few blocks of every band on a full tile."""
    fit = fit_regression(x1, x2, valid, seed, stats)
    bands, rows, cols = x1.shape
    w = (fit.coef / fit.scale).astype(np.float32)  # residual scaled per band: one product
    inv = (1.0 / fit.scale).astype(np.float32)
    out = np.zeros((rows, cols), dtype=np.float32)
    for r0 in range(0, rows, BLOCK_ROWS):
        r1 = min(rows, r0 + BLOCK_ROWS)
        a = _standardised(x1[:, r0:r1].reshape(bands, -1), fit.stats1, np.float32)
        b = _standardised(x2[:, r0:r1].reshape(bands, -1), fit.stats2, np.float32)
        res = b.T * inv - (a.T @ w[:-1] + w[-1])
        out[r0:r1] = np.sqrt(np.einsum("ij,ij->i", res, res)).reshape(r1 - r0, cols)
    out[~valid] = 0.0
    return out
