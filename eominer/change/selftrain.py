"""Self-trained change map (`selftrain`): spatial context + a logistic regression taught by
the pair's own confident pixels. Chosen by measurement on OSCD (docs/change.md).

1. Per-band differences d_i of the two dates, each date standardised on its own valid
   pixels (`normalise.band_stats`), or, with `normalise="irmad"`, date 2 regressed onto
   date 1 on IR-MAD's invariant pixels (`normalise.radiometric_normalisation`) and both
   scaled by date 1's statistics. m = |d| (the CVA magnitude).
2. Unsupervised seed map: m averaged over three scales of masked Gaussian smoothing
   (sigma 1, 2, 4 px). OSCD's labels are objects (buildings, roads): single-pixel
   differences are mostly noise, their neighbourhood mean is not.
3. Pseudo-labels: the top 1 % of the seed map (valid pixels) are "change", the bottom
   80 % "no change"; the 20 % between is left out (not confident either way). At most
   10,000 of each are drawn (seeded), from up to 64 random 256 x 256 blocks on a large
   scene, so training cost does not grow with the scene.
4. Features per pixel: d_i, |d_i|, m, the masked Gaussian means of d_i and of m at the
   three scales, and date 1's standardised bands (what the ground was). A standardised
   L2 logistic regression (C = 0.1, scikit-learn) is fitted on the pseudo-labels.
5. The model is linear in the features and every smoothed feature is a linear filter of a
   per-pixel quantity, so its decision over the whole scene needs one filter per scale of
   the weighted sum of the d_i (not one per band): a full tile stays within minutes.
6. P(change) is smoothed once more (masked Gaussian, sigma 1) and thresholded by Otsu
   (`threshold.otsu_threshold`): no label is used anywhere.

With a `guide` (method `selftrain_encoder`: the `encoder` method's feature distance of the
same pair), the seed map of step 2 is the guide's masked mean over the three scales
instead of m's, and the guide and its three masked means are four more features of
step 4 (still linear filters of one per-pixel map, so step 5 is unchanged). The encoder's
distance finds the small, scattered changes that the CVA seed misses (bordeaux,
saclay_e); the logistic regression on the CVA features adds their precision.

Masked pixels (nodata, cloud) take no part in any statistic, seed, sample or threshold:
the masked smoothing divides by the smoothed mask, so they do not leak zeros into their
neighbours either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eominer.change.normalise import band_stats, radiometric_normalisation, sample_index

SCALES: tuple[float, ...] = (1.0, 2.0, 4.0)  # Gaussian sigmas of the context, px
POST_SIGMA = 1.0  # smoothing of the final probability
SEED_HIGH = 0.99  # seed-map quantile above which a pixel is a "change" pseudo-label
SEED_LOW = 0.80  # and below which it is "no change"
PER_CLASS = 10_000  # pseudo-labels drawn per class
BLOCK = 256  # training blocks on large scenes
MAX_BLOCKS = 64
C = 0.1  # inverse L2 strength of the logistic regression
TRUNCATE = 4.0  # Gaussian kernels reach 4 sigma (scipy's default)
NORMALISE_MODES: tuple[str, ...] = ("standardise", "irmad")


def _margin() -> int:
    return int(TRUNCATE * max(SCALES) + 0.5)


def masked_smooth(x: np.ndarray, valid: np.ndarray, sigma: float,
                  den: np.ndarray | None = None) -> np.ndarray:
    """Gaussian mean of `x` over valid pixels only: G(x * valid) / G(valid) (float32;
    0 where no valid pixel is near). Linear in `x`, so a weighted sum of smoothed maps is
    the smoothed weighted sum."""
    from scipy.ndimage import gaussian_filter

    if valid.all():  # G(valid) is 1 (to float32 rounding): one filter instead of two
        return gaussian_filter(x.astype(np.float32, copy=False), sigma, truncate=TRUNCATE)
    w = valid.astype(np.float32)
    if den is None:
        den = gaussian_filter(w, sigma, truncate=TRUNCATE)
    num = gaussian_filter(np.where(valid, x, np.float32(0)).astype(np.float32, copy=False),
                          sigma, truncate=TRUNCATE)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 1e-6, num / np.maximum(den, 1e-6), np.float32(0))
    return out.astype(np.float32, copy=False)


def _date_stats(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, normalise: str,
                seed: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(median, scale) per band of each date, so that (x - median) / scale are the
    compared values. 'irmad': date 2 mapped onto date 1 (gain g, offset o), then date 1's
    scale: (g x2 + o - m1) / s1 = (x2 - (m1 - o) / g) / (s1 / g)."""
    if normalise not in NORMALISE_MODES:
        from eominer.errors import ConfigError

        raise ConfigError(f"unknown normalisation {normalise!r}: expected one of "
                          f"{', '.join(NORMALISE_MODES)}")
    s1 = band_stats(x1, valid, seed)
    if normalise == "standardise":
        return s1, band_stats(x2, valid, seed)
    fit = radiometric_normalisation(x1, x2, valid, seed=seed)
    g = fit.gain.astype(np.float32)
    return s1, ((s1[0] - fit.offset.astype(np.float32)) / g, s1[1] / g)


