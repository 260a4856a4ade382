"""Saved classifiers: a session's fitted model, taken out of its session so that it can
score any patch of the archive (`eominer apply`), in any process, on products ingested
after the session.

    mid = session.save_model()            # also done by session.publish()
    m = load_model(store, mid)
    scores = m.score(X_raw)               # raw features, columns as m.columns

A saved model is one row of `models` and one file:

- `model_id` is the session's model version (`Session.model_version()`,
  `<session8>-r<round>-<hash>`), so annotations written by the session and by `apply` name
  the same model; `kind` is 'classifier'; `path` is the file;
- `params`: concept, model kind and parameters, session, round, level, feature set ids,
  the session's feature signature, the number and SHA-1 of the feature columns, the
  session's products, the publish threshold, label counts, the file format;
- `metrics`: AP of the training labels, cross-validated AP of the training labels
  (stratified k-fold, k = min(5, positives, negatives)), and, when the session has
  verification answers, precision (Wilson 95% interval) and recall on them at the threshold;
- `trained_on`: the training set, [[patch_id, label], ...] (also in the file).

The file `<workspace>/models/classifier-<model_id>.npz` is a numpy archive, read without
pickle: `mean`, `std` (float32: the session's standardisation), `columns`, `label_ids`,
`label_y`, and `est__<name>` for each fitted attribute of the estimator (linear models:
coefficients and intercept; RBF SVM: support vectors, dual coefficients, gamma; query by
example: direction or examples). A random forest's trees are no arrays: they are stored as
joblib bytes in `joblib__model_`, which is unpickled on load, so load forests only from a
workspace you trust.

Scoring repeats the session's own float32 steps: standardise with the stored mean and
standard deviation, non-finite values to 0, then the estimator's `score`, then the
session's prior when it has one (`params.prior`: its column, the column's statistics and
the weight at the model's round; `learning/prior.py`), so a loaded model gives the
session's scores on the session's patches (tested to 1e-6).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import ConfigError, SessionError
from eominer.learning.models import RelevanceModel, make_model
from eominer.learning.prior import Prior, mix

if TYPE_CHECKING:
    from eominer.learning.session import Session
    from eominer.store import Store

KIND = "classifier"
FORMAT = "npz-1"


def columns_digest(columns: list[str] | tuple[str, ...]) -> str:
    return hashlib.sha1(json.dumps(list(columns)).encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class Scorer:
    """What a worker needs to score raw features: the estimator and the standardisation
    (small: it travels with every apply task)."""

    estimator: RelevanceModel
    mean: np.ndarray
    std: np.ndarray
    # the session's prior with its weight at the model's round (it no longer fades)
    prior: Prior | None = None

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Scores in [0, 1] of raw feature rows (float32; X is standardised in place
        when it is a float32 array)."""
        X = np.asarray(X, np.float32)
        if not X.flags.writeable:
            X = X.copy()
        bad = ~np.isfinite(X)
        nonfinite = bool(bad.any())
        if nonfinite:
            X[bad] = np.nan
        X -= self.mean
        X /= self.std
        if nonfinite:
            X[~np.isfinite(X)] = 0.0
        if len(X) == 0:
            return np.empty(0, np.float32)
        scores = self.estimator.score(X)
        if self.prior is not None:
            mix(scores, self.prior.z(X), self.prior.weight)
        return scores


@dataclass(frozen=True, eq=False)
class SavedModel:
    """A saved classifier as loaded from the store and its file."""

    model_id: str
    path: str
    concept: str
    session_id: str
    model_kind: str
    level: int
    feature_set_ids: tuple[str, ...]
    columns: tuple[str, ...]
    threshold: float
    scorer: Scorer
    label_ids: np.ndarray
    label_y: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: Any = None

    def score(self, X: np.ndarray) -> np.ndarray:
        return self.scorer(X)


