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
  negatives (noted in the result); with only negatives: the round returns a cold-start
  batch (`cold_start`: diverse, or the prior's top) and no scores (noted); until the
  first fit, a session with a prior has the prior's own ranking (`prior_ranking`);
- features missing for part of the scope: the session runs over the patches that have
  features; the missing count is in `missing` and in the notes of every round;
- a feature set that changed since the session started (other rows or values): opening
  the session raises SessionError unless `accept_feature_change=True` (which records
  the new signature);
- `params.spatial_context` A > 0: every ranking (rounds, resumed scores, publish,
  export) mixes each patch's score with its touching patches' (`context.smooth`);
- `params.prior` (a feature column): every ranking starts from that column's and moves
  to the labels' as they come (`prior.py`), before the spatial context.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import FeaturesChangedError, SessionError
from eominer.learning import quality as q
from eominer.learning.coldstart import diverse_sample, find_similar
from eominer.learning.engine import RoundResult, SessionData, fit_score_pick, with_answers
from eominer.learning.models import AUTO_MODEL, import_backend, resolve_model
from eominer.learning.prior import Prior, find_column, mix, where_column_is
from eominer.learning.publish import publish as publish_session
from eominer.learning.scope import (
    STORED_AREA,
    cascade_scope,
    feature_signature,
    load_scope,
    weigh_feature_sets,
)
from eominer.learning.strategies import STRATEGIES, most_relevant
from eominer.learning.taxonomy import require_label
from eominer.store.base import utcnow
from eominer.store.records import (
    BATCH_MAX,
    Label,
    RoundRecord,
    SessionParams,
    SessionRecord,
)

if TYPE_CHECKING:
    from eominer.store import Store

MAX_WHERE_CHARS = 2000  # sessions.params is VARCHAR(10000) on MonetDB
# An RBF SVM's round grows with its labels (about one support vector each: 0.8 s with
# 100 labels and 1.7 s with 200 at 1M patches in a slow hour, docs/benchmarks.md); past
# this a round says how to keep the labels on a model whose rounds stay fast.
SLOW_ROUND_S = 1.0

__all__ = ["Session", "SessionParams", "feature_signature", "list_sessions", "load_scope"]


class Session:
    """One mining session bound to a store; build with `create` or `open`."""

    def __init__(self, store: Store, record: SessionRecord, data: SessionData,
                 missing: int) -> None:
        self.store = store
        self.record = record
        self.data = data
        self.missing = missing
        self._scores: np.ndarray | None = None
        self._model: Any = None  # the fitted model behind `_scores`
        self._scored_round = 0
        self._flips: list[float | None] = []
        self._grid: Any = None  # context.PatchGrid of the rows, loaded on first use
        self._prior: tuple[Prior, np.ndarray] | None = None  # and its z over the rows
        self._tiebreak: np.ndarray | None = None  # that z signed by the weight, made once
        # the ranking shows the analyst's answers over the model's scores (`with_answers`);
        # the evaluation sets False to measure the model's own ranking, which its
        # all-labels ceiling bounds (with the answers, every label would rank right)
        self.show_answers = True

    def prior(self) -> tuple[Prior, np.ndarray] | None:
        """The session's prior (`params.prior`) and its standardised column, or None."""
        if self.params.prior is None:
            return None
        if self._prior is None:
            p = Prior.of(self.data.X, self.data.names, self.params.prior,
                         self.params.prior_weight, self.params.prior_half)
            self._prior = (p, p.z(self.data.X))
        return self._prior

    def tiebreak(self) -> np.ndarray | None:
        """What orders equal scores at the top: the prior's standardised column, signed
        so that the values its weight ranks first come first (None without a prior)."""
        prior = self.prior()
        if prior is None or prior[0].weight == 0:
            return None
        if self._tiebreak is None:  # every round asks: one vector per session, not per round
            self._tiebreak = prior[1] if prior[0].weight >= 0 else -prior[1]
        return self._tiebreak

    def _ranking(self, n_labels: int) -> Callable[[np.ndarray], np.ndarray] | None:
        """What turns the model's scores into the session's ranking after a fit on
        `n_labels` labels: the prior's mix, then the spatial-context smoothing; None when
        both are off."""
        prior = self.prior()
        alpha = float(self.params.spatial_context)
        if prior is None and alpha == 0.0:
            return None
        grid = None
        if alpha > 0.0:
            from eominer.learning.context import load_grid

            if self._grid is None:
                self._grid = load_grid(self.store, self.product_ids, self.level,
                                       self.data.patch_ids)
            grid = self._grid

        def rank(scores: np.ndarray) -> np.ndarray:
            if prior is not None:
                mix(scores, prior[1], prior[0].weight_at(n_labels))
            if grid is not None:
                from eominer.learning.context import smooth

                scores = smooth(scores, grid, alpha)
            return scores

        return rank

    def _answered(self, scores: np.ndarray, rows: np.ndarray, y: np.ndarray) -> np.ndarray:
        return with_answers(scores, rows, y) if self.show_answers else scores

    def prior_ranking(self) -> np.ndarray | None:
        """The ranking the prior column gives alone at the session's label count (float32
        per patch: sigmoid(w z), through the spatial context), or None without a prior:
        what the map shows before the first fitted round. A model that knows nothing
        scores 0.5 everywhere, whose logit is 0, so this is the rounds' own mix. The
        answers given so far show as they are (`with_answers`)."""
        if self.prior() is None:
            return None
        ids, y = self.labels()
        rank = self._ranking(len(ids))
        return self._answered(rank(np.full(self.data.n, 0.5, np.float32)), self.data.rows(ids),
                              y)

    # ---- construction ------------------------------------------------------------
    @classmethod
    def create(
        cls, store: Store, name: str, owner: str, concept: str, product_ids: Sequence[str],
        level: int, feature_set_ids: Sequence[str], *, model_kind: str = AUTO_MODEL,
        strategy: str = "diverse", params: SessionParams | dict[str, Any] | None = None,
        parent_session: str | None = None, max_cloud: float | None = None,
        aoi: Any = None, where: str | None = None, features_dtype: str = "auto",
    ) -> Session:
        """A new session over the patches of `product_ids` at `level`. `max_cloud` (a
        fraction) leaves out patches whose cloud_fraction is above it (unknown, NULL, stays
        in); `aoi` (a GeoJSON/GeoPackage/KML/shapefile path, WKT, a lon/lat shapely
        geometry or an `AOI`) keeps the patches whose WGS84 box intersects it; `where` (SQL
        over the view `scope_rows`, docs/schema.md) keeps those it holds for. All are stored
        in the session's params, so a reopened session has the same scope; a scope that
        nothing is left of is refused before anything is written. `features_dtype`
        ('auto', 'float32', 'int8': how the matrix is held in memory, `SessionData`) is
        this process's choice, not the session's: any process may open it either way.
        `model_kind` `auto` is stored as the kind it resolves to for the scope's size
        (`models.resolve_model`)."""
        require_label(store, concept)
        resolve_model(model_kind, 0)  # an unknown kind is refused before any work
        if strategy not in STRATEGIES:
            raise SessionError(f"unknown strategy {strategy!r}: one of {list(STRATEGIES)}")
        if not product_ids:
            raise SessionError("empty scope: give at least one product id")
        if not feature_set_ids:
            raise SessionError("a session needs at least one feature set")
        # ids, or names of sets alone of their name: the session stores the ids
        feature_set_ids = store.resolve_feature_sets(feature_set_ids)
        if isinstance(params, SessionParams):
            p = params
        else:
            try:
                p = SessionParams.from_dict(params)
            except (TypeError, ValueError) as exc:
                raise SessionError(f"session {name!r}: {exc}") from exc
        if int(p.batch_size) > BATCH_MAX:
            raise SessionError(f"session {name!r}: a batch of {p.batch_size} questions; at "
                               f"most {BATCH_MAX} per round (label a larger selection in "
                               "bulk instead: the app's Review tab, or label_many)")
        if parent_session:
            p = dataclasses.replace(p, parent_session=parent_session)
        if max_cloud is not None:
            try:
                p = dataclasses.replace(p, max_cloud=float(max_cloud))
            except (TypeError, ValueError) as exc:
                raise SessionError(f"session {name!r}: {exc}") from exc
        from eominer.learning.aoi import as_aoi

        area = as_aoi(aoi)  # read once; its source (a file's name) names it in messages
        p = _with_scope(p, name, area, where)
        within = cascade_scope(store, p.parent_session, product_ids, level)
        ids, X, names, centres, missing = load_scope(
            store, product_ids, level, feature_set_ids, within, p.max_cloud, p.aoi_wkt,
            p.where, features_dtype, aoi_source=area.source if area else STORED_AREA)
        if len(product_ids) > 1 and (within is not None or p.max_cloud is not None
                                     or p.aoi_wkt or p.where):
            # an area or a filter may leave a product no patch: it is not part of the
            # session (nor drawn on its map)
            product_ids = [pid for pid in product_ids if np.isin(
                store.scope_patches([pid], level, columns=["patch_id"])["patch_id"].to_numpy(),
                ids).any()]
        if p.prior is not None:  # refused before anything is written
            try:
                find_column(names, p.prior)
            except SessionError as exc:
                hint = where_column_is(store, p.prior, product_ids, level, feature_set_ids)
                raise SessionError(f"{exc}{'. ' + hint[0].upper() + hint[1:] if hint else ''}"
                                   ) from None
        model_kind = resolve_model(model_kind, len(ids))
        now = utcnow()
        record = SessionRecord(
            session_id=uuid.uuid4().hex[:16], name=name, owner=owner, concept=concept,
            level=int(level), product_ids=tuple(product_ids),
            feature_set_ids=tuple(feature_set_ids),
            feature_signature=feature_signature(feature_set_ids, names, ids, X),
            model_kind=model_kind, strategy=strategy, params=p, status="open",
            created=now, updated=now,
        )
        store.insert_session(record)
        return cls(store, record, _session_data(ids, X, names, centres), missing)

    @classmethod
    def open(cls, store: Store, session_id: str, *, accept_feature_change: bool = False,
             features_dtype: str = "auto") -> Session:
        record = store.session(session_id)
        if record is None:
            known = ", ".join(r.session_id for r in store.session_list()[-10:]) or "none"
            raise SessionError(f"no session {session_id!r} in {store.url} (recent: {known})")
        within = cascade_scope(store, record.params.parent_session, record.product_ids,
                               record.level)
        ids, X, names, centres, missing = load_scope(
            store, record.product_ids, record.level, record.feature_set_ids, within,
            record.params.max_cloud, record.params.aoi_wkt, record.params.where,
            features_dtype)
        sig = feature_signature(record.feature_set_ids, names, ids, X)
        if sig != record.feature_signature:
            if not accept_feature_change:
                raise FeaturesChangedError(
                    f"the features of session {session_id} changed since it started "
                    f"(signature {record.feature_signature}, now {sig}: re-extracted or "
                    "missing rows); its labels may mean something else now. Start a new "
                    "session, or open with accept_feature_change=True to continue"
                )
            store.update_session(session_id, feature_signature=sig)
            record = dataclasses.replace(record, feature_signature=sig)
        session = cls(store, record, _session_data(ids, X, names, centres), missing)
        if record.status == "closed":  # resuming a closed session reopens it
            session.set_status("open")
        return session

    # ---- facts -------------------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self.record.session_id

    @property
    def concept(self) -> str:
        return self.record.concept

    @property
    def params(self) -> SessionParams:
        return self.record.params

    @property
    def product_ids(self) -> list[str]:
        return list(self.record.product_ids)

    @property
    def feature_set_ids(self) -> list[str]:
        return list(self.record.feature_set_ids)

    @property
    def level(self) -> int:
        return self.record.level

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def patch_ids(self) -> np.ndarray:
        return self.data.patch_ids

    def rounds(self) -> list[RoundRecord]:
        return self.store.session_rounds(self.session_id)

    def set_status(self, status: str) -> None:
        """Record the session's status ('open', 'closed', 'published') in the store."""
        self.store.update_session(self.session_id, status=status)
        self.record = dataclasses.replace(self.record, status=status)

    # ---- labels ------------------------------------------------------------------
    @staticmethod
    def _check_label(label: int, user: str, purpose: str) -> None:
        if label not in (1, -1):
            raise SessionError(f"label must be +1 (yes) or -1 (no), got {label!r}")
        if purpose not in ("train", "verify"):
            raise SessionError(f"label purpose must be 'train' or 'verify', got {purpose!r}")
        if not user:
            raise SessionError("a label needs a user name")

    def label(self, patch_id: int, label: int, user: str, purpose: str = "train") -> None:
        """Record one answer (+1 yes, -1 no) at once. `purpose` 'verify' marks answers
        to a verification sample (kept out of training)."""
        self._check_label(label, user, purpose)
        rows = self.data.rows([patch_id])  # raises for a patch outside the scope
        self.store.put_label(self.session_id, int(patch_id), user, int(label),
                             self.store.round_count(self.session_id), purpose)
        self.data.rows_f32(rows)  # a compact session reads its exact row now, not in the round

    def label_many(self, patch_ids: Sequence[int], label: int, user: str,
                   purpose: str = "train") -> int:
        """The same answer for many patches at once (a reviewed selection, a box or a
        lasso on the map), saved in one transaction. Returns how many were labelled."""
        self._check_label(label, user, purpose)
        ids = np.unique(np.asarray(patch_ids, np.int64))
        if not len(ids):
            raise SessionError("no patches selected: select some, then label them")
        rows = self.data.rows(ids)  # raises for a patch outside the scope
        self.store.put_labels(self.session_id, ids, user, int(label),
                              self.store.round_count(self.session_id), purpose)
        self.data.rows_f32(rows)  # exact rows of a compact session (up to EXACT_ROWS_MAX)
        return len(ids)

    def undo_last_label(self, user: str) -> Label | None:
        """Remove `user`'s most recent label; returns it (None if there was none)."""
        last = self.store.last_label(self.session_id, user)
        if last is not None:
            self.store.delete_label(self.session_id, last.patch_id, user)
        return last

    def labels(self, purpose: str = "train", until: Any = None,
               ) -> tuple[np.ndarray, np.ndarray]:
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
        """Patch ids of a first batch: the prior's top unlabelled patches when the session
        has one, else a diverse sample (cluster representatives)."""
        ids, _ = self.labels()
        return self.data.patch_ids[self._first_batch(n or self.params.batch_size,
                                                     self.data.rows(ids), self.params.seed)]

    def _first_batch(self, n: int, exclude: np.ndarray, seed: int) -> np.ndarray:
        """Rows to ask about before any positive label. The prior column ranks the
        concept with no label (OSCD, 20 patches: 9.4 positives among the change layer's
        top against 2.9 in a diverse sample, docs/learning.md), so its top comes first."""
        prior = self.prior()
        if prior is None:
            return diverse_sample(self.data.X, n, exclude=exclude, seed=seed)
        return most_relevant(prior[1] * np.float32(np.sign(prior[0].weight) or 1.0), n,
                             exclude=exclude)

    def find_similar(self, patch_id: int, n: int | None = None) -> np.ndarray:
        """Patch ids most like `patch_id` ("find more like this")."""
        row = int(self.data.rows([patch_id])[0])
        ids, _ = self.labels()
        rows = find_similar(self.data.X, row, n or self.params.batch_size,
                            self.data.sq_norms, exclude=self.data.rows(ids))
        return self.data.patch_ids[rows]

    # ---- the round -----------------------------------------------------------------
    def run_round(self, n: int | None = None, model_kind: str | None = None,
                  strategy: str | None = None) -> RoundResult:
        """Fit on the current labels, score every patch, pick the next batch; the round
        is written to the store. Scores align with `self.patch_ids`."""
        kind = resolve_model(model_kind or self.record.model_kind, self.data.n)
        import_backend(kind)  # before the clock: its seconds are the round's own
        t0 = time.perf_counter()
        strat = strategy or self.record.strategy
        n = int(self.params.batch_size if n is None else n)
        if n < 1:
            raise SessionError(f"a round asks at least 1 question, got {n}")
        asked, n = n, min(n, BATCH_MAX)  # more: a session stored before the limit
        number = self.store.round_count(self.session_id) + 1
        if self._scores is None and number > 1 and any(r.fitted for r in self.rounds()):
            self.current_scores()  # previous ranking, for the change estimate
        prev = self._scores
        ids, y = self.labels()
        rows = self.data.rows(ids)
        left = self.data.n - len(np.unique(rows))
        notes: list[str] = []
        if left == 0:
            notes.append("every patch of the scope has a label: nothing left to ask")
        elif n > left:
            notes.append(f"{asked} questions asked for, but only {left} patches of the scope "
                         "are unlabelled: this round asks about them all")
        elif asked > n:
            notes.append(f"{asked} questions asked for; a round asks at most {BATCH_MAX}")
        if self.missing:
            notes.append(f"{self.missing} patches of the scope have no features and are "
                         "not ranked")
        n_conf = len(self.conflicts())
        if n_conf:
            notes.append(f"{n_conf} patches labelled differently by different users: the "
                         "most recent label is used (see conflicts())")
        seed = int(self.params.seed) + number
        scores: np.ndarray | None
        if len(ids) and (y == 1).any():
            model, scores, pick, fit_notes = fit_score_pick(
                self.data, rows, y, model_kind=kind, model_params=dict(self.params.model_params),
                strategy=strat, n=n, seed=seed, spatial_weight=self.params.spatial_weight,
                context=self._ranking(len(ids)), tiebreak=self.tiebreak(),
            )
            self._answered(scores, rows, y)
            notes.extend(fit_notes)
        else:
            model, scores = None, None
            pick = self._first_batch(n, rows, seed)
            notes.append("no positive label yet: here " + (
                f"are the patches {self.params.prior} ranks first" if self.params.prior
                else "is a diverse sample of the scope") + "; answer yes for patches that "
                "show the concept")
        trained = tuple((int(i), int(v)) for i, v in zip(ids, y))
        last = self.rounds()[-1] if number > 1 else None
        again = last is not None and bool(trained) and last.labels == trained
        quality = self._quality(prev, scores, counts=not again)
        if again and quality.get("flip_rate") is not None:
            notes.append(f"no new answer since round {last.round}: this round's ranking "
                         "change does not count toward the advice to stop")
        seconds = time.perf_counter() - t0
        if kind == "rbf_svm" and seconds > SLOW_ROUND_S:
            notes.append(
                f"this round took {seconds:.1f} s: an RBF SVM's rounds grow with its labels "
                f"({len(ids)} here, over {self.data.n:,} patches); a copy of the session on "
                "the logistic model keeps every label and ranks in a fraction of that "
                f"(eominer session duplicate {self.session_id} --model logistic; the app: "
                "Sessions tab, Duplicate, and model logistic)")
        query_ids = self.data.patch_ids[pick]
        if not len(query_ids) and left:
            notes.append("no patch could be picked: the model gave no finite score; try "
                         "another model or check the session's feature columns")
        n_pos, n_neg = int((y == 1).sum()), int((y == -1).sum())
        self.store.insert_round(RoundRecord(
            session_id=self.session_id, round=number, model_kind=kind, strategy=strat,
            n_labels=int(len(ids)), n_positive=n_pos, n_negative=n_neg, seconds=seconds,
            created=utcnow(), queried=tuple(int(i) for i in query_ids),
            ranking_change=quality.get("flip_rate"),
            precision_estimate=quality.get("precision"),
            fitted=model is not None, seed=seed, n=n,
            model_params=dict(self.params.model_params), quality=quality,
            notes=tuple(notes),
            # the exact training set: a relabel or undo after this round must not
            # change the ranking a resumed session shows
            labels=trained,
        ))
        if scores is not None:
            self._scores, self._scored_round, self._model = scores, number, model
        if self.record.status != "open":  # a new round after publishing: work in progress
            self.set_status("open")
        return RoundResult(
            round=number, scores=scores, query_ids=query_ids, quality=quality,
            seconds=seconds, model_kind=kind, strategy=strat, n_labels=int(len(ids)),
            n_positive=n_pos, n_negative=n_neg, notes=tuple(notes), model=model,
        )

    def _quality(self, prev: np.ndarray | None, cur: np.ndarray | None,
                 counts: bool = True) -> dict[str, Any]:
        """The round's ranking change and stop advice; `counts` False: the round had no
        new answer, its change is reported but is no evidence of stability."""
        if not self._flips:
            self._flips = q.stability_evidence(self.rounds())
        change = q.ranking_change(prev, cur) if cur is not None else {
            "flip_rate": None, "topk_overlap": None}
        if counts:
            self._flips.append(change["flip_rate"])
        # a new ranking has no verification yet: answers to earlier checks were about
        # other positives (and a stratified check also samples negatives)
        prec = q.precision_estimate(np.empty(0))
        stop, why = q.suggest_stop(self._flips, prec["precision"])
        return {**change, **prec, "stop": stop, "advice": why}

    def quality(self) -> dict[str, Any]:
        """The latest round's quality estimate: precision and recall of its stored
        quality check (`check_quality`), else precision from the verification labels
        given since that round."""
        from eominer.learning.quality_check import stored

        done = self.rounds()
        flips = q.stability_evidence(done)
        last = dict(done[-1].quality) if done else {}
        prec = stored(done[-1]) if done else {}
        if not prec:
            this = len(done)
            v = [int(r["label"]) for r in self.store.session_labels(self.session_id).to_pylist()
                 if r["purpose"] == "verify" and int(r["round"]) == this]
            prec = q.precision_estimate(np.asarray(v, np.int8))
        stop, why = q.suggest_stop(flips, prec["precision"])
        return {**last, **prec, "stop": stop, "advice": why}

    def quality_sample(self, threshold: float = 0.5, n: int = 40) -> tuple[np.ndarray, float]:
        """A stratified verification sample of the latest round (patch ids, in random
        order) and its score threshold: see `learning/quality_check.py`."""
        from eominer.learning.quality_check import quality_sample

        return quality_sample(self, threshold, n)

    def check_quality(self) -> Any:
        """Precision and recall (95 % intervals) of the latest round's positives from its
        verification answers, stored with the round; None while a stratum is unanswered."""
        from eominer.learning.quality_check import check_quality

        return check_quality(self)

    def _last_fitted(self, why: str) -> RoundRecord:
        fitted = [r for r in self.rounds() if r.fitted]
        if not fitted:
            raise SessionError(why)
        return fitted[-1]

    def current_scores(self) -> np.ndarray:
        """Scores of the latest fitted round; after a restart they are recomputed from
        the labels that round used (stored with the round; fits are deterministic), so a
        resumed session shows exactly the ranking it had, whatever was relabelled since."""
        last = self._last_fitted(
            f"session {self.session_id} has no fitted round yet: label at least one "
            "positive patch and run a round"
        )
        if self._scores is not None and self._scored_round == last.round:
            return self._scores
        ids, y = self.round_labels(last)
        model, scores, _, _ = fit_score_pick(
            self.data, self.data.rows(ids), y, model_kind=last.model_kind,
            model_params=dict(last.model_params), strategy="most_relevant", n=1,
            seed=last.seed, context=self._ranking(len(ids)),
        )
        self._answered(scores, self.data.rows(ids), y)
        self._scores, self._scored_round, self._model = scores, last.round, model
        return scores

    def result_scores(self) -> np.ndarray:
        """A copy of the current ranking with every answer so far over it, labels given
        since the last round too: what publish, the exports and the polygons write."""
        scores = self.current_scores().astype(np.float32, copy=True)
        ids, y = self.labels()
        return with_answers(scores, self.data.rows(ids), y)

    def round_labels(self, record: RoundRecord) -> tuple[np.ndarray, np.ndarray]:
        """The training set a round used: (patch_ids, y)."""
        if record.labels is not None:
            used = np.asarray(record.labels, np.int64).reshape(-1, 2)
            return used[:, 0], used[:, 1].astype(np.int8)
        # rounds recorded before the training set was stored with them
        return self.labels(until=record.created)

    def current_model(self) -> tuple[RoundRecord, Any, np.ndarray]:
        """The latest fitted round, its fitted model and its scores (refitted after a
        restart, as `current_scores`)."""
        scores = self.current_scores()
        return self._last_fitted("no fitted round"), self._model, scores

    def save_model(self) -> str:
        """Store the current classifier as a versioned row of `models` (and its file in
        the workspace), usable by `eominer apply`; returns its id, the model version.
        Saving the same version again changes nothing."""
        from eominer.learning.saved import save_model

        return save_model(self).model_id

    def pending_queries(self) -> np.ndarray:
        """The batch the latest round asked about (same after a restart)."""
        done = self.rounds()
        return np.asarray(done[-1].queried if done else [], np.int64)

    def open_questions(self) -> np.ndarray:
        """The latest round's questions not answered yet, in its order: what the app's
        Mine tab and `eominer session next` ask after a break."""
        done = set(self.labels()[0].tolist())
        return np.asarray([i for i in self.pending_queries().tolist() if i not in done],
                          np.int64)

    def verification_sample(self, n: int = 20) -> np.ndarray:
        """Random predicted positives for the analyst to verify (label with
        purpose='verify'); the confirmed share estimates precision."""
        scores = self.current_scores()
        ids, _ = self.labels()
        vids, _ = self.labels("verify")
        done = np.concatenate([self.data.rows(ids), self.data.rows(vids)])
        rng = np.random.default_rng(int(self.params.seed) + 7919 * len(self.rounds()))
        return self.data.patch_ids[q.verification_sample(scores, n, done, rng)]

    # ---- lifecycle -----------------------------------------------------------------
    def model_version(self) -> str:
        r = self._last_fitted("nothing to publish yet: run a round with labels first")
        text = f"{self.session_id}:{r.round}:{r.model_kind}:{r.params_json()}"
        return f"{self.session_id[:8]}-r{r.round}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"

    def publish(self, threshold: float | None = None) -> str:
        """Write one annotation per patch of the scope (label, score, model version,
        session); labelled patches carry the analyst's answer (score 1 or 0, source
        'label'). Returns the model version."""
        return publish_session(self, self.params.publish_threshold if threshold is None
                       else threshold)

    def close(self) -> None:
        self.set_status("closed")

    def summary(self) -> dict[str, Any]:
        ids, y = self.labels()
        return {
            "session_id": self.session_id, "name": self.record.name,
            "owner": self.record.owner, "concept": self.concept, "level": self.level,
            "products": self.product_ids, "patches": int(self.data.n),
            "missing_features": self.missing, "labels": int(len(ids)),
            "positive": int((y == 1).sum()), "negative": int((y == -1).sum()),
            "rounds": len(self.rounds()), "status": self.status,
            "settings": self.settings(),
        }

    def settings(self) -> dict[str, Any]:
        """How the session ranks and what its scope is, as stored: what an analyst who
        comes back to it (or `session duplicate`s it) needs to know."""
        p, r = self.params, self.record
        out: dict[str, Any] = {
            "feature_sets": {fid: (fs.name if (fs := self.store.feature_set(fid)) else None)
                             for fid in r.feature_set_ids},
            "columns": len(self.data.names), "model": r.model_kind,
            "model_params": dict(p.model_params), "strategy": r.strategy,
            "batch": p.batch_size, "spatial_context": p.spatial_context,
            "spatial_weight": p.spatial_weight, "publish_threshold": p.publish_threshold,
            "shared": p.shared, "created": r.created, "updated": r.updated,
        }
        scope = {"max_cloud": p.max_cloud, "where": p.where, "parent_session": p.parent_session}
        if p.aoi_wkt:
            from shapely import wkt

            area = wkt.loads(p.aoi_wkt)
            scope["aoi"] = {"bounds_lonlat": [round(v, 6) for v in area.bounds],
                            "polygons": len(getattr(area, "geoms", [area]))}
        out["scope"] = {k: v for k, v in scope.items() if v is not None}
        if p.prior is not None:
            out["prior"] = {"column": p.prior, "weight": p.prior_weight,
                            "half_labels": p.prior_half}
        return out


def _session_data(ids: np.ndarray, X: np.ndarray, names: list[str],
                  centres: np.ndarray) -> SessionData:
    """Standardised per column, then per feature set when there are several
    (scope.set_weights)."""
    data = SessionData(ids, X, names, centres)
    weigh_feature_sets(data)
    return data


def _with_scope(p: SessionParams, name: str, aoi: Any, where: str | None) -> SessionParams:
    """`p` with the AOI (as stored: rounded WKT) and the WHERE text (checked) of a scope."""
    from eominer.learning.aoi import as_aoi, stored_aoi
    from eominer.store.scope import check_where

    if aoi is not None:
        p = dataclasses.replace(p, aoi_wkt=stored_aoi(as_aoi(aoi)).wkt)
    if where is not None:
        text = check_where(where)
        if len(text) > MAX_WHERE_CHARS:
            raise SessionError(f"session {name!r}: the WHERE has {len(text)} characters, at "
                               f"most {MAX_WHERE_CHARS} are kept with a session")
        p = dataclasses.replace(p, where=text)
    return p


def list_sessions(store: Store, owner: str | None = None) -> list[SessionRecord]:
    return store.session_list(owner)
