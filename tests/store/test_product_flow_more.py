"""The CLI paths test_product_flow leaves out, on each engine, against DuckDB's answers.

Two flows on real data, each in a workspace of its own:
- Sentinel-1 and fusion (BigEarthNet's tiny S1/S2 patches): ingest of S1 products, the
  `sar` descriptors, an S1 change pair by each S1 method (date 2 a PLANTED change, as in
  tests/change/test_run_s1.py: a 40 x 40 px block of a neighbouring real patch), and
  `fusion pair` / `fusion features` (training and classifying need TensorFlow, which the
  monetdbe side environment lacks).
- a time series of one place: 16 clear dates of eo-learn's TestEOPatch, each written as
  tests/change/test_series.py writes it (its real NDVI, its PLANTED break at 2017-06-20)
  with the reference scene's other bands beside. An extract stopped by a damaged tile,
  `jobs` and `jobs resume` once repaired; `timeseries` and `change --consecutive` over
  three dates, each run twice; a session on the series' descriptors (LULC grassland as
  the answers) through undo, next, rename, share and show; `products` and `sql --to`.
  Not here: a job killed or stopped by a signal, whose resume needs a second process
  (the killed one), and monetdbe serves one process per database (tests/cli/test_jobs.py
  and test_cli.py run those on DuckDB).
In make test's Python 3.10 side environment each answer on monetdbe is compared with
DuckDB's, in the same process; here DuckDB's answers are checked against the data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.change.test_run_s1 import DATE1 as S1_DATE1
from tests.change.test_run_s1 import DATE2 as S1_DATE2
from tests.change.test_run_s1 import planted_second_date
from tests.cli.test_jobs import damage_tile
from tests.store.test_product_flow import OTHERS

S1_LEVEL = 20
FUSION_LEVEL = 60
# TestEOPatch dates with >= 70 % clear pixels; its planted break is at date 44
DATES = (0, 9, 12, 18, 24, 28, 33, 37, 41, 44, 46, 49, 51, 54, 59, 64)
PLANTED_AT = 44
TS_LEVEL = 10
GRASSLAND = 3  # LULC class id


def _url(engine: str, home: Path) -> str:
    return {"duckdb": f"duckdb:///{home / 'eominer.duckdb'}",
            "monetdbe": f"monetdbe:///{home / 'monetdbe'}"}[engine]


def _run(args: list[str], env: dict[str, str], code: int = 0) -> tuple[str, str]:
    """`eominer ARGS` through its entry point (which records a job's command line for
    `jobs resume`), in this process; its stdout and stderr."""
    from click.testing import CliRunner

    from eominer.cli import main

    with CliRunner().isolation(env=env) as (out, err, _):
        try:
            main(args)
            got = 0
        except SystemExit as exc:
            got = int(exc.code or 0)
        said = out.getvalue().decode(), err.getvalue().decode()
    assert got == code, f"eominer {' '.join(args)}: exit {got}\n{said[0]}\n{said[1]}"
    return said


@dataclass
class S1Flow:
    ingested: list[str]  # `ingest` lines: id, sensor, patches
    sar: list[float]  # rows of the sar set and a few column sums
    # method -> threshold, changed fraction, days apart, patches changed (> 90 %)
    changes: dict[str, tuple[float, float, float, list[int]]]
    inside: list[int]  # the level-20 patches inside the planted block
    paired: str  # what `fusion pair` said
    fused: str  # what `fusion features --from-sets` said
    fused_sums: list[float]


def run_s1(engine: str, home: Path, ben: Path) -> S1Flow:
    from eominer.store import open_store

    url = _url(engine, home)
    env = {"EOMINER_HOME": str(home), "EOMINER_DB": url}
    second = planted_second_date(ben, home / "planted")
    out, _ = _run(["ingest", *map(str, sorted((ben / "s2-tiny").iterdir())),
                   *map(str, sorted((ben / "s1-tiny").iterdir())), str(second),
                   "--levels", f"{S1_LEVEL},{FUSION_LEVEL}", "--workers", "0"], env)
    ingested = sorted(" ".join(ln.split()[:2] + ln.split()[-2:]) for ln in out.splitlines()
                      if ln.endswith(" patches"))
    _run(["extract", "--features", "spectral,sar", "--workers", "0"], env)
    changes = {}
    for method in ("rom", "logratio"):
        _run(["change", S1_DATE1, S1_DATE2, "--method", method], env)
    with open_store(url) as store:
        (fs,) = store.feature_sets("sar")
        cols = list(fs.columns[:2]) + list(fs.columns[-2:])
        sar = [float(v) for v in store.query(
            f"SELECT COUNT(*), {', '.join(f'SUM({c})' for c in cols)} FROM {fs.table_name}")[0]]
        for pair in store.pairs(kind="change").to_pylist():
            p = store.pair(pair["pair_id"])["params"]
            top = store.changed_patches(pair["pair_id"], level=S1_LEVEL, min_share=0.9)
            changes[p["method"]] = (round(p["threshold"], 5), round(p["changed_fraction"], 6),
                                    pair["days_apart"], sorted(top["patch_id"].to_pylist()))
        w = store.patches(S1_DATE1, S1_LEVEL).to_pydict()
        inside = sorted(int(p) for p, x, y in zip(w["patch_id"], w["x_off"], w["y_off"],
                                                    strict=True)
                        if 20 <= y <= 40 and 30 <= x <= 50)
    paired, _ = _run(["fusion", "pair", "--level", str(FUSION_LEVEL)], env)
    fused, _ = _run(["fusion", "features", "--level", str(FUSION_LEVEL), "--from-sets",
                     "spectral", "sar"], env)
    with open_store(url) as store:
        fs = store.require_feature_set(fused.split()[2].rstrip(":"))
        cols = list(fs.columns[:2]) + list(fs.columns[-2:])
        fused_sums = [float(v) for v in store.query(
            f"SELECT COUNT(*), {', '.join(f'SUM({c})' for c in cols)} FROM {fs.table_name}")[0]]
    return S1Flow(ingested, sar, changes, inside, paired, fused, fused_sums)


@pytest.fixture(scope="module")
def duckdb_s1(tmp_path_factory, ben: Path) -> S1Flow:
    return run_s1("duckdb", tmp_path_factory.mktemp("s1_duckdb"), ben)


def test_sentinel1_change_and_fusion(duckdb_s1: S1Flow) -> None:
    f = duckdb_s1
    s1 = [ln for ln in f.ingested if ln.split()[1] == "S1"]
    assert len(s1) == 7 and len(f.ingested) == 10
    # 120 x 120 px: 36 patches of 20 px and 4 of 60 per product
    assert all(ln.endswith("40 patches") for ln in f.ingested)
    assert f.sar[0] == 7 * 40 and np.isfinite(f.sar).all()
    assert len(f.inside) == 2
    for method in ("rom", "logratio"):
        threshold, fraction, days, changed = f.changes[method]
        # the block is 40 x 40 of 120 x 120 px (11 %), plus speckle over the CFAR guard
        assert days == pytest.approx(12) and threshold >= 1 and 0.11 < fraction < 0.15
        assert changed == f.inside, method  # the planted block, and only it
    assert "3 pairs recorded" in f.paired and "12 fused rows at level 60" in f.paired
    assert " 12 fused rows at level 60" in f.fused and f.fused_sums[0] == 12


@pytest.mark.parametrize("engine", OTHERS)
def test_sentinel1_on_each_engine_gives_duckdbs_answers(engine: str, duckdb_s1: S1Flow,
                                                       tmp_path: Path, ben: Path) -> None:
    f = run_s1(engine, tmp_path / engine, ben)
    d = duckdb_s1
    assert f.ingested == d.ingested
    np.testing.assert_allclose(f.sar, d.sar, rtol=1e-5)
    assert f.changes == d.changes and f.inside == d.inside
    assert f.paired == d.paired
    assert f.fused.split()[3:] == d.fused.split()[3:]  # the set's id holds no engine
    np.testing.assert_allclose(f.fused_sums, d.fused_sums, rtol=1e-5)


@dataclass
class StackFlow:
    listed: list[dict]  # `products --since --until --features --format json`
    stopped: tuple[dict, str]  # the extract job with a product's file gone, and `jobs`'s note
    resumed: tuple[str, list[tuple[int, int, int]]]  # what `jobs resume` said; the jobs
    spectral_rows: int
    series: list[str]  # what `timeseries` said
    again: list[str]  # what `timeseries` and `change --consecutive`, run again, said
    breaks: dict[int, tuple[float, float, int]]  # patch -> break year, size, reason code
    block: list[int]  # the patches inside the planted block
    temporal: list[float]  # rows and column sums of the temporal set
    # the note; per pair: dates, changed fraction, the (x, y) of its patches > 50 % changed
    consecutive: tuple[str, list[tuple[str, str, float, list[tuple[int, int]]]]]
    questions: list[list[int]]
    undone: str  # what `session undo` said
    next_open: tuple[str, str]  # `session next` before and after the undo
    admin: list[str]  # what rename and share said
    shown: dict  # `session show`, the parts that hold no time
    exported: list[str]  # `sql ... --to FILE.csv`, its lines
    truth: dict[int, bool]


def _stack_files(shared: Path, folder: Path) -> list[Path]:
    """Each date as tests/change/test_series.py writes it (its real NDVI in B08 over the
    clear reference scene, no data where the EOPatch says cloud), with the reference
    scene's other nine bands beside: a change map needs ten."""
    import rasterio

    from eominer.evaluation.eolearn import REFERENCE_SCENE, read_eopatch
    from eominer.sensors import S2_BAND_ORDER
    from tests.change.test_series import write_date

    eop = read_eopatch(shared)
    scene = eop.scenes[REFERENCE_SCENE]  # eo-learn's L1C order is ESA's
    folder.mkdir(parents=True)
    files = []
    for t in DATES:
        four = write_date(eop, t, folder)
        with rasterio.open(four) as ds:
            dn, profile = ds.read(), ds.profile
        full = np.clip(np.rint(scene * 1e4), 1, 9999).astype(np.uint16).transpose(2, 0, 1)
        for i, band in enumerate(("B02", "B03", "B04", "B08")):
            full[S2_BAND_ORDER.index(band)] = dn[i]
        full[:, ~eop.clear[t]] = 0
        path = four.with_name(four.name.replace("TestEOPatch_", "TestEOPatch13_"))
        with rasterio.open(path, "w", **profile | {"count": 13}) as out:
            out.write(full)
            for i, band in enumerate(S2_BAND_ORDER, 1):
                out.set_band_description(i, band)
        four.unlink()
        files.append(path)
    return files


