"""The state of one browser session: who is working, on what, and what they see.

Every view reads and writes this object; each browser session builds its own (never a
module global), so two analysts never see each other's unsaved state. What an analyst
clicks is written to the database at once by the learning session (labels), so a
closed tab or a crash loses nothing. The store itself is shared by the sessions of one
server process (see `shared_store`); other processes use the same workspace between the
app's units of work (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import param

from eominer.errors import EominerError
from eominer.learning.strategies import top_rows
from eominer.store.records import SPATIAL_CONTEXT_MAX, PatchWindow

if TYPE_CHECKING:
    from eominer.learning.session import Session
    from eominer.store import Store


APP_LINGER_S = 1.0  # how long the app keeps the DuckDB file after its last statement


def shared_store(url: str | None) -> Store:
    """The process's store for `url`: opened once, reused by every browser session.

    A database another process keeps busy for longer than EOMINER_DB_WAIT raises
    StoreConnectionError, which the app shows as a page of its own (see app.py)."""
    import panel as pn

    from eominer.store import open_store

    key = f"eominer-store:{url or ''}"
    store = pn.state.cache.get(key)
    if store is None:
        store = open_store(url)
        if "EOMINER_DB_LINGER" not in os.environ and hasattr(store.engine, "linger"):
            # a label click is ~8 statements spread over ~0.3 s (label, round, views): one
            # open of the file per click, not one per gap of 50 ms (~40 ms each on a 1M
            # workspace); other processes still get the file between clicks
            store.engine.linger = APP_LINGER_S
        pn.state.cache[key] = store  # closed at exit (store.engines._close_at_exit)
    return store


class AppState(param.Parameterized):
    """Shared by the views of one browser session."""

    user = param.String(default="analyst", doc="label author (from authentication)")
    # scope (set by the Scope view)
    product_ids = param.List(default=[], item_type=str)
    level = param.Integer(default=32)
    feature_set_ids = param.List(default=[], item_type=str)
    concept = param.String(default="")
    model_kind = param.String(default="auto")  # models.AUTO_MODEL
    strategy = param.String(default="diverse")
    max_cloud = param.Number(default=None, allow_None=True, bounds=(0.0, 1.0),
                             doc="scope: leave out patches cloudier than this (None: keep all)")
    aoi = param.String(default="", doc="scope: area of interest, lon/lat WKT (drawn on the "
                       "map or uploaded); empty: the whole products")
    where = param.String(default="", doc="scope: SQL condition over scope_rows (empty: none)")
    spatial_context = param.Number(
        default=0.0, bounds=(0.0, SPATIAL_CONTEXT_MAX),
        doc="rank by scores mixed with the touching patches' (learning/context.py; 0: off)")
    spatial_weight = param.Number(
        default=0.0, bounds=(0.0, None),
        doc="how far the diverse strategy spreads a batch on the map (0: by features only)")
    prior = param.String(default="", doc="a feature column the ranking starts from, fading "
                         "as labels come (learning/prior.py; empty: none)")
    # what is on screen
    product_id = param.String(default="", doc="the product the map shows")
    session = param.Parameter(default=None, doc="eominer.learning.session.Session")
    scores = param.Parameter(default=None, doc="float32 per session patch, or None")
    prior_only = param.Boolean(default=False, doc="`scores` is the prior column's own "
                               "ranking: the session has no fitted round yet")
    scores_version = param.Integer(default=0)
    labels_version = param.Integer(default=0)
    batch = param.List(default=[], doc="patch ids the model asks about next")
    top = param.List(default=[], doc="patch ids of the current top results")
    selected = param.Integer(default=None, allow_None=True)
    focus = param.Integer(default=None, allow_None=True, doc="centre the map on this patch")
    published = param.String(default="", doc="model version of the last publish")
    # status line
    message = param.String(default="")
    severity = param.Selector(default="info", objects=["info", "success", "warning", "error"])
    busy = param.Boolean(default=False)
    learn_on_label = param.Boolean(default=False, doc="run a round after every label")
    stale_session = param.String(default="", doc="a session whose features were "
                                 "re-extracted: the analyst may re-rank it on the new ones")
    # review and quality check (ui/review.py)
    review_threshold = param.Number(default=0.5, bounds=(0.0, 1.0), doc="Review shows the "
                                    "patches scoring at least this; Check quality's positives")
    reviewing = param.Boolean(default=False, doc="the Review tab is on screen: the map may "
                              "mark the patches above review_threshold")
    review_ids = param.List(default=[], doc="patches selected in Review (the map outlines "
                            "them); yes / no there labels them all at once")
    check_ids = param.List(default=[], doc="the verification sample still to answer")
    quality_version = param.Integer(default=0, doc="bumped when a quality check changes")
    archive_reason = param.String(default="", doc="why the last scope could not be a session "
                                  "(too large for this machine's memory): Scope then offers "
                                  "the archive index's search over it (ui/archive.py)")

    def __init__(self, store: Store, **params: Any) -> None:
        super().__init__(**params)
        self.store = store
        self.last_round = None  # RoundResult of the latest round in this browser session
        self.timings: dict[str, float] = {}
        self._geometry: tuple | None = None
        self._labelled: tuple | None = None

    # ---- messages ---------------------------------------------------------------
    def say(self, text: str, severity: str = "info") -> None:
        self.param.update(message=text, severity=severity)

    @contextlib.contextmanager
    def work(self, what: str, quiet: bool = False) -> Iterator[None]:
        """Run a callback's core call: busy flag on, any eominer error (or bug) becomes a
        clear message on the status line and the app keeps running. `quiet` reports
        errors only.

        The browser's document is held meanwhile: Panel sends the changes combined
        when the outermost action ends, not one websocket message per change (a label
        click changes ~25 properties; each message waits its turn on the socket, and on
        a busy 2-core machine that wait alone took over a second)."""
        import panel as pn

        with pn.io.hold(), self._work(what, quiet):
            yield

    @contextlib.contextmanager
    def working(self, what: str) -> Iterator[None]:
        """`work` for a coroutine that awaits inside it: the document is not held, since
        holding it across the await would hold this session's other updates too."""
        with self._work(what, False):
            yield

    @contextlib.contextmanager
    def _work(self, what: str, quiet: bool) -> Iterator[None]:
        self.busy = True
        if not quiet:
            self.param.update(message=f"{what}...", severity="info")
        t0 = time.perf_counter()
        try:
            yield
        except EominerError as exc:
            self.say(f"{what}: {exc}", "error")
        except Exception as exc:  # the app must survive a bug in one callback
            traceback.print_exc()
            self.say(f"{what} failed unexpectedly: {type(exc).__name__}: {exc}", "error")
        else:
            self.timings[what] = time.perf_counter() - t0
            if self.message == f"{what}...":
                self.say(f"{what}: done in {self.timings[what]:.2f} s", "success")
        finally:
            self.busy = False

    # ---- session actions (the views call these; the core does the work) ----------
    def start_session(self) -> None:
        from eominer.errors import ScopeTooLargeError
        from eominer.learning.session import Session

        with self.work("start session"):
            if not self.product_ids:
                raise_session("pick at least one product in Scope")
            try:
                s = Session.create(
                    self.store, f"{self.concept} by {self.user}", owner=self.user,
                    concept=self.concept, product_ids=self.product_ids, level=self.level,
                    feature_set_ids=self.feature_set_ids, model_kind=self.model_kind,
                    strategy=self.strategy, max_cloud=self.max_cloud,
                    aoi=self.aoi or None, where=self.where.strip() or None,
                    params={"spatial_context": float(self.spatial_context),
                            "spatial_weight": float(self.spatial_weight),
                            "prior": self.prior.strip() or None},
                )
            except ScopeTooLargeError as exc:
                self.archive_reason = ""  # a watcher fires again for the same text
                self.archive_reason = str(exc)
                raise ScopeTooLargeError(
                    f"{exc}; or find more like it through the archive index (Scope, "
                    "\"Find more like this across the archive\")", exc.n, exc.need,
                    exc.available) from exc
            self.session = s
            self.last_round = None
            pid = self.product_id if self.product_id in self.product_ids else self.product_ids[0]
            scores = s.prior_ranking()
            self.param.update(product_id=pid, scores=scores, prior_only=scores is not None,
                              published="", selected=None,
                              batch=[int(i) for i in s.cold_start()], top=_top(s, scores))
            self.scores_version += 1
            self.labels_version += 1
            set_url_session(s.session_id)
            self.say(f"session {s.session_id}: {s.data.n} patches"
                     + (f", {s.missing} without features" if s.missing else "")
                     + (f"; the map ranks them by {s.params.prior} until the first yes"
                        if scores is not None else "")
                     + "; label the patches of the grid, then Learn", "success")

    def open_session(self, session_id: str, accept_feature_change: bool = False) -> None:
        """Reopen a session as it was: scope, labels, rounds, ranking, next batch. With
        `accept_feature_change` (its features were re-extracted) the same labels are
        re-ranked on the new features at once."""
        from eominer.errors import FeaturesChangedError
        from eominer.learning.manage import visible_session
        from eominer.learning.session import Session

        with self.work("open session"):
            visible_session(self.store, session_id, self.user)
            try:
                s = Session.open(self.store, session_id,
                                 accept_feature_change=accept_feature_change)
            except FeaturesChangedError:
                self.stale_session = session_id
                raise
            self.stale_session = ""
            rounds = s.rounds()
            fitted = any(r.fitted for r in rounds)
            scores = s.current_scores() if fitted and not accept_feature_change else \
                None if fitted else s.prior_ranking()
            done = set(s.labels()[0].tolist())
            batch = [int(i) for i in s.open_questions()] if rounds else \
                [int(i) for i in s.cold_start() if int(i) not in done]
            self.last_round = None
            self.session = None  # views drop the old session's overlay first
            self.param.update(
                product_ids=list(s.product_ids), level=s.level,
                feature_set_ids=list(s.feature_set_ids), concept=s.concept,
                model_kind=s.record.model_kind, strategy=s.record.strategy,
                max_cloud=s.params.max_cloud, aoi=s.params.aoi_wkt or "",
                where=s.params.where or "", spatial_context=float(s.params.spatial_context),
                spatial_weight=float(s.params.spatial_weight), prior=s.params.prior or "",
                product_id=self.product_id if self.product_id in s.product_ids
                else s.product_ids[0],
                scores=scores, prior_only=scores is not None and not fitted,
                published="", selected=None, batch=batch, top=_top(s, scores),
                # review (and check) the positives where the session was last published
                review_threshold=float(s.params.publish_threshold),
            )
            self.session = s
            self.scores_version += 1
            self.labels_version += 1
            set_url_session(s.session_id)
            self.say(f"session {s.session_id} reopened: {len(done)} labels, {len(rounds)} "
                     f"rounds" + ("; features changed, re-ranking" if accept_feature_change
                                  else ""), "success")
        if accept_feature_change and self.session is not None \
                and self.session.session_id == session_id:
            self.learn()

    def label(self, patch_id: int, value: int) -> None:
        """+1 yes, -1 no. Written at once; optionally followed by a round."""
        if self.session is None:
            self.say("start a session in Scope first", "warning")
            return
        with self.work("label"):
            self.session.label(int(patch_id), int(value), self.user)
            self.batch = [p for p in self.batch if p != int(patch_id)]
            self.labels_version += 1
            self.say(f"patch {patch_id} labelled {'yes' if value > 0 else 'no'} "
                     f"by {self.user}", "success")
        if self.learn_on_label:
            self.learn()

    def label_many(self, patch_ids: list[int], value: int) -> int:
        """The same answer for many patches (review selection, box or lasso on the
        map): one transaction, then one round re-fits the ranking. Returns the count."""
        if self.session is None:
            self.say("start a session in Scope first", "warning")
            return 0
        n = 0
        with self.work("label"):
            n = self.session.label_many(patch_ids, int(value), self.user)
            done = set(int(p) for p in patch_ids)
            self.batch = [p for p in self.batch if p not in done]
            self.labels_version += 1
            self.say(f"{n} patches labelled {'yes' if value > 0 else 'no'} by {self.user}",
                     "success")
        if n:
            self.learn()  # a bulk correction always re-fits the ranking
        return n

    def check_quality(self, n: int = 40) -> None:
        """Ask for a stratified verification sample of the latest round (Quality tab)."""
        if self.session is None:
            self.say("start a session in Scope first", "warning")
            return
        with self.work("check quality"):
            ids, t = self.session.quality_sample(self.review_threshold, n)
            self.check_ids = [int(i) for i in ids]
            self.quality_version += 1
            same = abs(t - self.review_threshold) < 1e-9
            self.say(f"{len(ids)} patches to verify (positives: score >= {t:.2f}"
                     + ("" if same else ", the threshold of this round's first sample")
                     + "): answer yes or no; they are not used for training",
                     "success" if same else "warning")

    def verify(self, patch_id: int, value: int) -> None:
        """Answer one patch of the verification sample; the estimate follows."""
        if self.session is None:
            return
        with self.work("verify"):
            self.session.label(int(patch_id), int(value), self.user, purpose="verify")
            self.check_ids = [p for p in self.check_ids if p != int(patch_id)]
            est = self.session.check_quality()
            self.quality_version += 1
            if est is None:
                self.say(f"patch {patch_id} verified; the estimate needs an answer in "
                         "every stratum", "success")
            else:
                self.say(f"patch {patch_id} verified: precision {_pct(est.precision)}, "
                         f"recall {_pct(est.recall)} ({est.verified} answers)", "success")

    def skip(self, patch_id: int) -> None:
        self.batch = [p for p in self.batch if p != int(patch_id)]

    def undo(self) -> None:
        if self.session is None:
            return
        with self.work("undo"):
            last = self.session.undo_last_label(self.user)
            self.labels_version += 1
            if last is None:
                self.say("nothing to undo", "warning")
            else:
                if last.patch_id not in self.batch:
                    self.batch = [last.patch_id, *self.batch]
                self.say(f"label of patch {last.patch_id} removed", "success")

    def learn(self) -> None:
        if self.session is None:
            self.say("start a session in Scope first", "warning")
            return
        with self.work("learn"):
            r = self.session.run_round()
            self.last_round = r
            # no positive yet, and none fitted before: a session with a prior shows the
            # prior's ranking, whose weight has moved with the labels
            scores = r.scores
            if scores is None and not any(x.fitted for x in self.session.rounds()):
                scores = self.session.prior_ranking()
            if scores is not None:
                self.param.update(scores=scores, prior_only=r.scores is None)
            # the map's overlay goes out with this callback; the other views (the next
            # questions' thumbnails read from the COG, the rounds chart, the review) draw
            # theirs once it has gone (`Soon`): the analyst looks at the map first
            self.scores_version += 1
            if scores is not None:  # a pass over every score (~50 ms at 10M): after
                after_this(lambda s=self.session, sc=scores: self._set_top(s, sc), SOON_S)
            self.batch = [int(i) for i in r.query_ids]
            notes = "; ".join(r.notes)
            self.say(f"round {r.round}: {r.n_labels} labels ({r.n_positive} yes), "
                     f"{r.seconds * 1000:.0f} ms" + (f". {notes}" if notes else ""),
                     "warning" if r.scores is None else "success")

    def _set_top(self, session: Session, scores: np.ndarray) -> None:
        """The best 40 of a round's scores (Top results), unless the session changed."""
        if self.session is session:
            self.top = _top(session, scores)

    def publish(self, threshold: float) -> None:
        if self.session is None:
            self.say("start a session in Scope first", "warning")
            return
        with self.work("publish"):
            self.published = self.session.publish(threshold)
            self.say(f"published '{self.session.concept}' as model {self.published}: "
                     "query it in SQL (table annotations)", "success")

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """This user's effective labels in the session (patch ids, +1/-1)."""
        if self.session is None:
            return np.empty(0, np.int64), np.empty(0, np.int8)
        # read once per change: a click asks for them from the grid, map and rounds
        key = (self.session.session_id, self.labels_version)
        if self._labelled is None or self._labelled[0] != key:
            t = self.store.session_labels(self.session.session_id).to_pylist()
            mine = {int(r["patch_id"]): int(r["label"]) for r in t
                    if r["user_name"] == self.user and r["purpose"] == "train"}
            ids = np.asarray(sorted(mine), np.int64)
            self._labelled = (key, ids, np.asarray([mine[i] for i in ids.tolist()], np.int8))
        return self._labelled[1], self._labelled[2]

    def patch_windows(self, patch_ids: list[int]) -> list[PatchWindow]:
        """Pixel windows of session patches, from the scope's geometry read once per
        session (sorted ids: a lookup is a binary search)."""
        sess = self.session
        if sess is None or not patch_ids:
            return []
        if self._geometry is None or self._geometry[0] != sess.session_id:
            t = self.store.scope_patches(sess.product_ids, sess.level)
            self._geometry = (sess.session_id, t["patch_id"].to_numpy().astype(np.int64),
                              np.asarray(t["product_id"].to_pylist(), object),
                              t["x_off"].to_numpy(), t["y_off"].to_numpy(),
                              t["size_px"].to_numpy())
        _, ids, prod, xs, ys, ss = self._geometry
        at = np.clip(np.searchsorted(ids, np.asarray(patch_ids, np.int64)), 0, len(ids) - 1)
        return [PatchWindow(int(ids[i]), str(prod[i]), int(xs[i]), int(ys[i]), int(ss[i]))
                for i in at.tolist()]

    def scores_of(self, patch_ids: list[int]) -> list[float | None]:
        if self.scores is None or self.session is None or not patch_ids:
            return [None] * len(patch_ids)
        rows = self.session.data.rows(patch_ids)
        return [float(v) for v in self.scores[rows]]

    def on_error(self, what: str) -> Callable[[BaseException], None]:
        return lambda exc: self.say(f"{what}: {exc}", "error")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def set_url_session(session_id: str) -> None:
    """Put `?session=ID` in the browser's address bar: the link reopens the session."""
    import panel as pn

    loc = pn.state.location
    if loc is not None and pn.state.curdoc is not None \
            and pn.state.curdoc.session_context is not None:
        loc.search = f"?session={session_id}"


