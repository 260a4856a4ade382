"""Batch jobs started from the app: `eominer extract`, `eominer change --pairs`,
`eominer encoder train` and `eominer apply` (Publish tab), the same runner jobs a
terminal starts, each in a process of its own (never in the server's event loop). The
app follows them through their progress log and reloads the scope when one finishes;
the launcher is shared by the browser sessions of one server, so a job started twice is
refused with the progress of the first. Who started a job may stop it: SIGTERM, which the
CLI takes as a Ctrl-C (finished tasks committed, a re-run resumes). A job of the database
with tasks left (stopped here or in a terminal) is resumed by `eominer jobs resume`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import panel as pn
import param
from panel.viewable import Viewer

from eominer.errors import SessionError
from eominer.features import encoder, mosaiks
from eominer.ui.state import AppState, poll_failed

if TYPE_CHECKING:
    from eominer.store import Store

# What the app's encoder job may see: the four 10 m bands (any S2 product has them), or
# the ten 10 m and 20 m bands, ahead for land cover (docs/learning.md) where every
# selected product holds them
ENCODER_BANDS: dict[str, tuple[str, ...]] = {
    "4 bands (10 m)": encoder.BANDS,
    "10 bands (10 and 20 m)": mosaiks.DEFAULT_BANDS,
}
# `extract --neighbours R`: each set's nbr_<set> too (docs/features.md)
NEIGHBOURS: dict[str, int] = {"none": 0, "within 1 patch (3 x 3)": 1,
                              "within 2 patches (5 x 5)": 2, "within 3 patches (7 x 7)": 3}


@dataclass
class AppJob:
    """One job process started from the app."""

    key: tuple[str, ...]
    label: str
    user: str
    proc: subprocess.Popen
    log: Path  # the runner's progress log: one JSON line per committed task
    output: Path  # what the command printed
    started: float = field(default_factory=time.time)
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    done_note: str = "its results are in the scope"  # what the app says when it is done
    stopped_by: str | None = None

    @property
    def state(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "running"
        # 143: the CLI's exit on SIGTERM; -15: the signal came before it set its handler
        return "done" if code == 0 else "stopped" if self.stopped_by and code in (
            143, -signal.SIGTERM) else "failed"

    def stop(self, user: str) -> None:
        """SIGTERM to the job's process: it commits what finished and exits; started
        again, the same job resumes. Only who started it may."""
        if self.state != "running":
            raise SessionError(f"{self.label} is not running ({self.state})")
        if user != self.user:
            raise SessionError(f"{self.label} was started by {self.user}: only they can "
                               "stop it")
        self.stopped_by = user
        self.proc.send_signal(signal.SIGTERM)

    def progress(self) -> tuple[int, int] | None:
        """(tasks done, tasks to run) from the last line of the progress log."""
        try:
            lines = self.log.read_text(encoding="utf-8").splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            try:
                row = json.loads(line)
                return int(row["done"]), int(row["of"])
            except (ValueError, KeyError):
                continue
        return None

    def said(self) -> str | None:
        """The job's last line of its own progress: what its tasks said of themselves
        (`task_says`, `{"said": ...}` rows of its progress log: an epoch, a change pair's
        step), else a `training ...` or `epoch ...` line found in its output among
        library logs (TensorFlow's)."""
        try:
            rows = self.log.read_text(encoding="utf-8").splitlines()
        except OSError:
            rows = []
        for row in reversed(rows):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return str(json.loads(row)["said"])[:160]
        try:
            text = self.output.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        for line in reversed(text.splitlines()[-200:]):
            if re.match(r"(epoch \d+/\d+|training )", line.strip()):
                return line.strip()[:160]
        return None

    def describe(self) -> str:
        p = self.progress()
        mins = (time.time() - self.started) / 60
        if self.state == "running":
            # before its first commit: what the job last said of itself (an encoder's
            # epochs), or "starting" (planning, Ray starting)
            done = f"{p[0]}/{p[1]} tasks" if p else self.said() or "starting"
            return f"{self.label}: running, {done} ({mins:.0f} min, started by {self.user})"
        if self.state == "done":
            return f"{self.label}: done" + (f", {p[1]} tasks" if p else "")
        if self.state == "stopped":
            kept = f"{p[0]}/{p[1]} tasks finished, kept" if p else "no task finished"
            return (f"{self.label}: stopped by {self.stopped_by} ({kept}); Resume it "
                    "below, or start it again")
        tail = self.output.read_text(encoding="utf-8", errors="replace").strip()
        last = tail.splitlines()[-1] if tail else ""
        return f"{self.label}: failed ({last[:200]}); full output in {self.output}"


class JobLauncher:
    """The jobs one server started (shared by its browser sessions)."""

    def __init__(self, db_url: str, folder: Path) -> None:
        self.db_url = db_url
        self.folder = folder
        self.jobs: dict[tuple[str, ...], AppJob] = {}

    def start(self, key: tuple[str, ...], label: str, args: Sequence[str], user: str,
              done_note: str | None = None) -> AppJob:
        running = self.jobs.get(key)
        if running is not None and running.state == "running":
            raise SessionError(f"{label} is already running: {running.describe()}")
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{key[0]}_{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}"
        log, output = self.folder / f"{name}.progress.jsonl", self.folder / f"{name}.log"
        # the URL goes in the environment: a MonetDB password stays out of `ps`
        env = dict(os.environ, EOMINER_DB=self.db_url, PYTHONUNBUFFERED="1",
                   EOMINER_JOB_USER=user)  # recorded with the job's command
        with open(output, "w", encoding="utf-8") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "eominer", *args, "--progress-log", str(log)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)  # a Ctrl-C of the server does not kill it mid-commit
        job = AppJob(key, label, user, proc, log, output,
                     done_note=done_note or AppJob.done_note)
        self.jobs[key] = job
        return job

    def extract(self, product_ids: Sequence[str], features: Sequence[str], user: str,
                params: Mapping[str, str] | None = None, neighbours: int = 0) -> AppJob:
        """`eominer extract` of `features` on the products; `params` are its `--param`s
        (e.g. {"ssl.model_id": "ssl-v2"}: that encoder instead of the newest);
        `neighbours` R > 0 also writes each set's nbr_<set> (`--neighbours R`)."""
        if not product_ids or not features:
            raise SessionError("pick products in the list and at least one feature set to "
                               "extract")
        products, names = sorted(product_ids), sorted(features)
        pairs = [f"{k}={v}" for k, v in sorted((params or {}).items())]
        shown = pairs + ([f"neighbours {neighbours}"] if neighbours else [])
        chosen = f" ({', '.join(shown)})" if shown else ""
        return self.start(("extract", ",".join(names), *shown, *products),
                          f"extract {', '.join(names)}{chosen} on {len(products)} product(s)",
                          ["extract", "--features", ",".join(names), "--products",
                           ",".join(products)] + [a for p in pairs for a in ("--param", p)]
                          + (["--neighbours", str(neighbours)] if neighbours else []),
                          user)

    def change(self, before: str, after: str, user: str) -> AppJob:
        return self.change_pairs([(before, after)], user)

    def change_pairs(self, pairs: Sequence[tuple[str, str]], user: str,
                     both_dates: Sequence[str] = ()) -> AppJob:
        """`eominer change --pairs` of `pairs` (one job; a re-run keeps the done ones);
        `both_dates`: extracted sets whose features of both dates it writes too
        (`--features`, eominer.change.dates)."""
        (before, after), more = pairs[0], len(pairs) - 1
        name = f"pairs_{before}__{after}" + (f"_and_{more}_more" if more else "")
        listed = self.folder / f"{name}.txt"
        self.folder.mkdir(parents=True, exist_ok=True)
        listed.write_text("".join(f"{a} {b}\n" for a, b in pairs), encoding="utf-8")
        label = f"change {before} -> {after}" + (f" and {more} more pair(s)" if more else "")
        if both_dates:
            label += f", with both dates' {', '.join(sorted(both_dates))}"
        return self.start(("change", *(p for pair in pairs for p in pair)), label,
                          ["change", "--pairs", str(listed)]
                          + (["--features", ",".join(sorted(both_dates))] if both_dates
                             else []), user)

    def apply(self, model_id: str, threshold: float, user: str) -> AppJob:
        """Score every product with the model's features (`eominer apply`)."""
        return self.start(("apply", model_id), f"apply model {model_id}",
                          ["apply", model_id, "--threshold", f"{threshold:g}"], user,
                          done_note="its scores are rows of annotations (source 'apply', "
                          "SQL tab)")

    def train_encoder(self, product_ids: Sequence[str], user: str, epochs: int = 5,
                      max_patches: int = 20000,
                      bands: Sequence[str] = ENCODER_BANDS["4 bands (10 m)"]) -> AppJob:
        """Train the self-supervised encoder (`eominer encoder train`) on the products'
        patches, seeing `bands`; `ssl` can be extracted once it is done."""
        if not product_ids:
            raise SessionError("pick the products to train the encoder on in the list")
        products = sorted(product_ids)
        return self.start(("encoder", *products),
                          f"train the ssl encoder on {len(products)} product(s)",
                          ["encoder", "train", "--products", ",".join(products), "--epochs",
                           str(epochs), "--max-patches", str(max_patches), "--bands",
                           ",".join(bands)], user,
                          done_note="the ssl encoder is trained: extract `ssl` (Feature sets "
                          "to extract) to mine with it")

    def resume(self, job_id: str, command: str, user: str) -> AppJob:
        """`eominer jobs resume JOB_ID`: the job's recorded command again, from the app;
        its finished tasks are kept."""
        shown = command if len(command) <= 90 else command[:87] + "..."
        return self.start(("resume", job_id), f"resume {shown}",
                          ["jobs", "resume", job_id], user,
                          done_note="what it finished is in the scope")

    def active(self) -> list[AppJob]:
        return list(self.jobs.values())

    def stop(self, job_id: str, user: str) -> AppJob:
        job = next((j for j in self.jobs.values() if j.job_id == job_id), None)
        if job is None:
            raise SessionError("that job is no longer listed: the server was restarted; "
                               "stop it from a terminal (eominer jobs, then kill its process)")
        job.stop(user)
        return job


