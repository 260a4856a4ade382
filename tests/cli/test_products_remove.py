"""`eominer products remove` on a real OSCD pair (bordeaux): everything computed on the
product goes, the other date keeps all of its own; refusals remove nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from eominer.cli import cli
from eominer.evaluation.patches import pair_stats
from eominer.io.ard import read_ard
from eominer.learning import ann
from eominer.learning.manage import archive
from eominer.learning.saved import save_model
from eominer.learning.search import save_search, search
from eominer.learning.session import Session

LEVEL = 32


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def counts(store, product_id: str) -> dict[str, int]:
    """Rows that name the product or its patches, table by table."""
    mine = "SELECT patch_id FROM patches WHERE product_id = ?"
    out = {t: store.query(f"SELECT COUNT(*) FROM {t} WHERE patch_id IN ({mine})",
                          (product_id,))[0][0]
           for t in ("patches", "annotations", "search_results")}
    out["features"] = sum(
        store.query(f"SELECT COUNT(*) FROM {t} WHERE patch_id IN ({mine})", (product_id,))[0][0]
        for (t,) in store.query("SELECT table_name FROM feature_sets"))
    out["products"] = store.query("SELECT COUNT(*) FROM products WHERE product_id = ?",
                                  (product_id,))[0][0]
    out["pairs"] = store.query("SELECT COUNT(*) FROM product_pairs WHERE first_id = ? OR "
                               "second_id = ?", (product_id, product_id))[0][0]
    return out


def params(pair: dict) -> dict:
    return json.loads(pair["params"])


def own_ards(store, folder: Path) -> None:
    """Copies of the ARD files for this test's database: the fixture's are shared. The
    database is a copy of the fixture's file; with files of its own it no longer shares
    any with it, so it forgets where it was copied from (`Store.copied_from`)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for p in store.product_list():
        copy = folder / Path(p.ard_path).name
        shutil.copy(p.ard_path, copy)
        store.execute("UPDATE products SET ard_path = ? WHERE product_id = ?",
                      (str(copy), p.product_id))
    store.execute("DELETE FROM database_paths WHERE path <> ?", (store.file_path(),))


def build_index(store, fs_id: str, folder: Path, products: list[str]) -> ann.Manifest:
    """One real shard per product, as `eominer index build` lays them out."""
    ids, X, names = store.read_features([fs_id], products, LEVEL)
    mean, std = X.mean(axis=0), X.std(axis=0) + 1e-6
    manifest = ann.Manifest(fs_id, LEVEL, list(names), mean.tolist(), std.tolist())
    owner = dict(store.query("SELECT patch_id, product_id FROM patches WHERE level = ?",
                             (LEVEL,)))
    for p in products:
        rows = np.array([owner[int(i)] == p for i in ids])
        file = f"{p}.usearch"
        n = ann.build_shard(ids[rows], ann.standardise(X[rows], mean, std), folder / file)
        manifest.shards[p] = ann.shard_entry(file, n)
    ann.write_manifest(folder, manifest)
    return manifest


def changed_pair(store, oscd_db, tmp_path: Path) -> tuple[str, str, str, dict]:
    """(url, first date, second date, pair row) after `eominer change` of the fixture's
    pair by CVA, in a database with ARD files of its own."""
    own_ards(store, tmp_path / "ard")
    p1, p2 = oscd_db["product"], oscd_db["product2"]
    r = run("change", p1, p2, "--method", "cva", "--db", store.url)
    assert r.exit_code == 0, r.output
    (pair,) = store.pairs(kind="change").to_pylist()
    return store.url, p1, p2, pair


