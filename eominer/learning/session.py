"""A mining session: target concept, scope, labels and rounds, persisted as they happen.

    s = Session.create(store, "new buildings", owner="ana", concept="new_construction",
                       product_ids=[pid], level=32, feature_set_ids=[fs.feature_set_id])
    s.label(patch_id, +1, "ana")          # written at once, own transaction
    r = s.run_round()                      # fit + score all + pick next batch
    r.scores, r.query_ids, r.quality
    s.publish()                            # annotations rows, queryable with SQL
    s2 = Session.open(store, s.session_id) # any process, any user: the same state

Rules (docs/learning.md):
- two users labelling the same patch differently: every user's label is stored; the
  model uses the most recent label of each patch; `conflicts()` lists the disagreements
  and each round reports their number;
- a round with only positives: random unlabelled patches serve as provisional
  negatives (noted in the result); with only negatives: the round returns a diverse
  cold-start batch and no scores (noted);
- features missing for part of the scope: the session runs over the patches that have
  features; the missing count is in `missing` and in the notes of every round;
- a feature set that changed since the session started (other rows or values): opening
  the session raises SessionError unless `accept_feature_change=True` (which records
  the new signature).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from eominer.errors import SessionError
from eominer.learning import quality as q
from eominer.learning.coldstart import diverse_sample, find_similar
from eominer.learning.engine import RoundResult, SessionData, fit_score_pick
from eominer.learning.models import MODEL_KINDS
from eominer.learning.strategies import STRATEGIES
from eominer.learning.taxonomy import require_label
from eominer.store.base import utcnow
from eominer.store.sessions import dumps

DEFAULTS: dict[str, Any] = {"batch_size": 20, "seed": 0, "spatial_weight": 0.0,
                            "model_params": {}, "publish_threshold": 0.5}


def feature_signature(feature_set_ids: Sequence[str], names: list[str], patch_ids: np.ndarray,
                      X: np.ndarray) -> str:
    """Fingerprint of the raw feature matrix: ids, columns, rows and column sums."""
    h = hashlib.sha1()
    h.update(json.dumps([list(feature_set_ids), names]).encode())
    h.update(np.asarray(patch_ids, np.int64).tobytes())
    sums = X.sum(axis=0, dtype=np.float64) if X.size else np.zeros(0)
    h.update(",".join(f"{v:.6g}" for v in sums.tolist()).encode())
    return h.hexdigest()[:16]


def load_scope(store, product_ids: Sequence[str], level: int, feature_set_ids: Sequence[str],
               within: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[str],
                                                          np.ndarray, int]:
    """Features of the scope: (patch_ids, raw X, names, centres, n_missing)."""
    for pid in product_ids:
        if not store.product_exists(pid):
            raise SessionError(f"product {pid!r} is not in {store.url}: ingest it first")
    patches = store.scope_patches(list(product_ids), level)
    pids = patches["patch_id"].to_numpy().astype(np.int64)
    if within is not None:
        pids = pids[np.isin(pids, within)]
    if len(pids) == 0:
        levels = store.patch_levels(list(product_ids))
        raise SessionError(
            f"empty scope: no patches at level {level} in products {list(product_ids)} "
            f"(levels there: {levels or 'none'})"
            + ("; the coarse session published no positive patch" if within is not None else "")
        )
    ids, X, names = store.read_features(list(feature_set_ids), list(product_ids), level)
    keep = np.isin(ids, pids)
    ids, X = ids[keep], X[keep]
    if len(ids) == 0:
        raise SessionError(
            f"no features for the {len(pids)} patches of the scope in feature sets "
            f"{list(feature_set_ids)}: run `eominer extract` for these products"
        )
    cx = (patches["min_x"].to_numpy() + patches["max_x"].to_numpy()) / 2
    cy = (patches["min_y"].to_numpy() + patches["max_y"].to_numpy()) / 2
    all_ids = patches["patch_id"].to_numpy().astype(np.int64)
    at = np.searchsorted(all_ids, ids)
    centres = np.stack([cx[at], cy[at]], axis=1)
    return ids, X, names, centres, int(len(pids) - len(ids))


def _num(value) -> float | None:
    """A nullable DOUBLE as read back (MonetDB gives NaN for NULL)."""
    return None if value is None or value != value else float(value)


def _within(store, parent: str | None, product_ids: list[str], level: int):
    """Cascade: the patches of `level` under the parent session's published positives."""
    if not parent:
        return None
    prow = store.session_row(parent)
    if prow is None:
        raise SessionError(f"parent session {parent!r} of this cascade is not in {store.url}")
    from eominer.learning.cascade import descendants

    return descendants(store, product_ids, store.positive_annotations(parent),
                       int(prow["level"]), int(level))


