"""Cross-validated comparison: S2 alone, S1 alone, feature fusion, decision fusion.

Repeated K-fold over the paired patches with iterative stratification (see `crossval`:
every fold sees the rare labels when the data allows). Per fold: micro F1 and macro F1 at
threshold 0.5, and mAP; macro F1 and mAP only over the labels with a positive in that
test fold. S2 and S1 descriptors are the registered 's2stats' and 's1stats' (through
eominer.fusion.features), computed for all patches as one batch. Reported as mean and
standard deviation over all folds and repeats, with the paired difference to S2 alone.

Folds of one dataset share patches, so the spread understates the real uncertainty; with
a few dozen patches from a handful of tiles (neighbouring patches look alike) only large
differences mean anything. `Report.caveats` says so with the numbers of this run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from eominer.errors import FeatureError
from eominer.evaluation.bigearthnet import Dataset
from eominer.evaluation.crossval import fold_metrics, iterative_folds
from eominer.fusion import cloud
from eominer.fusion.decision import DecisionFusion, FeatureFusion
from eominer.fusion.features import dataset_descriptors, s2_descriptors
from eominer.fusion.labels import Vocabulary
from eominer.fusion.models import MultiLabelLogistic, PriorBaseline

if TYPE_CHECKING:
    from eominer.fusion.network import TwoBranchNet


@dataclass(frozen=True)
class Method:
    name: str
    make: Callable[[int], object] | None  # n_s2 -> estimator (None for the network)
    columns: str                   # "s2", "s1", "both" (descriptors) or "raw" (the network)
    cloudy_test: bool = False      # the test fold's S2 is covered by cloud


def network_methods(include_cloudy: bool = True) -> list[Method]:
    """The two-branch network (eominer.fusion.network), trained per fold: slow."""
    out = [Method("two-branch network", None, "raw")]
    if include_cloudy:
        out.append(Method("two-branch network, S2 clouded", None, "raw", True))
    return out


def default_methods(include_cloudy: bool = True) -> list[Method]:
    methods = [
        Method("prior (no image)", lambda n: PriorBaseline(), "s2"),
        Method("S2 alone", lambda n: MultiLabelLogistic(), "s2"),
        Method("S1 alone", lambda n: MultiLabelLogistic(), "s1"),
        Method("feature fusion", lambda n: FeatureFusion(n), "both"),
        Method("decision fusion (product)", lambda n: DecisionFusion(n, "product"), "both"),
        Method("decision fusion (stack)", lambda n: DecisionFusion(n, "stack"), "both"),
    ]
    if include_cloudy:
        methods += [
            Method("S2 alone, S2 clouded", lambda n: MultiLabelLogistic(), "s2", True),
            Method("feature fusion, S2 clouded", lambda n: FeatureFusion(n), "both", True),
            Method("decision fusion (product), S2 clouded",
                   lambda n: DecisionFusion(n, "product"), "both", True),
        ]
    return methods


@dataclass
class Report:
    n_patches: int
    vocabulary: Vocabulary
    label_counts: dict[str, int]
    k: int
    repeats: int
    scores: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    unpaired: int = 0

    def summary(self) -> list[dict[str, object]]:
        rows = []
        ref = self.scores.get("S2 alone")
        for name, folds in self.scores.items():
            row: dict[str, object] = {"method": name, "folds": len(folds)}
            for m in ("micro_f1", "macro_f1", "mAP"):
                v = np.array([f[m] for f in folds])
                row[m] = f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"
            if ref is not None and name != "S2 alone":
                d = np.array([f["micro_f1"] for f in folds]) - np.array(
                    [f["micro_f1"] for f in ref])
                row["Δ micro F1 vs S2"] = f"{d.mean():+.3f} ± {d.std(ddof=1):.3f}"
                row["folds better"] = f"{int((d > 0).sum())}/{len(d)}"
            else:
                row["Δ micro F1 vs S2"] = ""
                row["folds better"] = ""
            rows.append(row)
        return rows

    def caveats(self) -> list[str]:
        rare = [n for n, c in self.label_counts.items() if c < self.k]
        test = self.n_patches / self.k
        return [
            f"{self.n_patches} paired patches, {len(self.vocabulary)} labels present; "
            f"each test fold holds ~{test:.0f} patches, so one patch moves micro F1 by several "
            "points.",
            f"{self.k}-fold x {self.repeats} repeats: folds share patches, so ± (std over folds) "
            "understates the uncertainty; it is not a confidence interval.",
            f"labels with fewer positives than folds ({', '.join(rare) or 'none'}) cannot be "
            "learned in every fold; macro F1 and mAP over them are noise.",
            "neighbouring patches of one tile look alike and land in different folds, which "
            "flatters every method; differences below ~2 std are not evidence either way.",
            "the clouded rows cover the test fold's S2 with a synthetic cloud: they check the "
            "S1 fall-back (fusion should match S1 alone, S2 alone collapses), not real clouds.",
        ]


def _cloudy_s2_descriptors(dataset: Dataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s2 = np.stack([cloud.cloud_over(dataset.patches[i].s2, 1.0, seed=int(i)) for i in rows])
    usable = np.asarray([cloud.usable(cloud.valid_fraction(x)) for x in s2])
    # what a pipeline without the cloud check would feed the S2 model
    return s2_descriptors(np.where(s2 > 0, s2, np.float32(1e-4))), usable


def _fit_network(dataset: Dataset, vocab: Vocabulary, Y: np.ndarray, tr: np.ndarray,
                 epochs: int, seed: int) -> TwoBranchNet:
    from eominer.fusion.network import TwoBranchNet, stack_patches

    s2, s1 = stack_patches([dataset.patches[i] for i in tr])
    return TwoBranchNet(vocab, epochs=epochs, seed=seed).fit(s2, s1, Y[tr])


def evaluate(
    dataset: Dataset, k: int = 3, repeats: int = 5, seed: int = 0,
    methods: Sequence[Method] | None = None,
    progress: Callable[[str], None] | None = None, network_epochs: int = 30,
) -> Report:
    n = len(dataset)
    if n < 2 * k:
        raise FeatureError(f"{n} paired patches are too few for {k}-fold cross-validation "
                           f"(need at least {2 * k})")
    vocab = Vocabulary.present(dataset.labels)
    Y = vocab.encode(dataset.labels)
    X2, X1 = dataset_descriptors(dataset.patches)
    counts = {name: int(c) for name, c in zip(vocab.names, Y.sum(axis=0))}
    report = Report(n, vocab, counts, k, repeats, unpaired=len(dataset.unpaired))
    methods = list(methods or default_methods())
    cloudy_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for r in range(repeats):
        folds = iterative_folds(Y, k, seed + r)
        for f in range(k):
            tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            if len(te) == 0:
                continue
            net = None
            for m in methods:
                if m.columns == "raw":
                    from eominer.fusion.network import stack_patches

                    if net is None:  # one network per fold serves the clear and cloudy rows
                        net = _fit_network(dataset, vocab, Y, tr, network_epochs, seed + r)
                    s2te, s1te = stack_patches([dataset.patches[i] for i in te])
                    if m.cloudy_test:
                        s2te = np.stack([cloud.cloud_over(x, 1.0, seed=int(i))
                                         for x, i in zip(s2te, te)])
                    ok = np.array([cloud.usable(cloud.valid_fraction(x)) for x in s2te])
                    P = net.predict_proba(s2te, s1te, s2_usable=ok)
                    report.scores.setdefault(m.name, []).append(fold_metrics(Y[te], P))
                    continue
                X2te, usable = X2[te], np.ones(len(te), dtype=bool)
                if m.cloudy_test:
                    key = hash(te.tobytes())
                    if key not in cloudy_cache:
                        cloudy_cache[key] = _cloudy_s2_descriptors(dataset, te)
                    X2te, usable = cloudy_cache[key]
                est = m.make(X2.shape[1])
                if m.columns == "s2":
                    est.fit(X2[tr], Y[tr])
                    P = est.predict_proba(X2te)
                elif m.columns == "s1":
                    est.fit(X1[tr], Y[tr])
                    P = est.predict_proba(X1[te])
                else:
                    est.fit(np.hstack([X2[tr], X1[tr]]), Y[tr])
                    P = est.predict_proba(np.hstack([X2te, X1[te]]), s2_usable=usable)
                report.scores.setdefault(m.name, []).append(fold_metrics(Y[te], P))
            if progress:
                progress(f"repeat {r + 1}/{repeats}, fold {f + 1}/{k}")
    return report
