"""Cross-validation for multi-label data: label-stratified folds and per-fold scores.

Iterative stratification (Sechidis et al., ECML 2011): rarest label first, each of its
patches to the fold that still needs most of it, so every fold sees the rare labels when
the data allows. Per fold: micro F1 and macro F1 at a threshold, and mAP (mean over labels
of average precision); macro F1 and mAP only over the labels with a positive in that fold.
"""

from __future__ import annotations

import numpy as np


def iterative_folds(Y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index (0..k-1) per row of the multi-hot Y, label-stratified."""
    rng = np.random.default_rng(seed)
    n = Y.shape[0]
    fold = np.full(n, -1)
    need = np.tile(Y.sum(axis=0) / k, (k, 1)).astype(float)  # (k, labels) still wanted
    size_need = np.full(k, n / k)
    left = np.ones(n, dtype=bool)
    while left.any():
        counts = Y[left].sum(axis=0)
        if counts.max() == 0:  # rows with no label left: fill the emptiest folds
            for i in rng.permutation(np.flatnonzero(left)):
                f = int(np.argmax(size_need + rng.random(k) * 1e-6))
                fold[i], size_need[f] = f, size_need[f] - 1
            break
        lab = int(np.argmin(np.where(counts > 0, counts, np.inf)))
        for i in rng.permutation(np.flatnonzero(left & (Y[:, lab] == 1))):
            score = need[:, lab] + 1e-3 * size_need + rng.random(k) * 1e-6
            f = int(np.argmax(score))
            fold[i] = f
            need[f] -= Y[i]
            size_need[f] -= 1
            left[i] = False
    return fold


def fold_metrics(Y: np.ndarray, P: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, f1_score

    pred = (threshold <= P).astype(np.uint8)
    present = Y.sum(axis=0) > 0
    micro = f1_score(Y, pred, average="micro", zero_division=0)
    macro = f1_score(Y[:, present], pred[:, present], average="macro", zero_division=0)
    ap = [average_precision_score(Y[:, j], P[:, j]) for j in np.flatnonzero(present)]
    return {"micro_f1": float(micro), "macro_f1": float(macro), "mAP": float(np.mean(ap))}