# ---- saving -----------------------------------------------------------------------------
def _estimator_arrays(model: RelevanceModel) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, value in vars(model).items():
        if not name.endswith("_"):
            continue
        if isinstance(value, np.ndarray | np.generic | int | float):
            out[f"est__{name}"] = np.asarray(value)
        else:  # a scikit-learn object (the forest): joblib bytes
            import joblib

            buf = io.BytesIO()
            joblib.dump(value, buf)
            out[f"joblib__{name}"] = np.frombuffer(buf.getvalue(), np.uint8)
    return out


def _metrics(session: Session, scores: np.ndarray, rows: np.ndarray, y: np.ndarray,
             kind: str, model_params: dict[str, Any], seed: int,
             threshold: float) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import StratifiedKFold

    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    m: dict[str, Any] = {"n_patches": int(len(scores)), "ap_train": None, "ap_cv": None,
                         "cv_folds": 0}
    if n_pos and n_neg:
        m["ap_train"] = float(average_precision_score(pos, scores[rows]))
    k = min(5, n_pos, n_neg)
    if k >= 2:
        oof = np.empty(len(y), np.float32)
        X = session.data.X
        for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(rows, y):
            est = make_model(kind, **model_params).fit(X[rows[train]], y[train])
            oof[test] = est.score(np.ascontiguousarray(X[rows[test]]))
        m["ap_cv"], m["cv_folds"] = float(average_precision_score(pos, oof)), k
    return m | _at_threshold(session, scores, threshold)


def _at_threshold(session: Session, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """The metrics that depend on the threshold: predicted positives and, with
    verification answers, precision (Wilson 95 % interval) and recall on them."""
    from eominer.learning.quality import wilson

    m: dict[str, Any] = {
        "threshold": float(threshold),
        "n_predicted_positive": int((scores >= np.float32(threshold)).sum())}
    vids, vy = session.labels("verify")
    m["n_verified"] = int(len(vids))
    if len(vids):
        pred = scores[session.data.rows(vids)] >= np.float32(threshold)
        tp = int(((vy == 1) & pred).sum())
        fp = int(((vy == -1) & pred).sum())
        fn = int(((vy == 1) & ~pred).sum())
        lo, hi = wilson(tp, tp + fp)
        m.update({"precision": tp / (tp + fp) if tp + fp else None,
                  "precision_low": lo if tp + fp else None,
                  "precision_high": hi if tp + fp else None,
                  "recall": tp / (tp + fn) if tp + fn else None,
                  "verify_tp": tp, "verify_fp": fp, "verify_fn": fn})
    return m


def save_model(session: Session) -> SavedModel:
    """Store the session's current classifier (row + file) with the session's publish
    threshold (the one it was last published at). An already saved version is returned
    as it is, its threshold and the metrics at it brought up to date when the session was
    published at another since."""
    from eominer.workspace import models_dir

    store = session.store
    version = session.model_version()  # raises when nothing was fitted yet
    threshold = float(session.params.publish_threshold)
    row = store.model(version)
    if row is not None:
        if float(row["params"]["threshold"]) != threshold:
            scores = session.current_model()[2]
            store.update_model(version, row["params"] | {"threshold": threshold},
                               row["metrics"] | _at_threshold(session, scores, threshold))
        return load_model(store, version)
    record, model, scores = session.current_model()
    ids, y = session.round_labels(record)
    rows = session.data.rows(ids)
    model_params = dict(record.model_params)
    columns = list(session.data.names)
    path = models_dir() / f"{KIND}-{version}.npz"
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, mean=session.data.mean, std=session.data.std,
             columns=np.asarray(columns, dtype=str), label_ids=np.asarray(ids, np.int64),
             label_y=np.asarray(y, np.int8), **_estimator_arrays(model))
    os.replace(tmp, path)  # whole or absent
    params = {
        "concept": session.concept, "model_kind": record.model_kind,
        "model_params": model_params, "session_id": session.session_id,
        "round": record.round, "level": session.level,
        "feature_set_ids": session.feature_set_ids,
        "feature_signature": session.record.feature_signature,
        "n_columns": len(columns), "columns_sha1": columns_digest(columns),
        "product_ids": session.product_ids, "threshold": threshold, "format": FORMAT,
        "n_labels": int(len(ids)), "n_positive": int((y == 1).sum()),
        "n_negative": int((y == -1).sum()), "seed": int(record.seed),
        # the session ranked by smoothed scores; `eominer apply` smooths the same way
        "spatial_context": float(session.params.spatial_context),
        # a change pair's own set -> the archive's set of its kind: what `apply` reads
        # once the pair's set is gone (a date of the pair removed)
        "archive_sets": {fid: a.feature_set_id for fid, a in store.archive_sets_of(
            session.feature_set_ids).items()},
    }
    prior = session.prior()
    if prior is not None:  # and from the prior's column, with the round's weight
        p = prior[0]
        params["prior"] = {"column": p.column, "index": p.index, "mean": p.mean,
                           "std": p.std, "weight": p.weight_at(len(ids))}
    metrics = _metrics(session, scores, rows, np.asarray(y, np.int8), record.model_kind,
                       model_params, int(record.seed), threshold)
    trained_on = [[int(i), int(v)] for i, v in zip(ids, y)]
    if len(json.dumps(trained_on)) > 100_000:  # the column's size on MonetDB
        trained_on = []  # the file keeps them all
        params["trained_on_in_file_only"] = True
    store.add_model(version, KIND, str(path), params, metrics, trained_on)
    return load_model(store, version)