def _band_pair(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
               stats: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
               i: int) -> tuple[np.ndarray, np.ndarray]:
    """Date 1's standardised band i and the difference d_i (0 outside `valid`)."""
    (m1, s1), (m2, s2) = stats
    a = (x1[i].astype(np.float32) - m1[i]) * (np.float32(1.0) / s1[i])
    b = (x2[i].astype(np.float32) - m2[i]) * (np.float32(1.0) / s2[i])
    b = a - b
    a[~valid] = 0.0
    b[~valid] = 0.0
    return a, b


def feature_names(bands: int, guide: bool = False) -> list[str]:
    names = [f"d{i}" for i in range(bands)] + [f"absd{i}" for i in range(bands)] + ["m"]
    for s in SCALES:
        names += [f"d{i}_s{s:g}" for i in range(bands)] + [f"m_s{s:g}"]
    names += [f"a{i}" for i in range(bands)]
    return names + (["g"] + [f"g_s{s:g}" for s in SCALES] if guide else [])


def context_features(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
                     stats: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
                     guide: np.ndarray | None = None) -> np.ndarray:
    """(rows * cols, n_features) float32 features of a (small) scene or block, in
    `feature_names` order (`guide`: the same block of the guide map). Training uses it on
    blocks; `selftrain_probability` computes the same decision without materialising it."""
    bands = x1.shape[0]
    a, d = zip(*(_band_pair(x1, x2, valid, stats, i) for i in range(bands)))
    d_arr = np.stack(d)
    m = np.sqrt((d_arr * d_arr).sum(axis=0))
    cols = [*d, *(np.abs(di) for di in d), m]
    from scipy.ndimage import gaussian_filter

    for s in SCALES:
        den = gaussian_filter(valid.astype(np.float32), s, truncate=TRUNCATE)
        cols += [masked_smooth(di, valid, s, den) for di in d] + [masked_smooth(m, valid, s, den)]
    cols += list(a)
    if guide is not None:
        g = np.where(valid, guide, np.float32(0)).astype(np.float32, copy=False)
        cols += [g] + [masked_smooth(g, valid, s) for s in SCALES]
    return np.stack([c.ravel() for c in cols], axis=1)


def mask_weights(valid: np.ndarray) -> list[np.ndarray | None]:
    """G_s(valid) per scale of SCALES: the denominators of `masked_smooth`, computed once
    for the seed map and the decision (None when every pixel is valid: not needed)."""
    from scipy.ndimage import gaussian_filter

    if valid.all():
        return [None] * len(SCALES)
    w = valid.astype(np.float32)
    return [gaussian_filter(w, s, truncate=TRUNCATE) for s in SCALES]


def seed_map(m: np.ndarray, valid: np.ndarray,
             dens: list[np.ndarray] | None = None) -> np.ndarray:
    """The unsupervised map that teaches the model: m's masked mean over SCALES."""
    dens = dens if dens is not None else mask_weights(valid)
    out = np.zeros(m.shape, dtype=np.float32)
    for s, den in zip(SCALES, dens):
        out += masked_smooth(m, valid, s, den)
    out /= np.float32(len(SCALES))
    return out


