"""Cold start: questions to ask before any label exists.

- `diverse_sample`: cluster representatives (k-means on a subsample, then the patch
  nearest each centre), so the first batch covers the scope's variety;
- `find_similar`: start from one example patch ("find more like this"): its nearest
  neighbours in feature space.
"""

from __future__ import annotations

import numpy as np

from eominer.learning.models import similar_to


def diverse_sample(X: np.ndarray, n: int, *, exclude: np.ndarray | None = None,
                   seed: int = 0, max_fit: int = 20_000) -> np.ndarray:
    """Row indices of `n` cluster representatives (nearest real patch to each centre)."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    avail = np.ones(len(X), bool)
    if exclude is not None and len(exclude):
        avail[exclude] = False
    pool = np.flatnonzero(avail)
    if len(pool) <= n:
        return pool.astype(np.int64)
    fit_rows = np.sort(rng.choice(pool, size=min(max_fit, len(pool)), replace=False))
    F = X[fit_rows]
    km = KMeans(n_clusters=n, n_init=1, random_state=seed, max_iter=50).fit(F)
    C = km.cluster_centers_.astype(np.float32)
    d = (np.einsum("ij,ij->i", F, F)[:, None] + np.einsum("ij,ij->i", C, C)[None, :]
         - 2.0 * F @ C.T)
    out: list[int] = []
    for j in np.argsort(np.bincount(km.labels_, minlength=n))[::-1]:  # big clusters first
        order = np.argsort(d[:, j])
        for i in order[:50].tolist():
            if int(fit_rows[i]) not in out:
                out.append(int(fit_rows[i]))
                break
    return np.asarray(out, np.int64)


def find_similar(X: np.ndarray, row: int, n: int, sq_norms: np.ndarray | None = None,
                 exclude: np.ndarray | None = None) -> np.ndarray:
    """The `n` nearest patches to patch `row` (itself and `exclude` left out)."""
    skip = {int(row)} | set(np.asarray(exclude if exclude is not None else [], int).tolist())
    idx, _ = similar_to(X, X[row], n + len(skip), sq_norms)
    return np.asarray([i for i in idx.tolist() if i not in skip][:n], np.int64)