def raise_session(text: str) -> None:
    from eominer.errors import SessionError

    raise SessionError(text)


def _top(session: Session, scores: np.ndarray | None) -> list[int]:
    """Patch ids of the 40 best `scores` (Top results) among the patches not answered yet:
    the ranking puts every "yes" first, which the analyst has seen. None without scores."""
    if scores is None:
        return []
    ids, _ = session.labels()
    if len(ids):
        scores = scores.copy()
        scores[session.data.rows(ids)] = -np.inf
    rows = top_rows(scores, 40, session.tiebreak())
    return [int(i) for i in session.patch_ids[rows]]


# Panel writes a callback's messages as tasks on the server's loop: a next-tick callback
# starts before a 2 MB overlay has gone out, and takes the CPU its sending and the
# browser's repaint need (2 cores: +0.2-0.4 s per label click at 1.2M patches)
SOON_S = 0.15


class Soon:
    """Call `fn` SOON_S after the current callback's changes have gone to the browser,
    once however often it is asked meanwhile: a label click and its round both change
    the batch, and the grid is drawn once, after the map's overlay."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self._due = False

    def __call__(self, *_: Any) -> None:
        if not self._due:
            self._due = True
            after_this(self._run, SOON_S)

    def _run(self) -> None:
        self._due = False
        self.fn()


def after_this(fn: Callable[[], None], delay_s: float = 0.0) -> None:
    """Run `fn` once the current callback's changes are on their way to the browser (the
    next tick of the server's loop, or `delay_s` later); at once outside a server
    (JupyterLab, tests)."""
    import panel as pn

    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        fn()
    elif delay_s > 0:
        doc.add_timeout_callback(fn, int(delay_s * 1000))
    else:
        doc.add_next_tick_callback(fn)


_POLL_FAILURES: set[tuple[str, str]] = set()


def poll_failed(what: str, exc: BaseException) -> None:
    """A periodic read failed (a dropped connection, a file another process holds, a
    bug): the app stays up and the next poll asks again. The first failure of each kind
    goes to the server's log with its traceback, so a bug does not hide behind a line
    that merely stays empty."""
    key = (what, f"{type(exc).__name__}: {exc}")
    if key not in _POLL_FAILURES:
        _POLL_FAILURES.add(key)
        print(f"eominer app: {what} failed; asking again at the next poll", flush=True)
        traceback.print_exception(exc)