def test_remove_takes_out_everything_computed_on_the_product(learn_store, oscd_db, tmp_path):
    store = learn_store
    url, p1, p2, pair = changed_pair(store, oscd_db, tmp_path)
    layers = [Path(pair["layer_path"]), Path(pair["layer_path"].replace(".tif", "_binary.tif"))]
    assert all(p.exists() for p in layers)
    # features of the second date too (date 2 against date 1), a saved search, apply's
    # annotations and an index over both dates
    fs = oscd_db["fs"]
    t1, t2 = store.patches(p1, LEVEL), store.patches(p2, LEVEL)
    a1, a2 = (read_ard(store.product(p).ard_path) for p in (p1, p2))
    order = t2["row"].to_numpy() * (a2.shape[2] // LEVEL) + t2["col"].to_numpy()
    store.write_features(store.require_feature_set(fs), t2["patch_id"].to_numpy(),
                         pair_stats(a2, a1, LEVEL)[order])
    like = t1["patch_id"].to_numpy()[:3]
    saved = save_search(store, search(store, like, top=10_000, feature_set_ids=[fs]))
    assert set(saved.product_ids) == {p1, p2}
    for t in (t1, t2):
        ids = t["patch_id"].to_numpy()[:20]
        store.upsert_annotations("model-1", "new_construction", ids, np.full(20, 0.9),
                                 np.ones(20, bool), "1", "apply")
    folder = ann.index_dir(store, fs, LEVEL)
    build_index(store, fs, folder, [p1, p2])
    # a session that holds only the second date
    Session.create(store, "roofs", "ana", "new_construction", [p2], LEVEL, [fs])
    ard1, ard2 = (Path(store.product(p).ard_path) for p in (p1, p2))
    before2, n1 = counts(store, p2), store.patches(p1).num_rows
    assert counts(store, p1)["annotations"] == 20 and before2["features"] > 0

    r = run("products", "remove", p1, "--yes", "--db", url)
    assert r.exit_code == 0, r.output
    assert f"removed {p1}: {n1:,} patches, " in r.output
    assert "20 annotations" in r.output and "1 pair(s), 1 index shard(s); 3 file(s)" in r.output
    assert counts(store, p1) == dict.fromkeys(
        ("patches", "annotations", "search_results", "features", "products", "pairs"), 0)
    assert counts(store, p2) == {**before2, "pairs": 0}
    assert not ard1.exists() and ard2.exists() and not any(p.exists() for p in layers)
    manifest = ann.read_manifest(folder)
    assert list(manifest.shards) == [p2] and not (folder / f"{p1}.usearch").exists()
    kept = store.query("SELECT patch_id FROM search_results WHERE search_id = ?",
                       (saved.search_id,))
    assert kept and all(store.patch_levels_of([i for (i,) in kept]))
    assert [p.product_id for p in store.product_list()] == [p2]


def test_removing_the_second_date_drops_the_pairs_sets_on_the_first(
        learn_store, oscd_db, tmp_path):
    """`change p1 p2` stores its sets on p1's patches from both dates' pixels: removing
    p2 drops them whole (and their index), p1 keeps its own features. While a session
    uses one, the removal is refused and nothing goes."""
    store = learn_store
    url, p1, p2, pair = changed_pair(store, oscd_db, tmp_path)
    sets = sorted([params(pair)["feature_set_id"], params(pair)["tails_feature_set_id"]])
    from_p2 = store.feature_sets_from(p2)
    archive_sets = sorted(f.feature_set_id for f in from_p2 if f.name.startswith("archive_"))
    assert sorted(f.feature_set_id for f in from_p2) == sorted([*sets, *archive_sets])
    assert len(archive_sets) == 2  # eominer.store.archive: every pair's rows
    build_index(store, sets[0], ann.index_dir(store, sets[0], LEVEL), [p1])
    s = Session.create(store, "roofs", "ana", "new_construction", [p1], LEVEL,
                       [oscd_db["fs"], sets[0]])
    for i, patch in enumerate(s.patch_ids[:4].tolist()):
        s.label(int(patch), 1 if i < 2 else -1, "ana")
    s.run_round()
    model = save_model(s).model_id  # a classifier on the change set, kept after the session
    # the same saved before models recorded the archive's set of their pair's set kind
    row = store.model(model)
    old = "0ld-" + model
    store.add_model(old, row["kind"], row["path"], {
        k: v for k, v in row["params"].items() if k != "archive_sets"}, row["metrics"],
        row["trained_on"])
    before = counts(store, p1), counts(store, p2)
    r = run("products", "remove", p2, "--yes", "--db", url)
    assert r.exit_code != 0
    assert (f"computed from product '{p2}''s pixels are used by 1 session(s): "
            f"{s.session_id} (roofs: {sets[0]})") in str(r.exception)
    assert (counts(store, p1), counts(store, p2)) == before
    assert all(store.feature_set(f) is not None for f in sets)
    archive(store, s.session_id, "ana")
    assert run("session", "delete", s.session_id, "--user", "ana", "--yes", "--db",
               url).exit_code == 0
    fs_table = store.require_feature_set(oscd_db["fs"]).table_name
    mine = f"SELECT COUNT(*) FROM {fs_table} WHERE patch_id IN (SELECT patch_id FROM " \
           "patches WHERE product_id = ?)"
    own_rows = store.query(mine, (p1,))[0][0]
    assert own_rows > 0
    # --dry-run: what would go, nothing removed; the real run then says the same numbers
    before = counts(store, p1), counts(store, p2)
    dry = run("products", "remove", p2, "--dry-run", "--db", url)
    assert dry.exit_code == 0, dry.output
    assert (counts(store, p1), counts(store, p2)) == before
    assert all(store.feature_set(f) is not None for f in sets)
    assert ann.index_dir(store, sets[0], LEVEL).exists()
    assert Path(store.product(p2).ard_path).is_file()
    assert "would drop 2 feature set(s) computed from its pixels" in dry.output
    # the model reads the archive's set once its pair's set is gone; the older one cannot
    assert f"saved model(s) {old} were trained on those sets: their rows stay, but " \
           "they could no longer be applied" in dry.output
    r = run("products", "remove", p2, "--yes", "--db", url)
    assert r.exit_code == 0, r.output
    said = dry.output.splitlines()[0].replace("would remove", "removed").replace(
        "to delete", "deleted")
    assert r.output.splitlines()[0] == said and said.endswith("; 3 file(s) deleted")  # ARD, 2 layers
    assert (f"dropped 2 feature set(s) computed from its pixels for other products' "
            f"patches: {', '.join(sets)} (and 1 index folder(s))") in r.output
    assert f"saved model(s) {old} were trained on those sets" in r.output
    assert store.model(old) is not None  # its row stays: what was done
    assert all(store.feature_set(f) is None for f in sets)
    assert not ann.index_dir(store, sets[0], LEVEL).exists()
    for fid in archive_sets:  # the archive's sets stay, without this pair's rows
        assert f"took the rows of {p1} (mapped with it by eominer change) out of {fid}" \
            in r.output
        fs = store.require_feature_set(fid)
        assert store.count_features(fs) == 0 and p2 not in store.feature_set_sources(fid)
    p1_rows = counts(store, p1)
    assert p1_rows["patches"] == before[0]["patches"] and p1_rows["pairs"] == 0
    assert p1_rows["features"] < before[0]["features"]  # the change sets' rows went
    assert store.query(mine, (p1,))[0][0] == own_rows


def test_refusals_remove_nothing(learn_store, oscd_db, tmp_path):
    store, url = learn_store, learn_store.url
    own_ards(store, tmp_path / "ard")
    p1, p2 = oscd_db["product"], oscd_db["product2"]
    s = Session.create(store, "roofs", "ana", "new_construction", [p1], LEVEL, [oscd_db["fs"]])
    archive(store, s.session_id, "ana")  # archived sessions keep their labels too
    before = counts(store, p1), counts(store, p2)
    r = run("products", "remove", p2, p1, "--yes", "--db", url)
    assert r.exit_code != 0
    msg = str(r.exception)
    assert f"product '{p1}' is in the scope of 1 session(s): {s.session_id} (roofs, archived)" in msg
    assert "Nothing was removed" in msg
    r = run("products", "remove", p2, "nope", "--yes", "--db", url)
    assert r.exit_code != 0 and "product(s) nope are not in" in str(r.exception)
    assert (counts(store, p1), counts(store, p2)) == before
    assert all(Path(p.ard_path).exists() for p in store.product_list())
    r = run("products", "remove", p2, "--db", url, input="n\n")
    assert r.exit_code != 0 and counts(store, p2) == before[1]
    # the session deleted (it was archived), the product goes
    r = run("session", "delete", s.session_id, "--user", "ana", "--yes", "--db", url)
    assert r.exit_code == 0 and f"{s.session_id} deleted: 0 label(s)" in r.output
    r = run("products", "remove", p1, "--yes", "--db", url)
    assert r.exit_code == 0, r.output
    assert [p.product_id for p in store.product_list()] == [p2]


def test_two_databases_of_one_workspace_keep_their_own_change_layers(
        learn_store, oscd_db, tmp_path):
    """The same pair mapped in two databases of one workspace (BEFORE AFTER in one,
    --pairs on Ray in the other) gets a layer per database; removing the product from the
    second leaves the first's layer; a re-run in the first writes where its row says."""
    import shutil

    from eominer.store import open_store

    store, p1, p2 = learn_store, oscd_db["product"], oscd_db["product2"]
    own_ards(store, tmp_path / "ard")
    shutil.copy(oscd_db["db"], tmp_path / "other.duckdb")
    other = open_store(f"duckdb:///{tmp_path / 'other.duckdb'}")
    try:
        own_ards(other, tmp_path / "ard2")
        assert run("change", p1, p2, "--method", "cva", "--db", store.url).exit_code == 0
        (tmp_path / "pairs.txt").write_text(f"{p1} {p2}\n")
        r = run("change", "--pairs", str(tmp_path / "pairs.txt"), "--method", "cva",
                "--num-cpus", "1", "--db", other.url)
        assert r.exit_code == 0, r.output
        (mine,) = store.pairs(kind="change").to_pylist()
        (theirs,) = other.pairs(kind="change").to_pylist()
        first, second = Path(mine["layer_path"]), Path(theirs["layer_path"])
        assert second == first.with_name(f"{first.stem}-2.tif")
        kept = {p: p.read_bytes() for p in (first, Path(params(mine)["binary_path"]))}
        r = run("products", "remove", p1, "--yes", "--db", other.url)
        assert r.exit_code == 0, r.output
        assert not second.exists() and not Path(params(theirs)["binary_path"]).exists()
        assert {p: p.read_bytes() for p in kept} == kept
        r = run("change", p1, p2, "--method", "cva", "--seed", "1", "--db", store.url)
        assert r.exit_code == 0, r.output
        (again,) = store.pairs(kind="change").to_pylist()
        assert again["layer_path"] == str(first) and params(again)["seed"] == 1
        assert sorted(p.name for p in first.parent.glob("*.tif")) == sorted(
            p.name for p in kept)
    finally:
        other.close()


def test_a_layer_name_is_held_while_its_pair_is_mapped(learn_store, oscd_db, tmp_path):
    """Another database of the workspace that maps the same pair while this one computes
    it (minutes on a full tile) takes the next name, not this run's; once the run is
    recorded, no claim is left in the layers folder."""
    import shutil

    from eominer.change.run import detect_change, layer_out, resolve
    from eominer.store import open_store

    store, p1, p2 = learn_store, oscd_db["product"], oscd_db["product2"]
    own_ards(store, tmp_path / "ard")
    shutil.copy(oscd_db["db"], tmp_path / "other.duckdb")
    theirs: list[Path] = []
    with open_store(f"duckdb:///{tmp_path / 'other.duckdb'}") as other:
        def meanwhile(_message: str) -> None:  # the other database picks its name now
            if not theirs:
                with layer_out(other, resolve(p1, other), resolve(p2, other), "cva") as p:
                    theirs.append(p)

        run = detect_change(p1, p2, method="cva", store=store, progress=meanwhile)
    ours = Path(run.probability_path)
    assert theirs == [ours.with_name(f"{ours.stem}-2.tif")]
    assert (store.pairs(kind="change").to_pylist()[0]["layer_path"]) == str(ours)
    assert ours.exists() and not list(ours.parent.glob(".*staged*"))


def test_a_run_stopped_after_its_maps_leaves_no_layer_and_no_name_taken(
        learn_store, oscd_db, tmp_path, monkeypatch):
    """Ctrl-C after the maps are written, while the patches are scored (their row not
    recorded yet): the maps go with the claim; the run again writes the layer under the
    pair's own name, not `-2` beside an orphan."""
    import eominer.change.run as change_run
    from eominer.change.run import default_out, detect_change, resolve

    store, p1, p2 = learn_store, oscd_db["product"], oscd_db["product2"]
    own_ards(store, tmp_path / "ard")
    name = default_out(resolve(p1, store).ref, resolve(p2, store).ref, "cva")
    scores = change_run.patch_scores

    def stopped(*args):
        assert name.exists() and name.with_name(f"{name.stem}_binary.tif").exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(change_run, "patch_scores", stopped)
    with pytest.raises(KeyboardInterrupt):
        detect_change(p1, p2, method="cva", store=store)
    assert store.pairs(kind="change").num_rows == 0
    assert not any(name.parent.iterdir())  # no map, no claim, no hidden file
    monkeypatch.setattr(change_run, "patch_scores", scores)
    run = detect_change(p1, p2, method="cva", store=store)
    assert run.probability_path == str(name)
    assert sorted(p.name for p in name.parent.iterdir()) == [
        name.name, f"{name.stem}_binary.tif"]


def test_a_run_killed_after_its_maps_leaves_a_name_the_re_run_takes_back(
        learn_store, oscd_db, tmp_path):
    """SIGKILL (the OOM killer, `kill -9`) of a real process after the maps are in place
    and before their row: no clean-up runs, the maps and the dead claim stay. The re-run
    removes them and writes the pair's own name, not `-2` beside maps nobody names."""
    import os
    import subprocess
    import sys

    from eominer.change.run import default_out, detect_change, resolve
    from eominer.store import open_store

    store, p1, p2 = learn_store, oscd_db["product"], oscd_db["product2"]
    own_ards(store, tmp_path / "ard")
    name = default_out(resolve(p1, store).ref, resolve(p2, store).ref, "cva")
    url = store.url
    store.close()  # one writer per DuckDB file: the killed run's turn
    code = ("import os, signal\nimport eominer.change.run as change_run\n"
            "from eominer.store import open_store\n"
            "change_run.patch_scores = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
            f"change_run.detect_change({p1!r}, {p2!r}, method='cva', "
            f"store=open_store({url!r}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, env=os.environ)
    assert r.returncode == -9, r.stderr
    left = sorted(p.name for p in name.parent.iterdir())
    assert left == sorted([name.name, f"{name.stem}_binary.tif", f".{name.stem}.staged.tif",
                           f".{name.stem}.staged.tif.lock"])
    again = open_store(url)
    try:
        assert again.pairs(kind="change").num_rows == 0
        run = detect_change(p1, p2, method="cva", store=again)
        assert run.probability_path == str(name)
        assert again.pair(again.pairs(kind="change")["pair_id"][0].as_py())["layer_path"] \
            == str(name)
    finally:
        again.close()
    assert sorted(p.name for p in name.parent.iterdir()) == [
        name.name, f"{name.stem}_binary.tif"]


def test_a_copied_database_keeps_the_files_its_original_names(learn_store, oscd_db, tmp_path):
    """`cp` of a database file: the copy's rows name the original's ARD files and change
    layers. A pair mapped again in the copy gets a new layer, not over the original's;
    `products remove` in the copy keeps the original's files (and says so) while the
    original exists, and deletes the files the copy wrote itself; the original still
    reads its product and layer. Once the original is gone, the copy owns its files."""
    import shutil

    from eominer.store import open_store

    store, p1, p2 = learn_store, oscd_db["product"], oscd_db["product2"]
    own_ards(store, tmp_path / "ard")
    assert run("change", p1, p2, "--method", "cva", "--db", store.url).exit_code == 0
    (pair,) = store.pairs(kind="change").to_pylist()
    shared = {Path(store.product(p1).ard_path), Path(pair["layer_path"]),
              Path(params(pair)["binary_path"])}
    data = {p: p.read_bytes() for p in shared}
    copy_path = tmp_path / "copy.duckdb"
    store.close()
    shutil.copy(store.file_path(), copy_path)
    with open_store(f"duckdb:///{copy_path}") as copy:
        assert copy.copied_from()[0] == store.file_path()
        copy_url = copy.url
    for method, seed in (("irmad", "0"), ("cva", "1")):  # a new pair, and the same again
        r = run("change", p1, p2, "--method", method, "--seed", seed, "--db", copy_url)
        assert r.exit_code == 0, r.output
    with open_store(copy_url) as copy:
        own = copy.pairs(kind="change").to_pylist()
    own_files = {Path(f) for p in own for f in (p["layer_path"], params(p)["binary_path"])}
    assert len(own_files) == 4 and all(p.is_file() for p in own_files)
    assert not own_files & shared  # the cva layer again: beside the original's, not over it
    assert {p: p.read_bytes() for p in shared} == data

    r = run("products", "remove", p1, "--yes", "--db", copy_url)
    assert r.exit_code == 0, r.output
    assert f"kept 1 file(s) that {store.file_path()} names too" in r.output  # p1's ARD
    assert "4 file(s) deleted" in r.output
    assert {p: p.read_bytes() for p in shared} == data  # the original's, untouched
    assert not any(p.exists() for p in own_files)
    with open_store(store.url) as original:
        assert read_ard(original.product(p1).ard_path).shape[0] > 0
        assert Path(original.pair(pair["pair_id"])["layer_path"]).is_file()

    Path(store.file_path()).unlink()  # the original is gone: the copy owns its files
    with open_store(copy_url) as copy:
        assert copy.copied_from() is None
        p2_ard = Path(copy.product(p2).ard_path)
    r = run("products", "remove", p2, "--yes", "--db", copy_url)
    assert r.exit_code == 0 and "kept" not in r.output, r.output
    assert not p2_ard.exists()
