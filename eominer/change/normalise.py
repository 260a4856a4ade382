"""Per-date band standardisation and the distance -> probability mapping all methods share.

Standardising each band of each date on its own valid pixels (robust: median and scaled
MAD) removes what differs uniformly between the dates (illumination, atmosphere, gain):
the change methods then compare what is left.

A change distance becomes a probability by one rule for every method, so their maps are
comparable: with m and s the median and scaled MAD of the distance over the valid area
(most of a scene does not change, so they describe the no-change population),
z = (d - m) / s and p = 1 / (1 + exp(-(z - Z_MID) / Z_SCALE)). A pixel Z_MID robust standard
deviations above the typical distance has p = 0.5; p is monotonic in d, so the area under
the precision-recall curve is the distance's own.
"""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826  # scaled MAD estimates the standard deviation of a normal population
Z_MID = 3.0
Z_SCALE = 1.0
SAMPLE = 1_000_000  # pixels drawn to estimate statistics on large scenes
SAMPLE_BLOCK = 4_000_000  # pixels listed at once while a sample's ranks are mapped to pixels


def sample_index(valid: np.ndarray, n: int = SAMPLE, seed: int = 0) -> np.ndarray:
    """Sorted flat indexes of at most `n` valid pixels (all of them when fewer), seeded:
    the valid pixels of ranks drawn without replacement. The ranks are mapped to pixels by
    blocks of rows, so a full tile (120 M pixels) is not listed as 1 GB of int64 indexes
    to draw 1 M of them (0.3 s instead of 2.8 s)."""
    flat = valid.ravel()
    count = int(np.count_nonzero(flat))
    if count <= n:
        return np.flatnonzero(flat)
    ranks = np.sort(np.random.default_rng(seed).choice(count, n, replace=False))
    rows = valid.reshape(valid.shape[0], -1)
    width = rows.shape[1]
    step = max(1, SAMPLE_BLOCK // max(1, width))  # rows per block
    out = np.empty(n, dtype=np.int64)
    done, seen = 0, 0  # ranks placed; valid pixels before the block
    for r0 in range(0, rows.shape[0], step):
        block = np.flatnonzero(rows[r0:r0 + step])
        upto = int(np.searchsorted(ranks, seen + block.size, side="left"))
        out[done:upto] = block[ranks[done:upto] - seen] + r0 * width
        done, seen = upto, seen + block.size
    return out


def robust_location_scale(values: np.ndarray) -> tuple[float, float]:
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med))) * MAD_TO_SIGMA
    if not np.isfinite(mad) or mad <= 1e-12:
        mad = float(np.std(values)) or 1.0
    return med, mad


def band_stats(x: np.ndarray, valid: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-band robust (median, scale) on a seeded sample of valid pixels."""
    idx = sample_index(valid, seed=seed)
    stats = [robust_location_scale(x[i].ravel()[idx].astype(np.float64))
             for i in range(x.shape[0])]
    return (np.array([m for m, _ in stats], dtype=np.float32),
            np.array([s for _, s in stats], dtype=np.float32))


def apply_stats(
    x: np.ndarray, valid: np.ndarray, stats: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """(bands, rows, cols) float32 standardised with `stats`; invalid pixels are 0 (the
    centre), so convolutions near them see no spikes. Works on any block of a scene."""
    med, scale = stats
    out = np.empty(x.shape, dtype=np.float32)
    for i in range(x.shape[0]):
        np.subtract(x[i], med[i], out=out[i], casting="unsafe")
        out[i] *= np.float32(1.0) / scale[i]
        out[i][~valid] = 0.0
    return out


def standardise(x: np.ndarray, valid: np.ndarray, seed: int = 0) -> np.ndarray:
    """`apply_stats(x, valid, band_stats(x, valid))`: each band of one date centred and
    scaled on its own valid pixels. Any numeric dtype (DN or reflectance: same result)."""
    return apply_stats(x, valid, band_stats(x, valid, seed))


def to_probability(distance: np.ndarray, valid: np.ndarray, seed: int = 0) -> np.ndarray:
    """Change probability in [0, 1] on the valid area, NaN elsewhere (see module doc)."""
    idx = sample_index(valid, seed=seed)
    med, scale = robust_location_scale(distance.ravel()[idx])
    z = (distance.astype(np.float32) - np.float32(med)) * np.float32(1.0 / scale)
    p = 1.0 / (1.0 + np.exp(-(np.clip(z, -50, 50) - Z_MID) / Z_SCALE))
    p = p.astype(np.float32)
    p[~valid] = np.nan
    return p


# --- relative radiometric normalisation (date 2 onto date 1) -------------------------------
INVARIANT_P = 0.95  # IR-MAD no-change probability above which a pixel is invariant
INVARIANT_MIN_SHARE = 0.05  # else the most invariant 5 % of the sample


class Normalisation:
    """Per-band linear map of date 2 onto date 1, x1 ~ gain * x2 + offset, fitted by
    reduced-major-axis regression on pixels that IR-MAD finds unchanged (both dates are noisy,
    so neither is the regressor)."""

    def __init__(self, gain: np.ndarray, offset: np.ndarray, n_invariant: int) -> None:
        self.gain, self.offset, self.n_invariant = gain, offset, n_invariant

    def apply(self, x2: np.ndarray) -> np.ndarray:
        g = self.gain.astype(np.float32)[:, None, None]
        return x2.astype(np.float32) * g + self.offset.astype(np.float32)[:, None, None]


def radiometric_normalisation(
    x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, seed: int = 0,
) -> Normalisation:
    """Fit IR-MAD on a seeded sample of valid pixels (it is invariant to any affine change
    of either date, so its no-change pixels do not depend on the radiometry being
    corrected), keep those with no-change probability > INVARIANT_P (at least the
    INVARIANT_MIN_SHARE most invariant), and regress each band of date 2 onto date 1."""
    from scipy.stats import chi2

    from eominer.change.irmad import FIT_SAMPLE, fit_irmad

    bands = x1.shape[0]
    idx = sample_index(valid, FIT_SAMPLE, seed)
    X = x1.reshape(bands, -1)[:, idx].T.astype(np.float64)
    Y = x2.reshape(bands, -1)[:, idx].T.astype(np.float64)
    z = fit_irmad(X, Y).chi2(X, Y)
    inv = chi2.sf(z, bands) > INVARIANT_P
    if inv.sum() < INVARIANT_MIN_SHARE * z.size:
        inv = z <= np.quantile(z, INVARIANT_MIN_SHARE)
    gain, offset = np.ones(bands), np.zeros(bands)
    for i in range(bands):
        a, b = X[inv, i], Y[inv, i]
        sa, sb = a.std(), b.std()
        if sb <= 0:
            continue
        cov = float(np.mean((a - a.mean()) * (b - b.mean())))
        # reduced major axis: slope = sd ratio, sign of covariance
        gain[i] = (sa / sb) * (1.0 if cov >= 0 else -1.0)
        offset[i] = a.mean() - gain[i] * b.mean()
    return Normalisation(gain, offset, int(inv.sum()))