NEWEST = "the newest"  # the ssl model choice that leaves it to extract (its default)


def ssl_model_options(store: Store) -> dict[str, str]:
    """The app's choice of ssl encoder for an extract: the newest (extract's default),
    then every trained one, newest first, named by what it sees and how it was
    trained (`eominer encoder list`)."""
    from eominer.features.encoder import model_bands

    out = {NEWEST: ""}
    for m in reversed(store.models("ssl")):
        p = m["params"]
        when = str(m["created"])[:16]
        out[f"{m['model_id']}: {len(model_bands(p))} bands, {p.get('epochs')} epochs, "
            f"seed {p.get('seed')}, {when}"] = m["model_id"]
    return out


def stopped_jobs(store: Store, limit: int = 50,
                 unended: list[dict] | None = None) -> dict[str, tuple[str, str]]:
    """The jobs the app offers to resume: those that ended with tasks left (stopped,
    failed past their retries, or killed: their process gone with tasks marked at work)
    whose command was recorded (`eominer jobs resume` runs it again); the `limit` that
    last ran, newest first, label -> (job id, command). `unended`: `Store.unended_jobs`
    already read (the app's poll reads it once for the status line and this)."""
    from compute.runner import job_state

    out: dict[str, tuple[str, str]] = {}
    jobs = sorted(store.unended_jobs() if unended is None else unended,
                  key=lambda j: (j["moved"] is not None, j["moved"], j["job_id"]),
                  reverse=True)
    for r in jobs:
        state = job_state(r)
        if state.startswith("at work"):  # its process lives, or cannot be told
            continue
        killed = "killed: " if state == "killed" else ""
        left = r["stopped"] + r["failed"] + r["running"] + r["pending"]
        recorded = store.job_command(r["job_id"])
        if recorded is None:
            continue
        when = f"last ran {r['moved']:%Y-%m-%d %H:%M}" if r["moved"] else "never ran"
        by = f" by {recorded.user}" if recorded.user else ""
        shown = recorded.command.removeprefix("eominer ")
        shown = shown if len(shown) <= 160 else shown[:157] + "..."
        out[f"{shown} ({killed}{left} of {r['tasks']} task(s) left; {when}{by})"] = (
            r["job_id"], recorded.command)
        if len(out) == limit:
            break
    return out


