"""Iteratively reweighted multivariate alteration detection (IR-MAD; Nielsen 2007).

MAD variates are differences of the canonical variates of the two dates (canonical
correlation analysis), so they are invariant to any affine transform of either date's
bands (gain, offset, linear atmospheric effects). Each iteration reweights the pixels by
their probability of no change (the chi-square survival function of the sum of squared
standardised MAD variates), so the statistics converge on the unchanged background.
The change distance is the square root of that chi-square statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eominer.change.normalise import sample_index

FIT_SAMPLE = 200_000
MAX_ITER = 30  # reweighting rounds at most
TOL = 1e-5  # stop when no canonical correlation moves more than this


@dataclass(frozen=True, eq=False)
class MADTransform:
    """Fitted IR-MAD: centring, canonical vectors and MAD variances."""

    mean1: np.ndarray
    mean2: np.ndarray
    a: np.ndarray  # (bands, bands): canonical vectors of date 1, columns
    b: np.ndarray
    variance: np.ndarray  # variance of each MAD variate on the no-change background
    rho: np.ndarray  # canonical correlations
    iterations: int

    def chi2(self, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        """Sum of squared standardised MAD variates for (n, bands) pixel rows."""
        mad = (x1 - self.mean1) @ self.a - (x2 - self.mean2) @ self.b
        return np.sum(mad * mad / self.variance, axis=1)


def fit_irmad(
    X: np.ndarray, Y: np.ndarray, max_iter: int = MAX_ITER, tol: float = TOL,
) -> MADTransform:
    """Fit IR-MAD on (n, bands) float arrays of co-registered valid pixels."""
    from scipy.linalg import eigh
    from scipy.stats import chi2

    X = X.astype(np.float64)
    Y = Y.astype(np.float64)
    n, p = X.shape
    w = np.ones(n)
    rho_old = np.zeros(p)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        ws = w.sum()
        m1 = w @ X / ws
        m2 = w @ Y / ws
        Xc, Yc = X - m1, Y - m2
        sxx = (Xc * w[:, None]).T @ Xc / ws + np.eye(p) * 1e-9
        syy = (Yc * w[:, None]).T @ Yc / ws + np.eye(p) * 1e-9
        sxy = (Xc * w[:, None]).T @ Yc / ws
        syy_inv = np.linalg.inv(syy)
        # generalised symmetric eigenproblem: Sxy Syy^-1 Syx a = rho^2 Sxx a, a' Sxx a = 1
        r2, a = eigh(sxy @ syy_inv @ sxy.T, sxx)
        r2 = np.clip(r2, 0.0, 1.0 - 1e-12)
        rho = np.sqrt(r2)
        b = syy_inv @ sxy.T @ a / np.maximum(rho, 1e-12)  # b' Syy b = 1, corr(a'x, b'y) = rho
        var = np.maximum(2.0 * (1.0 - rho), 1e-12)
        mad = Xc @ a - Yc @ b
        z = np.sum(mad * mad / var, axis=1)
        w = chi2.sf(z, p)
        if np.max(np.abs(rho - rho_old)) < tol:
            break
        rho_old = rho
    return MADTransform(m1, m2, a, b, var, rho, iterations)


def irmad_distance(
    x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, seed: int = 0, block_rows: int = 512,
) -> np.ndarray:
    """(rows, cols) float32 sqrt of the IR-MAD chi-square statistic; 0 outside `valid`.
    Fitted on a seeded sample of at most FIT_SAMPLE valid pixels (ample for the
    bands x bands statistics), applied block by block."""
    bands, rows, cols = x1.shape
    idx = sample_index(valid, FIT_SAMPLE, seed)
    X = x1.reshape(bands, -1)[:, idx].T
    Y = x2.reshape(bands, -1)[:, idx].T
    model = fit_irmad(X, Y)
    out = np.zeros((rows, cols), dtype=np.float32)
    for r0 in range(0, rows, block_rows):
        r1 = min(rows, r0 + block_rows)
        a = x1[:, r0:r1].reshape(bands, -1).T.astype(np.float64)
        b = x2[:, r0:r1].reshape(bands, -1).T.astype(np.float64)
        out[r0:r1] = np.sqrt(model.chi2(a, b)).reshape(r1 - r0, cols)
    out[~valid] = 0.0
    return out