def _blocks(shape: tuple[int, int], seed: int) -> list[tuple[int, int, int, int]]:
    """Training windows (r0, r1, c0, c1): the whole scene when it is small, else up to
    MAX_BLOCKS random BLOCK x BLOCK windows (seeded)."""
    rows, cols = shape
    if rows * cols <= MAX_BLOCKS * BLOCK * BLOCK:
        return [(0, rows, 0, cols)]
    rng = np.random.default_rng(seed)
    r0 = rng.integers(0, max(1, rows - BLOCK), MAX_BLOCKS)
    c0 = rng.integers(0, max(1, cols - BLOCK), MAX_BLOCKS)
    return [(int(r), int(min(rows, r + BLOCK)), int(c), int(min(cols, c + BLOCK)))
            for r, c in zip(r0, c0)]


@dataclass(frozen=True, eq=False)
class SelfTrained:
    """What a run learnt: the fitted model, the pseudo-label levels and counts."""

    model: object  # sklearn Pipeline(StandardScaler, LogisticRegression)
    high: float
    low: float
    n_change: int
    n_no_change: int

    def weights(self) -> tuple[np.ndarray, float]:
        """Decision function w . x + b on raw features (the scaler folded in)."""
        scaler, lr = self.model.steps[0][1], self.model.steps[1][1]
        w = lr.coef_[0] / scaler.scale_
        return w.astype(np.float64), float(lr.intercept_[0] - (w * scaler.mean_).sum())