def _grassland(shared: Path, store, product_id: str) -> dict[int, bool]:
    """A patch is grassland where most of its pixels are, in the EOPatch's LULC."""
    from eominer.evaluation.eolearn import read_eopatch

    lulc = read_eopatch(shared).lulc
    t = store.patches(product_id, TS_LEVEL).to_pydict()
    return {int(p): bool((lulc[y:y + s, x:x + s] == GRASSLAND).mean() > 0.5)
            for p, x, y, s in zip(t["patch_id"], t["x_off"], t["y_off"], t["size_px"],
                                  strict=True)}


def run_stack(engine: str, home: Path, shared: Path) -> StackFlow:
    from eominer.store import open_store

    url = _url(engine, home)
    env = {"EOMINER_HOME": str(home), "EOMINER_DB": url}
    files = _stack_files(shared, home / "products")
    _run(["ingest", *map(str, files), "--levels", f"{TS_LEVEL},20", "--workers", "0"], env)
    with open_store(url) as store:
        ids = [p.product_id for p in store.product_list()]
        ard = Path(store.product(ids[3]).ard_path)
    # a product's tile damaged on disk: its task fails, the job stops with it
    original = damage_tile(ard, 0, 0)
    _, err = _run(["extract", "--features", "spectral", "--workers", "0", "--retries", "0"],
                  env, code=1)
    assert "1 extract task(s) failed" in err
    out, err = _run(["jobs", "--kind", "extract", "--format", "json"], env)
    (job,) = json.loads(out)
    note = next(ln for ln in err.splitlines() if ln.startswith("note: job"))
    stopped = ({k: job[k] for k in ("state", "done", "failed", "pending", "patches")}, note)
    _repair_tile(ard, original)
    _, said = _run(["jobs", "resume", job["job_id"]], env)
    out, _ = _run(["jobs", "--kind", "extract", "--format", "json"], env)
    resumed = (next(ln for ln in said.splitlines() if ln.startswith("resuming job")),
               [(j["done"], j["failed"], j["pending"]) for j in json.loads(out)])

    out, _ = _run(["timeseries", *ids, "--workers", "0"], env)
    series = [ln for ln in out.splitlines() if not ln.startswith("timeseries ")]  # the bar
    first, third = (store_date[:10] for store_date in (_acquired(url, ids[8]),
                                                       _acquired(url, ids[10])))
    _, err = _run(["change", "--consecutive", "--since", first, "--until", third, "--method",
                   "cva", "--workers", "0"], env)
    note = next(ln for ln in err.splitlines() if "consecutive dates" in ln)
    # both again: what the database says is done is not done twice
    again = [ln for ln in _run(["timeseries", *ids, "--workers", "0"], env)[0].splitlines()
             if ln and not ln.startswith("timeseries ")][:4]
    _, err = _run(["change", "--consecutive", "--since", first, "--until", third, "--method",
                   "cva", "--workers", "0"], env)
    again.append(next(ln for ln in err.splitlines() if "pair(s) done" in ln))

    with open_store(url) as store:
        spectral_rows = store.count_features(store.feature_sets("spectral")[0])
        (brk,) = store.feature_sets("ts_breaks")
        # NaN is MonetDB's nil for floats: it reads back as NULL there
        breaks = {int(p): (_float(yr), _float(size), int(code))
                  for p, yr, size, code in store.query(
                      f"SELECT b.patch_id, b.ts_break_year, b.ts_break_size, "
                      f"b.ts_break_reason_code FROM {brk.table_name} b JOIN patches p "
                      "ON p.patch_id = b.patch_id WHERE p.level = ? AND p.product_id = ?",
                      (TS_LEVEL, ids[-1]))}
        w = store.patches(ids[-1], TS_LEVEL).to_pydict()
        block = sorted(int(p) for p, x, y, s in zip(w["patch_id"], w["x_off"], w["y_off"],
                                                    w["size_px"], strict=True)
                       if x >= 40 and x + s <= 60 and y >= 40 and y + s <= 60)
        (ts,) = store.feature_sets("temporal")
        temporal = [float(v) for v in store.query(
            f"SELECT COUNT(*), {', '.join(f'SUM({c})' for c in ts.columns)} "
            f"FROM {ts.table_name}")[0]]
        pairs = []
        for r in sorted(store.pairs(kind="change").to_pylist(), key=lambda r: r["first_id"]):
            top = store.changed_patches(r["pair_id"], level=TS_LEVEL, min_share=0.5)
            w = store.patches(r["first_id"], TS_LEVEL).to_pydict()
            where = dict(zip(w["patch_id"], zip(w["x_off"], w["y_off"], strict=True),
                             strict=True))
            pairs.append((r["first_id"], r["second_id"],
                          round(store.pair(r["pair_id"])["params"]["changed_fraction"], 6),
                          sorted(where[p] for p in top["patch_id"].to_pylist())))
        truth = _grassland(shared, store, ids[-1])

    sid = _run(["session", "create", "--name", "grass", "--concept", "pastures", "--product",
                ids[-1], "--level", str(TS_LEVEL), "--batch", "5", "--features",
                "temporal"], env)[0].split()[-1]
    questions = []
    for _ in range(3):
        out, _ = _run(["session", "round", sid], env)
        questions.append([int(i) for i in out.split("next:")[1].split()])
        # of the third round two answers, one command each: monetdbe binds timestamps to
        # the millisecond, and undo takes the latest
        answers = [questions[-1]] if len(questions) < 3 else [[i] for i in questions[-1][:2]]
        for answer in answers:
            _run(["session", "label", sid, *(f"{i}={'y' if truth[i] else 'n'}"
                                             for i in answer)], env)
    before = _run(["session", "next", sid], env)[0].strip()
    undone = _run(["session", "undo", sid], env)[0].strip()
    after = _run(["session", "next", sid], env)[0].strip()
    admin = [_run(["session", "rename", sid, "meadows"], env)[0].strip(),
             _run(["session", "share", sid], env)[0].strip()]
    shown = json.loads(_run(["session", "show", sid], env)[0])
    shown["settings"] = {k: v for k, v in shown["settings"].items()
                         if k not in ("created", "updated")}
    listed = json.loads(_run(["products", "--since", first, "--until", third, "--features",
                              "--format", "json"], env)[0])
    _run(["sql", "SELECT patch_id, label FROM labels WHERE session_id = ? ORDER BY patch_id"
          .replace("?", f"'{sid}'"), "--to", str(home / "labels.csv")], env)
    exported = (home / "labels.csv").read_text().splitlines()
    return StackFlow(listed, stopped, resumed, spectral_rows, series, again, breaks, block, temporal,
                     (note, pairs), questions, undone, (before, after), admin, shown,
                     exported, truth)