class Session:
    """One mining session bound to a store; build with `create` or `open`."""

    def __init__(self, store, row: dict[str, Any], data: SessionData, missing: int) -> None:
        self.store = store
        self.row = row
        self.params: dict[str, Any] = {**DEFAULTS, **json.loads(row["params"])}
        self.data = data
        self.missing = missing
        self._scores: np.ndarray | None = None
        self._scored_round = 0
        self._flips: list[float | None] = []

    # ---- construction ------------------------------------------------------------
    @classmethod
    def create(
        cls, store, name: str, owner: str, concept: str, product_ids: Sequence[str],
        level: int, feature_set_ids: Sequence[str], *, model_kind: str = "logistic",
        strategy: str = "diverse", params: dict[str, Any] | None = None,
        parent_session: str | None = None,
    ) -> Session:
        require_label(store, concept)
        if model_kind not in MODEL_KINDS:
            raise SessionError(f"unknown model kind {model_kind!r}: one of {MODEL_KINDS}")
        if strategy not in STRATEGIES:
            raise SessionError(f"unknown strategy {strategy!r}: one of {list(STRATEGIES)}")
        if not product_ids:
            raise SessionError("empty scope: give at least one product id")
        if not feature_set_ids:
            raise SessionError("a session needs at least one feature set")
        for f in feature_set_ids:
            store.require_feature_set(f)
        p = {**DEFAULTS, **(params or {})}
        if parent_session:
            p["parent_session"] = parent_session
        within = _within(store, parent_session, list(product_ids), level)
        ids, X, names, centres, missing = load_scope(store, product_ids, level,
                                                     feature_set_ids, within)
        sig = feature_signature(feature_set_ids, names, ids, X)
        now = utcnow()
        row = {
            "session_id": uuid.uuid4().hex[:16], "name": name, "owner": owner,
            "concept": concept, "level": int(level), "product_ids": dumps(list(product_ids)),
            "feature_set_ids": dumps(list(feature_set_ids)), "feature_signature": sig,
            "model_kind": model_kind, "strategy": strategy, "params": dumps(p),
            "status": "open", "created": now, "updated": now,
        }
        store.insert_session(row)
        return cls(store, row, SessionData(ids, X, names, centres), missing)

    @classmethod
    def open(cls, store, session_id: str, *, accept_feature_change: bool = False) -> Session:
        row = store.session_row(session_id)
        if row is None:
            known = ", ".join(r["session_id"] for r in store.session_rows()[-10:]) or "none"
            raise SessionError(f"no session {session_id!r} in {store.url} (recent: {known})")
        params = json.loads(row["params"])
        parent = params.get("parent_session")
        within = _within(store, parent, json.loads(row["product_ids"]), row["level"])
        fs_ids = json.loads(row["feature_set_ids"])
        ids, X, names, centres, missing = load_scope(
            store, json.loads(row["product_ids"]), row["level"], fs_ids, within)
        sig = feature_signature(fs_ids, names, ids, X)
        if sig != row["feature_signature"]:
            if not accept_feature_change:
                raise SessionError(
                    f"the features of session {session_id} changed since it started "
                    f"(signature {row['feature_signature']}, now {sig}: re-extracted or "
                    "missing rows); its labels may mean something else now. Start a new "
                    "session, or open with accept_feature_change=True to continue"
                )
            store.update_session(session_id, feature_signature=sig)
            row["feature_signature"] = sig
        if row["status"] == "closed":  # resuming a closed session reopens it
            store.update_session(session_id, status="open")
            row["status"] = "open"
        return cls(store, row, SessionData(ids, X, names, centres), missing)

    # ---- facts -------------------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self.row["session_id"]

    @property
    def concept(self) -> str:
        return self.row["concept"]

    @property
    def product_ids(self) -> list[str]:
        return json.loads(self.row["product_ids"])

    @property
    def feature_set_ids(self) -> list[str]:
        return json.loads(self.row["feature_set_ids"])

    @property
    def level(self) -> int:
        return int(self.row["level"])

    @property
    def patch_ids(self) -> np.ndarray:
        return self.data.patch_ids

    def rounds(self) -> list[dict[str, Any]]:
        return self.store.session_rounds(self.session_id)

    # ---- labels ------------------------------------------------------------------
    def label(self, patch_id: int, label: int, user: str, purpose: str = "train") -> None:
        """Record one answer (+1 yes, -1 no) at once. `purpose` 'verify' marks answers
        to a verification sample (kept out of training)."""
        if label not in (1, -1):
            raise SessionError(f"label must be +1 (yes) or -1 (no), got {label!r}")
        if purpose not in ("train", "verify"):
            raise SessionError(f"label purpose must be 'train' or 'verify', got {purpose!r}")
        if not user:
            raise SessionError("a label needs a user name")
        self.data.rows([patch_id])  # raises for a patch outside the scope
        self.store.put_label(self.session_id, int(patch_id), user, int(label),
                             len(self.rounds()), purpose)

    def undo_last_label(self, user: str) -> dict[str, Any] | None:
        """Remove `user`'s most recent label; returns it (None if there was none)."""
        last = self.store.last_label(self.session_id, user)
        if last is not None:
            self.store.delete_label(self.session_id, last["patch_id"], user)
        return last

    def labels(self, purpose: str = "train", until=None) -> tuple[np.ndarray, np.ndarray]:
        """Effective labels (patch_ids, y): per patch the most recent label wins."""
        t = self.store.session_labels(self.session_id).to_pylist()
        latest: dict[int, int] = {}
        for r in t:  # oldest first, so later labels overwrite
            if r["purpose"] == purpose and (until is None or r["labelled_at"] <= until):
                latest[int(r["patch_id"])] = int(r["label"])
        ids = np.asarray(sorted(latest), np.int64)
        return ids, np.asarray([latest[i] for i in ids.tolist()], np.int8)

    def conflicts(self) -> list[dict[str, Any]]:
        """Patches on which users disagree: patch_id and each user's label."""
        by_patch: dict[int, dict[str, int]] = {}
        for r in self.store.session_labels(self.session_id).to_pylist():
            if r["purpose"] == "train":
                by_patch.setdefault(int(r["patch_id"]), {})[r["user_name"]] = int(r["label"])
        return [{"patch_id": p, "labels": u} for p, u in sorted(by_patch.items())
                if len(set(u.values())) > 1]

    # ---- cold start ----------------------------------------------------------------
    def cold_start(self, n: int | None = None) -> np.ndarray:
        """Patch ids of a diverse first batch (cluster representatives)."""
        ids, _ = self.labels()
        rows = diverse_sample(self.data.X, n or self.params["batch_size"],
                              exclude=self.data.rows(ids), seed=self.params["seed"])
        return self.data.patch_ids[rows]

    def find_similar(self, patch_id: int, n: int | None = None) -> np.ndarray:
        """Patch ids most like `patch_id` ("find more like this")."""
        row = int(self.data.rows([patch_id])[0])
        ids, _ = self.labels()
        rows = find_similar(self.data.X, row, n or self.params["batch_size"],
                            self.data.sq_norms, exclude=self.data.rows(ids))
        return self.data.patch_ids[rows]

    # ---- the round -----------------------------------------------------------------
    def run_round(self, n: int | None = None, model_kind: str | None = None,
                  strategy: str | None = None) -> RoundResult:
        """Fit on the current labels, score every patch, pick the next batch; the round
        is written to the store. Scores align with `self.patch_ids`."""
        t0 = time.perf_counter()
        kind = model_kind or self.row["model_kind"]
        strat = strategy or self.row["strategy"]
        n = int(n or self.params["batch_size"])
        done = self.rounds()
        number = len(done) + 1
        if self._scores is None and any(json.loads(r["params"]).get("fitted") for r in done):
            self.current_scores()  # previous ranking, for the change estimate
        prev = self._scores
        ids, y = self.labels()
        rows = self.data.rows(ids)
        notes: list[str] = []
        if self.missing:
            notes.append(f"{self.missing} patches of the scope have no features and are "
                         "not ranked")
        n_conf = len(self.conflicts())
        if n_conf:
            notes.append(f"{n_conf} patches labelled differently by different users: the "
                         "most recent label is used (see conflicts())")
        seed = int(self.params["seed"]) + number
        scores: np.ndarray | None
        if len(ids) and (y == 1).any():
            model, scores, pick, fit_notes = fit_score_pick(
                self.data, rows, y, model_kind=kind, model_params=self.params["model_params"],
                strategy=strat, n=n, seed=seed, spatial_weight=self.params["spatial_weight"],
            )
            notes.extend(fit_notes)
        else:
            model, scores = None, None
            pick = diverse_sample(self.data.X, n, exclude=rows, seed=seed)
            notes.append("no positive label yet: here is a diverse sample of the scope; "
                         "answer yes for patches that show the concept")
        quality = self._quality(prev, scores)
        seconds = time.perf_counter() - t0
        query_ids = self.data.patch_ids[pick]
        self.store.insert_round({
            "session_id": self.session_id, "round": number, "model_kind": kind,
            "strategy": strat,
            "params": dumps({"model_params": self.params["model_params"], "seed": seed,
                             "n": n, "notes": notes, "quality": quality,
                             "fitted": model is not None,
                             # the exact training set: a relabel or undo after this round
                             # must not change the ranking a resumed session shows
                             "labels": [[int(i), int(v)] for i, v in zip(ids, y)]}),
            "n_labels": int(len(ids)), "n_positive": int((y == 1).sum()),
            "n_negative": int((y == -1).sum()), "seconds": seconds,
            "ranking_change": quality.get("flip_rate"),
            "precision_estimate": quality.get("precision"),
            "queried": dumps([int(i) for i in query_ids]), "created": utcnow(),
        })
        if scores is not None:
            self._scores, self._scored_round = scores, number
        if self.row["status"] != "open":  # a new round after publishing: work in progress
            self.store.update_session(self.session_id, status="open")
            self.row["status"] = "open"
        return RoundResult(number, scores, query_ids, quality, seconds, kind, strat,
                           int(len(ids)), int((y == 1).sum()), int((y == -1).sum()),
                           tuple(notes), model)

    def _quality(self, prev: np.ndarray | None, cur: np.ndarray | None) -> dict[str, Any]:
        if not self._flips:
            self._flips = [_num(r["ranking_change"]) for r in self.rounds()]
        change = q.ranking_change(prev, cur) if cur is not None else {
            "flip_rate": None, "topk_overlap": None}
        self._flips.append(change["flip_rate"])
        _, v = self.labels("verify")
        prec = q.precision_estimate(v)
        stop, why = q.suggest_stop(self._flips, prec["precision"])
        return {**change, **prec, "stop": stop, "advice": why}

    def quality(self) -> dict[str, Any]:
        """The latest round's quality estimate, with precision from the current
        verification labels."""
        done = self.rounds()
        flips = [_num(r["ranking_change"]) for r in done]
        last = json.loads(done[-1]["params"])["quality"] if done else {}
        _, v = self.labels("verify")
        prec = q.precision_estimate(v)
        stop, why = q.suggest_stop(flips, prec["precision"])
        return {**last, **prec, "stop": stop, "advice": why}

    def current_scores(self) -> np.ndarray:
        """Scores of the latest fitted round; after a restart they are recomputed from
        the labels that round used (stored with the round; fits are deterministic), so a
        resumed session shows exactly the ranking it had, whatever was relabelled since."""
        fitted = [r for r in self.rounds() if json.loads(r["params"]).get("fitted")]
        if not fitted:
            raise SessionError(
                f"session {self.session_id} has no fitted round yet: label at least one "
                "positive patch and run a round"
            )
        last = fitted[-1]
        if self._scores is not None and self._scored_round == last["round"]:
            return self._scores
        p = json.loads(last["params"])
        if "labels" in p:
            used = np.asarray(p["labels"], np.int64).reshape(-1, 2)
            ids, y = used[:, 0], used[:, 1].astype(np.int8)
        else:  # rounds recorded before the training set was stored with them
            ids, y = self.labels(until=last["created"])
        _, scores, _, _ = fit_score_pick(
            self.data, self.data.rows(ids), y, model_kind=last["model_kind"],
            model_params=p["model_params"], strategy="most_relevant", n=1, seed=p["seed"],
        )
        self._scores, self._scored_round = scores, int(last["round"])
        return scores

    def pending_queries(self) -> np.ndarray:
        """The batch the latest round asked about (same after a restart)."""
        done = self.rounds()
        return np.asarray(json.loads(done[-1]["queried"]) if done else [], np.int64)

    def verification_sample(self, n: int = 20) -> np.ndarray:
        """Random predicted positives for the analyst to verify (label with
        purpose='verify'); the confirmed share estimates precision."""
        scores = self.current_scores()
        ids, _ = self.labels()
        vids, _ = self.labels("verify")
        done = np.concatenate([self.data.rows(ids), self.data.rows(vids)])
        rng = np.random.default_rng(int(self.params["seed"]) + 7919 * len(self.rounds()))
        return self.data.patch_ids[q.verification_sample(scores, n, done, rng)]

    # ---- lifecycle -----------------------------------------------------------------
    def model_version(self) -> str:
        fitted = [r for r in self.rounds() if json.loads(r["params"]).get("fitted")]
        if not fitted:
            raise SessionError("nothing to publish yet: run a round with labels first")
        r = fitted[-1]
        text = f"{self.session_id}:{r['round']}:{r['model_kind']}:{r['params']}"
        return f"{self.session_id[:8]}-r{r['round']}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"

    def publish(self, threshold: float | None = None) -> str:
        """Write one annotation per patch of the scope (label, score, model version,
        session); labelled patches carry the analyst's answer (score 1 or 0, source
        'label'). Returns the model version."""
        from eominer.learning.publish import publish

        return publish(self, self.params["publish_threshold"] if threshold is None
                       else threshold)

    def close(self) -> None:
        self.store.update_session(self.session_id, status="closed")
        self.row["status"] = "closed"

    def summary(self) -> dict[str, Any]:
        ids, y = self.labels()
        return {
            "session_id": self.session_id, "name": self.row["name"],
            "owner": self.row["owner"], "concept": self.concept, "level": self.level,
            "products": self.product_ids, "patches": int(self.data.n),
            "missing_features": self.missing, "labels": int(len(ids)),
            "positive": int((y == 1).sum()), "negative": int((y == -1).sum()),
            "rounds": len(self.rounds()), "status": self.row["status"],
        }


def list_sessions(store, owner: str | None = None) -> list[dict[str, Any]]:
    return store.session_rows(owner)