def pseudo_labels(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
                  stats: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
                  seed_values: np.ndarray, seed: int = 0,
                  guide: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The training set of step 3: (X float64, y int8, high, low), at most PER_CLASS
    pixels of each kind, with `context_features` of their training blocks."""
    from eominer.errors import ConfigError

    sample = seed_values.ravel()[sample_index(valid, seed=seed)]
    high, low = (float(v) for v in np.quantile(sample, [SEED_HIGH, SEED_LOW]))
    margin = _margin()
    rows, cols = valid.shape
    feats, labels = [], []
    rng = np.random.default_rng(seed)
    for r0, r1, c0, c1 in _blocks(valid.shape, seed):
        R0, R1 = max(0, r0 - margin), min(rows, r1 + margin)
        C0, C1 = max(0, c0 - margin), min(cols, c1 + margin)
        v = valid[R0:R1, C0:C1]
        f = context_features(x1[:, R0:R1, C0:C1], x2[:, R0:R1, C0:C1], v, stats,
                             None if guide is None else guide[R0:R1, C0:C1])
        inner = np.zeros(v.shape, dtype=bool)
        inner[r0 - R0:r1 - R0, c0 - C0:c1 - C0] = True
        s = seed_values[R0:R1, C0:C1]
        for label, mask in ((1, v & inner & (s >= high)), (0, v & inner & (s <= low))):
            idx = np.flatnonzero(mask.ravel())
            feats.append(f[idx])
            labels.append(np.full(idx.size, label, np.int8))
    X, y = np.concatenate(feats), np.concatenate(labels)
    keep = []
    for label in (1, 0):
        idx = np.flatnonzero(y == label)
        keep.append(rng.choice(idx, PER_CLASS, replace=False) if idx.size > PER_CLASS else idx)
    n1, n0 = keep[0].size, keep[1].size
    if n1 < 10 or n0 < 10:
        raise ConfigError(
            f"selftrain needs confident pixels of both kinds; the pair has {n1} 'change' and "
            f"{n0} 'no change' pseudo-labels (too few valid pixels, or a flat scene): use "
            "method cva for such a pair"
        )
    idx = np.concatenate(keep)
    return X[idx].astype(np.float64), y[idx], high, low


def fit_selftrain(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
                  stats: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
                  seed_values: np.ndarray, seed: int = 0,
                  guide: np.ndarray | None = None) -> SelfTrained:
    """Pseudo-labels from `seed_values` (quantiles over the valid pixels) and the fitted
    logistic regression (see module doc; `guide`: the extra feature map, if any)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, high, low = pseudo_labels(x1, x2, valid, stats, seed_values, seed, guide)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    model.fit(X, y)
    return SelfTrained(model, high, low, int((y == 1).sum()), int((y == 0).sum()))


def _magnitude(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
               stats: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
               ) -> np.ndarray:
    """m = |d|, the CVA magnitude of the standardised differences (0 outside `valid`)."""
    m = np.zeros(valid.shape, dtype=np.float32)
    for i in range(x1.shape[0]):
        _, d = _band_pair(x1, x2, valid, stats, i)
        d *= d
        m += d
    return np.sqrt(m, out=m)


def _seed_block(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
                stats: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
                guide: np.ndarray | None) -> np.ndarray:
    """The seed map of a block: the guide's masked mean over SCALES, or m's."""
    base = _magnitude(x1, x2, valid, stats) if guide is None else guide
    return seed_map(base, valid)


def _probability_block(x1: np.ndarray, x2: np.ndarray, valid: np.ndarray,
                       stats: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
                       w: np.ndarray, bias: float, guide: np.ndarray | None) -> np.ndarray:
    """P(change) of a block (NaN outside `valid`) from the fitted weights: the decision
    w . features + bias without materialising the features (module doc, step 5)."""
    bands, ns = x1.shape[0], len(SCALES)
    w_d, w_abs, w_m = w[:bands], w[bands:2 * bands], w[2 * bands]
    w_s = w[2 * bands + 1:2 * bands + 1 + ns * (bands + 1)].reshape(ns, bands + 1)
    w_a = w[2 * bands + 1 + ns * (bands + 1):2 * bands + 1 + ns * (bands + 1) + bands]
    m = _magnitude(x1, x2, valid, stats)
    z = np.full(valid.shape, np.float32(bias), dtype=np.float32)
    z += np.float32(w_m) * m
    comb = [np.float32(w_s[k, bands]) * m for k in range(ns)]  # the smoothed magnitude
    del m
    if guide is not None:  # the guide and its smoothed copies: the last 1 + ns weights
        w_g = w[-(1 + ns):]
        z += np.float32(w_g[0]) * guide
        for k in range(ns):
            comb[k] += np.float32(w_g[1 + k]) * guide
    for i in range(bands):
        a, d = _band_pair(x1, x2, valid, stats, i)
        z += np.float32(w_a[i]) * a
        del a
        z += np.float32(w_d[i]) * d
        for k in range(ns):
            comb[k] += np.float32(w_s[k, i]) * d
        np.abs(d, out=d)
        z += np.float32(w_abs[i]) * d
    for k, s in enumerate(SCALES):
        z += masked_smooth(comb[k], valid, s)
        comb[k] = None  # type: ignore[call-overload]
    np.clip(z, -50, 50, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    z += 1
    np.reciprocal(z, out=z)
    p = masked_smooth(z, valid, POST_SIGMA)
    p[~valid] = np.nan
    return p


def selftrain_probability(
    x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, seed: int = 0,
    normalise: str = "standardise", guide: np.ndarray | None = None, threads: int = 1,
    stats: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[np.ndarray, SelfTrained]:
    """(rows, cols) float32 P(change) (NaN outside `valid`) and the fitted model.
    By row blocks with a halo that covers every filter's reach (`rowblocks`), so the
    result equals the whole-scene computation, memory stays at a few blocks besides the
    inputs, and `threads` blocks run at once.
    `guide`: a (rows, cols) change distance of the same pair (the encoder's) that gives
    the seed map and four more features (module doc); None: the CVA seed alone.
    `stats`: the (median, scale) per band of each date when the caller has them (with
    `normalise="standardise"`, each date's `band_stats`)."""
    from eominer.change.rowblocks import map_row_blocks

    stats = stats or _date_stats(x1, x2, valid, normalise, seed)
    if guide is not None:
        if guide.shape != valid.shape:
            from eominer.errors import ConfigError

            raise ConfigError(f"selftrain guide map is {guide.shape}, the pair {valid.shape}")
        guide = np.where(valid, guide, np.float32(0)).astype(np.float32, copy=False)

    def rows(a0: int, a1: int) -> tuple[
            np.ndarray, np.ndarray, np.ndarray,
            tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]]:
        return x1[:, a0:a1], x2[:, a0:a1], valid[a0:a1], stats

    def guide_rows(a0: int, a1: int) -> np.ndarray | None:
        return None if guide is None else guide[a0:a1]

    reach = _margin()
    seeds = map_row_blocks(lambda a0, a1: _seed_block(*rows(a0, a1), guide_rows(a0, a1)),
                           valid.shape, reach, threads)
    fitted = fit_selftrain(x1, x2, valid, stats, seeds, seed, guide)
    del seeds
    w, bias = fitted.weights()
    # the final smoothing reads the decision up to its own reach beyond the block
    reach += int(TRUNCATE * POST_SIGMA + 0.5)
    p = map_row_blocks(
        lambda a0, a1: _probability_block(*rows(a0, a1), w, bias, guide_rows(a0, a1)),
        valid.shape, reach, threads)
    return p, fitted