def _repair_tile(path: Path, original: bytes) -> None:
    """Write back what `damage_tile` overwrote in tile (0, 0) of band 1."""
    import rasterio

    with rasterio.open(path) as ds:
        offset = int(ds.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
    with open(path, "r+b") as f:
        f.seek(offset + 100)
        f.write(original)


def _float(value: float | None) -> float:
    return float("nan") if value is None else round(float(value), 4)


def _acquired(url: str, product_id: str) -> str:
    from eominer.store import open_store

    with open_store(url) as store:
        return store.product(product_id).acquired.isoformat()


@pytest.fixture(scope="module")
def duckdb_stack(tmp_path_factory, shared_data: Path) -> StackFlow:
    return run_stack("duckdb", tmp_path_factory.mktemp("stack_duckdb"), shared_data)


def test_a_time_series_stack(duckdb_stack: StackFlow) -> None:
    f = duckdb_stack
    # the damaged tile stopped 1 of the 16 products' tasks; resumed, it ran alone
    assert f.stopped[0] == {"state": "failed", "done": 15, "failed": 1, "pending": 0,
                            "patches": 15 * 125}
    assert "eominer extract --features spectral --workers 0 --retries 0` again" in f.stopped[1]
    assert f.resumed[0].endswith("(1 of 16 task(s) left): eominer extract --features "
                                 "spectral --workers 0 --retries 0")
    assert f.resumed[1] == [(15, 0, 0), (1, 0, 0)] and f.spectral_rows == 16 * 125
    assert f.series[0].startswith("16 dates, 2015-07-11 to 2017-11-27; NDVI")
    assert f.series[1] == "level 10: 100 patches, 4 with a break"
    assert f.again[0] == "all 1 tasks already done: nothing to run"
    assert f.again[1:4] == f.series[:3]
    assert f.again[4].endswith("2 of 2 pair(s) done (2 by an earlier run), 0 failed")
    # the planted break: found in the 4 patches of the block (and nowhere else), at
    # 2017-06-20 (2017.467), a drop to bare soil
    found = {p for p, (_, _, code) in f.breaks.items() if code == 0}
    assert found == set(f.block) and len(f.block) == 4
    for p in f.block:
        year, size, _ = f.breaks[p]
        assert year == pytest.approx(2017.467, abs=1e-3) and size < -0.4
    assert f.temporal[0] == 125  # every patch of the series' product, at both levels
    # --consecutive over 2017-05-21 .. 2017-07-10: two pairs; the first spans the planted
    # date, and its changed patches hold the block; the second's do not
    note, pairs = f.consecutive
    assert note.startswith("note: 2 pair(s) of consecutive dates (S2 grid ")
    assert [(a[-15:-7], b[-15:-7]) for a, b, _, _ in pairs] == [("20170521", "20170620"),
                                                               ("20170620", "20170710")]
    block = {(x, y) for x in (40, 50) for y in (40, 50)}
    assert block <= set(pairs[0][3]) and not block & set(pairs[1][3])
    assert all(0 < fraction < 0.5 for _, _, fraction, _ in pairs)
    # the session: new questions each round, two of the third's answered; undo takes the
    # second of them back, and `session next` asks it again
    asked = [i for q in f.questions for i in q]
    assert len(asked) == len(set(asked)) == 15 and set(asked) <= set(f.truth)
    third = f.questions[2]
    assert f.undone == f"removed label {'+1' if f.truth[third[1]] else '-1'} on patch {third[1]}"
    assert f.next_open == ("next: " + " ".join(map(str, third[2:])),
                           "next: " + " ".join(map(str, third[1:])))
    sid = f.shown["session_id"]
    assert f.admin == [f"{sid} renamed 'meadows'", f"{sid} is shared"]
    labelled = asked[:11]
    assert f.shown["name"] == "meadows" and f.shown["settings"]["shared"] is True
    assert (f.shown["labels"], f.shown["positive"], f.shown["rounds"]) == (
        11, sum(f.truth[i] for i in labelled), 3)
    assert f.exported == ["patch_id,label", *(f"{i},{1 if f.truth[i] else -1}"
                                              for i in sorted(labelled))]
    assert [r["product_id"][-15:-7] for r in f.listed] == ["20170521", "20170620", "20170710"]
    assert all(r["patches"] == 125 and r["feature_sets"].startswith("spectral")
               for r in f.listed)
    # the cloud detector ran on each date (L1C without a mask of its own): it is in both
    # of make test's environments, so the cloud columns are compared on each engine too
    assert [(r["cloud_mask"], r["cloud_cover"]) for r in f.listed] == [("s2cloudless", 0.0)] * 3


@pytest.mark.parametrize("engine", OTHERS)
def test_a_time_series_stack_on_each_engine_gives_duckdbs_answers(
        engine: str, duckdb_stack: StackFlow, tmp_path: Path, shared_data: Path) -> None:
    f = run_stack(engine, tmp_path / engine, shared_data)
    d = duckdb_stack
    job = d.stopped[1].split()[2]  # job ids hold the time they started
    assert f.stopped[0] == d.stopped[0]
    assert f.stopped[1].replace(f.stopped[1].split()[2], job) == d.stopped[1]
    assert f.resumed[0].split(" (")[1:] == d.resumed[0].split(" (")[1:]
    assert f.resumed[1] == d.resumed[1] and f.spectral_rows == d.spectral_rows
    assert f.series[:3] == d.series[:3] and f.again == d.again
    assert f.breaks.keys() == d.breaks.keys() and f.block == d.block
    np.testing.assert_allclose([f.breaks[p] for p in d.breaks], list(d.breaks.values()),
                               rtol=1e-5)
    np.testing.assert_allclose(f.temporal, d.temporal, rtol=1e-5)
    assert f.consecutive == d.consecutive
    assert f.questions == d.questions and f.undone == d.undone
    assert f.next_open == d.next_open and f.truth == d.truth
    sid = f.shown["session_id"]
    assert [s.replace(sid, "SID") for s in f.admin] == \
        [s.replace(d.shown["session_id"], "SID") for s in d.admin]
    assert {**f.shown, "session_id": None} == {**d.shown, "session_id": None}
    assert f.exported == d.exported and f.listed == d.listed
