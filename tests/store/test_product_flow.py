"""The analyst's whole CLI flow on each engine gives DuckDB's answers.

The store's contract tests check each query on its own; this runs what a team on MonetDB
runs, in order, on a real pair (OSCD Bordeaux, its change labels as the analyst's
answers): ingest, extract, a change map with both dates' features, a session of four
rounds, publish, polygons, a saved model applied, searches (exact and through the
nearest-neighbour index, built on a local Ray), and the product's removal. In make test's second step (the
Python 3.10 side environment, where monetdbe runs) every answer on monetdbe is compared
with DuckDB's, in the same process; here DuckDB's answers are checked against the
labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.store.conftest import ENGINES

# embedded engines only: a MonetDB server's database is not a fresh one per run
OTHERS = [e for e in ENGINES if e == "monetdbe"] or [pytest.param(
    "monetdbe", marks=pytest.mark.skip(reason="monetdbe runs in make test's Python 3.10 "
                                       "side environment (EOMINER_TEST_ENGINES=monetdbe)"))]
LEVEL = 32
ROUNDS, BATCH = 4, 10
FIRST = "S2A_MSIL1C_20160504T000000_T30TXQ"
SECOND = "S2_MSIL1C_20171026T110131_T30TXQ"


@dataclass
class Flow:
    """What the analyst saw at each step, engine-independent."""

    patches: dict[str, int]
    feature_sums: dict[str, list[float]]  # per set name: rows, then a few column sums
    change: tuple[float, float, int]  # threshold, changed fraction, archive rows
    questions: list[list[int]]  # each round's, in order
    truth: dict[int, bool]  # every patch of the first date at LEVEL
    scores: dict[int, float]  # the published ranking (after the last round)
    published: tuple[int, int]  # annotations, positives
    polygons: tuple[int, float]  # count, area (ha)
    applied: int  # annotations written by `eominer apply`
    quality: str  # `session quality` after the verification sample's answers
    copy_questions: list[int]  # a copy of the session on the logistic model, its round
    refined: int  # patches of `session refine` to level 16 (the cascade)
    saved_search: int  # rows of `search --save` in search_results
    exported: list[dict]  # `sql ... --to FILE.parquet`
    similar: list[int]  # `search --like`: exact
    indexed: list[int]  # `search --like --archive`: through the index
    removal: list[str]  # what `products remove` said, paths left out
    sets_left: list[str]


def _cli(args: list[str], env: dict[str, str]) -> str:
    from click.testing import CliRunner

    from eominer.cli import cli

    r = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert r.exit_code == 0, f"eominer {' '.join(args)}: {r.output}"
    return r.output


def _truth(store, oscd: Path) -> dict[int, bool]:
    """OSCD's rule: a patch of the first date is new construction when > 5 % of its
    pixels changed."""
    from eominer.evaluation.oscd import OSCD_CHANGE_SHARE, read_labels

    mask = read_labels(oscd, "bordeaux")
    t = store.patches(FIRST, LEVEL).to_pydict()
    return {int(p): bool(mask[y:y + s, x:x + s].mean() > OSCD_CHANGE_SHARE)
            for p, x, y, s in zip(t["patch_id"], t["x_off"], t["y_off"], t["size_px"],
                                  strict=True)}


def run_flow(engine: str, home: Path, oscd: Path) -> Flow:
    from eominer.store import open_store

    url = {"duckdb": f"duckdb:///{home / 'eominer.duckdb'}",
           "monetdbe": f"monetdbe:///{home / 'monetdbe'}"}[engine]
    env = {"EOMINER_HOME": str(home), "EOMINER_DB": url}
    images = oscd / "images" / "bordeaux"
    _cli(["ingest", str(images / "imgs_1"), str(images / "imgs_2"), "--levels",
          f"16,{LEVEL},64"], env)
    _cli(["extract", "--features", "spectral,gabor"], env)
    _cli(["change", FIRST, SECOND, "--features", "spectral"], env)

    with open_store(url) as store:
        patches = {f"{p}@{lv}": int(n) for p, lv, n in store.query(
            "SELECT product_id, level, COUNT(*) FROM patches GROUP BY product_id, level")}
        sums = {}
        for fs in store.feature_sets():
            cols = list(fs.columns[:3]) + list(fs.columns[-2:])
            row = store.query(f"SELECT COUNT(*), {', '.join(f'SUM({c})' for c in cols)} "
                              f"FROM {fs.table_name}")[0]
            sums[fs.name] = [float(v) for v in row]
        (params,) = store.query("SELECT params FROM product_pairs")[0]
        p = json.loads(params)
        (arch,) = [fs for fs in store.feature_sets() if fs.name.startswith("archive_change")]
        change = (round(p["threshold"], 5), round(p["changed_fraction"], 6),
                  len(store.feature_patch_ids(arch, FIRST)))
        truth = _truth(store, oscd)

    sid = _cli(["session", "create", "--name", "roofs", "--concept", "new_construction",
                "--product", FIRST, "--level", str(LEVEL), "--batch", str(BATCH),
                "--features", "dates_spectral,gabor,archive_change_selftrain_regression",
                "--spatial-context", "0.3"], env).split()[-1]
    questions = []
    for _ in range(ROUNDS):
        out = _cli(["session", "round", sid], env)
        asked = [int(i) for i in out.split("next:")[1].split()]
        questions.append(asked)
        _cli(["session", "label", sid, *(f"{i}={'y' if truth[i] else 'n'}" for i in asked)],
             env)
    _cli(["session", "round", sid], env)
    sample = [int(i) for i in _cli(["session", "verify", sid], env).split("\n")[0].split()]
    _cli(["session", "label", sid, "--verify",
          *(f"{i}={'y' if truth[i] else 'n'}" for i in sample)], env)
    quality = _cli(["session", "quality", sid], env)
    copy = _cli(["session", "duplicate", sid, "--model", "logistic"], env).split()[0]
    out = _cli(["session", "round", copy], env)
    copy_questions = [int(i) for i in out.split("next:")[1].split()]
    _cli(["session", "publish", sid], env)
    # "FINE  level 16 px N patches under the positives of SID"
    fine, *refined_said = _cli(["session", "refine", sid, "--level", "16"], env).split()
    refined = int(refined_said[3])
    out = _cli(["session", "export", sid, "--polygons", "--format", "geojson", "--to",
                str(home / "out")], env)
    shapes = json.loads(Path(out.split()[-1]).read_text())["features"]
    polygons = (len(shapes), round(sum(f["properties"]["area_ha"] for f in shapes), 3))
    model = _cli(["session", "save-model", sid], env).split()[0]
    positives = [i for q in questions for i in q if truth[i]][:2]
    similar = _ids(_cli(["search", "--like", ",".join(map(str, positives)), "--top", "8",
                         "--level", str(LEVEL), "--features", "spectral", "--format", "csv",
                         "--save"], env))
    # on a local Ray: its workers never open the database (monetdbe is one process's)
    _cli(["index", "build", "spectral", "--level", str(LEVEL), "--workers", "2"], env)
    indexed = _ids(_cli(["search", "--like", ",".join(map(str, positives)), "--top", "8",
                         "--level", str(LEVEL), "--features", "spectral", "--archive",
                         "--format", "csv"], env))

    with open_store(url) as store:
        scores = {int(p): float(s) for p, s in store.query(
            "SELECT patch_id, score FROM annotations WHERE session_id = ?", (sid,))}
        published = (len(scores), int(store.query(
            "SELECT COUNT(*) FROM annotations WHERE session_id = ? AND positive",
            (sid,))[0][0]))
    _cli(["apply", model, "--products", FIRST], env)
    with open_store(url) as store:
        (applied,) = store.query("SELECT COUNT(*) FROM annotations WHERE model_version = ? "
                                 "AND source = 'apply'", (model,))[0]
        (saved,) = store.query("SELECT COUNT(*) FROM search_results")[0]
    _cli(["sql", "SELECT source, COUNT(*) AS n, ROUND(AVG(score), 4) AS mean_score FROM "
          "annotations GROUP BY source ORDER BY source", "--to", str(home / "a.parquet")], env)
    exported = pq.read_table(home / "a.parquet").to_pylist()

    for session in (sid, copy, fine):
        _cli(["session", "archive", session], env)
        _cli(["session", "delete", session, "--yes"], env)
    said = _cli(["products", "remove", SECOND, "--yes"], env)
    with open_store(url) as store:
        left = sorted(fs.name for fs in store.feature_sets())
    return Flow(patches, sums, change, questions, truth, scores, published, polygons,
                int(applied), quality, copy_questions, refined, int(saved), exported,
                similar, indexed,
                [ln.replace(str(home), "HOME") for ln in said.splitlines()], left)


def _ids(csv: str) -> list[int]:
    rows = [ln.split(",") for ln in csv.splitlines()]  # the notes after them have no rank
    return [int(r[1]) for r in rows if len(r) == 5 and r[0].isdigit()]


@pytest.fixture(scope="module")
def duckdb_flow(tmp_path_factory, oscd: Path) -> Flow:
    return run_flow("duckdb", tmp_path_factory.mktemp("flow_duckdb"), oscd)


def _ap(truth: dict[int, bool], scores: dict[int, float], skip: set[int]) -> float:
    from sklearn.metrics import average_precision_score

    ids = [i for i in scores if i not in skip]
    return float(average_precision_score([truth[i] for i in ids], [scores[i] for i in ids]))


def test_the_flow_finds_new_construction_in_bordeaux(duckdb_flow: Flow) -> None:
    f = duckdb_flow
    assert f.patches[f"{FIRST}@{LEVEL}"] == f.patches[f"{SECOND}@{LEVEL}"] == 224
    first = sum(n for k, n in f.patches.items() if k.startswith(FIRST))  # 16, 32, 64 px
    assert first == 896 + 224 + 56 == sum(f.patches.values()) / 2
    assert f.feature_sums["spectral"][0] == f.feature_sums["gabor"][0] == 2 * first
    assert f.feature_sums["dates_spectral"][0] == first  # on the first date's patches
    threshold, changed, archive_rows = f.change
    assert 0.005 < changed < 0.15 and 0 < threshold < 1 and archive_rows == first
    # every question is new; the rounds found new construction (12 of the 224 patches)
    # more often than chance would, and the ranking of the patches not asked about finds
    # it well above its share
    asked = [i for q in f.questions for i in q]
    assert len(asked) == len(set(asked)) == ROUNDS * BATCH
    share = np.mean(list(f.truth.values()))
    assert 0.02 < share < 0.2
    assert sum(f.truth[i] for i in asked) >= 2 * share * len(asked)
    base = np.mean([f.truth[i] for i in f.scores if i not in asked])
    assert _ap(f.truth, f.scores, set(asked)) > 2 * base
    n, positives = f.published
    assert n == 224 and 0 < positives < 224
    assert f.polygons[0] >= 1 and f.polygons[1] > 0
    assert f.applied == 224
    assert "precision" in f.quality and len(f.copy_questions) == BATCH
    assert not set(f.copy_questions) & set(asked)  # the copy keeps the labels
    assert 4 <= f.refined <= 4 * positives and f.saved_search == 8  # 4 finer under each
    assert {r["source"]: r["n"] for r in f.exported} == {"apply": 224}
    assert len(f.similar) == len(f.indexed) == 8
    # the two most alike by spectral are found exactly and through the index
    assert f.similar[:2] == f.indexed[:2]
    assert f.removal[0].startswith(f"removed {SECOND}: 1,176 patches")
    assert "change_selftrain_regression" not in f.sets_left
    assert {"archive_change_selftrain_regression", "dates_spectral", "spectral",
            "gabor"} <= set(f.sets_left)


@pytest.mark.parametrize("engine", OTHERS)
def test_each_engine_gives_duckdbs_answers(engine: str, duckdb_flow: Flow,
                                           tmp_path: Path, oscd: Path) -> None:
    f = run_flow(engine, tmp_path / engine, oscd)
    d = duckdb_flow
    assert f.patches == d.patches
    assert f.feature_sums.keys() == d.feature_sums.keys()
    for name, sums in d.feature_sums.items():
        np.testing.assert_allclose(f.feature_sums[name], sums, rtol=1e-5, err_msg=name)
    assert f.change == d.change
    assert f.questions == d.questions  # the same questions, round after round
    assert f.scores.keys() == d.scores.keys()
    np.testing.assert_allclose([f.scores[i] for i in d.scores], list(d.scores.values()),
                               atol=1e-5)
    assert f.published == d.published and f.applied == d.applied
    assert f.quality == d.quality and f.copy_questions == d.copy_questions
    assert f.refined == d.refined and f.saved_search == d.saved_search
    assert f.exported == d.exported
    assert f.polygons == d.polygons
    assert f.similar == d.similar and f.indexed == d.indexed
    assert f.removal == d.removal and f.sets_left == d.sets_left