def launcher(db_url: str) -> JobLauncher:
    """The server's launcher for `db_url` (one per process, like the store)."""
    from eominer.workspace import workspace

    key = f"eominer-jobs:{db_url}"
    found = pn.state.cache.get(key)
    if found is None:
        found = pn.state.cache[key] = JobLauncher(db_url, workspace() / "jobs")
    return found


class JobsView(Viewer):
    """Start extract, change or encoder training for the products selected in Scope;
    follow the jobs."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, selected: Callable[[], list[str]], on_finished: Callable[[], None],
                 **params: Any) -> None:
        super().__init__(**params)
        from eominer.features.registry import DEFAULT_FEATURES, available

        self._selected = selected  # () -> the product ids selected in Scope
        self._on_finished = on_finished  # a job finished: reload what it produced
        self._features = pn.widgets.MultiChoice(
            label="Feature sets to extract", options=available(),
            value=[f for f in DEFAULT_FEATURES if f not in ("encoder", "ssl")], width=420,
            css_classes=["eom-extract-features"])
        self._ssl_model = pn.widgets.Select(
            label="ssl encoder", options=ssl_model_options(self.state.store), width=330,
            css_classes=["eom-ssl-model"])
        self._neighbours = pn.widgets.Select(
            label="Neighbourhood sets", options=NEIGHBOURS, width=200,
            css_classes=["eom-extract-neighbours"])
        self._extract = pn.widgets.Button(label="Extract for the selected products",
                                          css_classes=["eom-run-extract"], width=260)
        self._change = pn.widgets.Button(label="Change of the selected dates",
                                         css_classes=["eom-run-change"], width=230)
        self._both_dates = pn.widgets.Checkbox(
            label="with both dates' features of the sets chosen", value=False,
            css_classes=["eom-change-both-dates"])
        self._encoder = pn.widgets.Button(
            label="Train the ssl encoder on the selected products",
            css_classes=["eom-run-encoder"], width=330)
        self._encoder_bands = pn.widgets.Select(
            label="Encoder sees", options=list(ENCODER_BANDS), width=190,
            css_classes=["eom-encoder-bands"])
        self._encoder_epochs = pn.widgets.IntInput(
            label="Epochs", value=5, start=1, end=100, width=80,
            css_classes=["eom-encoder-epochs"])
        self._list = pn.pane.HTML("", css_classes=["eom-app-jobs"], sizing_mode="stretch_width")
        self._running = pn.widgets.Select(label="Running job", options={}, width=420,
                                          visible=False, css_classes=["eom-running-job"])
        self._stop = pn.widgets.Button(label="Stop it", visible=False, width=100,
                                       align="end", css_classes=["eom-stop-job"])
        self._stop.on_click(lambda _: self._stop_job())
        self._stopped = pn.widgets.Select(label="Stopped job (tasks left)", options={},
                                          width=820, visible=False,
                                          css_classes=["eom-stopped-job"])
        self._resume = pn.widgets.Button(label="Resume it", visible=False, width=100,
                                         align="end", css_classes=["eom-resume-job"])
        self._resume.on_click(lambda _: self._resume_job())
        # finished jobs this browser session has shown (those of before it opened count)
        self._seen = {j.job_id for j in self.launcher.active() if j.state != "running"}
        self._extract.on_click(lambda _: self._run_extract())
        self._change.on_click(lambda _: self._run_change())
        self._encoder.on_click(lambda _: self._run_encoder())

    @property
    def launcher(self) -> JobLauncher:
        return launcher(self.state.store.url)

    def _run_extract(self) -> None:
        with self.state.work("start extract"):
            chosen = self._ssl_model.value
            params = {"ssl.model_id": chosen} if chosen and "ssl" in self._features.value \
                else None
            job = self.launcher.extract(self._selected(), self._features.value,
                                        self.state.user, params, self._neighbours.value)
            self.state.say(f"{job.label} started in its own process: progress below",
                           "success")
        self.refresh()

    def _run_change(self) -> None:
        """Two products: their pair, in date order. More: each with the next date of its
        place among them (`eominer change --consecutive`'s pairs)."""
        from eominer.change.consecutive import consecutive_pairs

        with self.state.work("start change"):
            ids = self._selected()
            if len(ids) < 2:
                raise SessionError(f"select 2 products of the same place for change "
                                   f"detection, or more for each with its next date "
                                   f"(selected: {len(ids)})")
            if len(ids) == 2:
                rows = {p.product_id: p for p in self.state.store.product_list()}
                pairs = [tuple(sorted(ids, key=lambda i: (rows[i].acquired is None,
                                                          rows[i].acquired, i)))]
            else:
                found = consecutive_pairs([r for r in self.state.store.products().to_pylist()
                                           if r["product_id"] in set(ids)])
                if not found.pairs:
                    raise SessionError(f"no two of the {len(ids)} selected products are dates "
                                       "of one place (an S2 tile's grid, an S1 orbit)")
                pairs = found.pairs
            both = list(self._features.value) if self._both_dates.value else []
            if self._both_dates.value and not both:
                raise SessionError("choose the feature sets whose both dates' features to "
                                   "write (Feature sets to extract), or untick 'with both "
                                   "dates' features'")
            job = self.launcher.change_pairs(pairs, self.state.user, both)
            self.state.say(f"{job.label} started in its own process", "success")
        self.refresh()

    def _run_encoder(self) -> None:
        with self.state.work("start encoder training"):
            ids, bands = self._selected(), ENCODER_BANDS[self._encoder_bands.value]
            # said here, before a process starts, in the app's words (not --bands)
            for p in self.state.store.product_list():
                lacking = [b for b in bands if b not in p.bands]
                if p.product_id in ids and p.sensor == "S2" and lacking:
                    raise SessionError(
                        f"product {p.product_id} lacks band(s) {', '.join(lacking)}: choose "
                        f"'{next(iter(ENCODER_BANDS))}' in 'Encoder sees', or leave it out "
                        "of the selection")
            job = self.launcher.train_encoder(ids, self.state.user,
                                              epochs=int(self._encoder_epochs.value),
                                              bands=bands)
            self.state.say(f"{job.label} started in its own process", "success")
        self.refresh()

    def _stop_job(self) -> None:
        with self.state.work("stop the job"):
            if not self._running.value:
                raise SessionError("no job of yours is running")
            job = self.launcher.stop(self._running.value, self.state.user)
            self.state.say(f"stopping {job.label}: what finished is kept; start it again "
                           "to resume", "success")
        self.refresh()

    def _resume_job(self) -> None:
        with self.state.work("resume the job"):
            if not self._stopped.value:
                raise SessionError("no stopped job to resume")
            job_id, command = self._stopped.value
            job = self.launcher.resume(job_id, command, self.state.user)
            self.state.say(f"{job.label} started in its own process: its finished tasks "
                           "are kept", "success")
        self.refresh()

    def _offer_resume(self, jobs: list[AppJob], unended: list[dict] | None) -> None:
        """The stopped jobs of the database (any user's, the terminal's too), less those
        this server is resuming now."""
        resuming = {j.key[1] for j in jobs if j.key[0] == "resume" and j.state == "running"}
        try:
            options = {k: v for k, v in stopped_jobs(self.state.store,
                                                     unended=unended).items()
                       if v[0] not in resuming}
        except Exception as exc:  # a poll must not stop the app: logged, asked again
            poll_failed("listing the stopped jobs", exc)
            options = {}
        if options != self._stopped.options:
            keep = self._stopped.value if self._stopped.value in options.values() else None
            self._stopped.options = options
            self._stopped.value = keep or next(iter(options.values()), None)
        self._stopped.visible = self._resume.visible = bool(options)

    def refresh(self, unended: list[dict] | None = None) -> None:
        """Progress of the server's jobs; a job that just finished reloads the scope.
        `unended`: `Store.unended_jobs` already read by the app's poll."""
        import html

        jobs = self.launcher.active()
        self._list.object = "<br>".join(
            f'<span data-state="{j.state}">{html.escape(j.describe())}</span>'
            for j in sorted(jobs, key=lambda j: -j.started)[:8])
        mine = {f"{j.label} (started {time.strftime('%H:%M:%S', time.localtime(j.started))})":
                j.job_id for j in jobs
                if j.state == "running" and j.user == self.state.user and not j.stopped_by}
        if mine != self._running.options:
            keep = self._running.value if self._running.value in mine.values() else None
            self._running.options = mine
            self._running.value = keep or next(iter(mine.values()), None)
        self._running.visible = self._stop.visible = bool(mine)
        self._offer_resume(jobs, unended)
        for j in jobs:
            if j.state != "running" and j.job_id not in self._seen:
                self._seen.add(j.job_id)
                if j.state == "done":
                    self._on_finished()
                    self._reload_models()
                    self.state.say(f"{j.label}: done; {j.done_note}", "success")
                elif j.state == "stopped":
                    self._on_finished()  # what it had finished is in the scope
                    self.state.say(j.describe(), "warning")
                else:
                    self.state.say(j.describe(), "error")

    def _reload_models(self) -> None:
        """A job may have trained an encoder: list it (the choice stays where it was)."""
        options = ssl_model_options(self.state.store)
        keep = self._ssl_model.value if self._ssl_model.value in options.values() else ""
        self._ssl_model.options = options
        self._ssl_model.value = keep

    @staticmethod
    def _row(*widgets: pn.viewable.Viewable) -> pn.FlexBox:
        return pn.FlexBox(*widgets, flex_wrap="wrap", align_items="flex-end",
                          sizing_mode="stretch_width")

    def __panel__(self) -> pn.Column:
        return pn.Column(
            pn.pane.Markdown("#### Batch jobs (Ray, in their own processes)"),
            # one row per job; a row wraps in a narrow window rather than being cut
            self._row(self._features, self._ssl_model, self._neighbours, self._extract),
            self._row(self._change, self._both_dates),
            self._row(self._encoder_bands, self._encoder_epochs, self._encoder),
            self._list, pn.Row(self._running, self._stop),
            pn.Row(self._stopped, self._resume), sizing_mode="stretch_width")