# ---- loading ----------------------------------------------------------------------------
def classifiers(store: Store) -> list[dict[str, Any]]:
    return store.models(KIND)


def load_model(store: Store, model_id: str) -> SavedModel:
    """The saved classifier `model_id`, ready to score; ConfigError naming the saved ones
    when there is none by that id."""
    row = store.model(model_id)
    if row is None or row["kind"] != KIND:
        known = ", ".join(m["model_id"] for m in classifiers(store)[-10:]) or "none yet"
        what = f"is a {row['kind']}, not a classifier" if row else "is not in " + store.url
        raise ConfigError(
            f"model {model_id!r} {what} (saved classifiers: {known}); save one with "
            "`eominer session save-model SESSION_ID` or by publishing a session")
    p = row["params"]
    if not os.path.exists(row["path"]):
        raise ConfigError(f"the file of model {model_id} is missing: {row['path']}; save "
                          f"it again from its session ({p['session_id']})")
    with np.load(row["path"], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    est = make_model(p["model_kind"], **p["model_params"])
    for key, value in arrays.items():
        if key.startswith("est__"):
            setattr(est, key[5:], value[()] if value.ndim == 0 else value)
        elif key.startswith("joblib__"):
            import joblib

            setattr(est, key[8:], joblib.load(io.BytesIO(value.tobytes())))
    columns = tuple(str(c) for c in arrays["columns"])
    if columns_digest(columns) != p["columns_sha1"]:
        raise SessionError(f"the file of model {model_id} ({row['path']}) does not match its "
                           "row (other feature columns): save the model again")
    return SavedModel(
        model_id=model_id, path=row["path"], concept=p["concept"],
        session_id=p["session_id"], model_kind=p["model_kind"], level=int(p["level"]),
        feature_set_ids=tuple(p["feature_set_ids"]), columns=columns,
        threshold=float(p["threshold"]),
        scorer=Scorer(est, arrays["mean"].astype(np.float32), arrays["std"].astype(np.float32),
                      _prior(p.get("prior"), columns)),
        label_ids=arrays["label_ids"], label_y=arrays["label_y"], params=p,
        metrics=row["metrics"], created=row["created"],
    )


def _prior(saved: dict[str, Any] | None, columns: tuple[str, ...]) -> Prior | None:
    if not saved:
        return None
    i = int(saved["index"])
    if columns[i] != saved["column"]:
        raise SessionError(f"the prior column of a saved model ({saved['column']}) is not its "
                           f"column {i} ({columns[i]}): save the model again")
    return Prior(columns[i], i, float(saved["mean"]), float(saved["std"]),
                 float(saved["weight"]), half=0.0)
