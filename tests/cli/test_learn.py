"""`eominer session ...` through the real entry point (in-process, so the suite imports
scikit-learn once; exit codes and messages as a user sees them)."""

from __future__ import annotations

import json
from pathlib import Path

from eominer.evaluation.patches import pair_feature_names
from tests.cli.process import in_process
from tests.conftest import positives


def test_session_commands(learn_store, oscd_db, tmp_path, capsys):
    db = learn_store.url
    learn_store.close()
    home = tmp_path / "ws"
    run = in_process(capsys)
    r = run(["session", "create", "--db", db, "--name", "new buildings", "--owner", "ana",
             "--concept", "new_construction", "--product", oscd_db["product"], "--level", "16",
             "--features", oscd_db["fs"], "--model", "logistic", "--batch", "8"], home)
    assert r.returncode == 0, r.stderr
    sid = r.stdout.strip()
    truth = oscd_db["truth"][16]
    pos = sorted(positives(truth))[:2]
    neg = sorted(set(truth) - positives(truth))[:3]
    # answers as a shell builds them from `eominer sql --format csv` (a stray CR or blank
    # from another tool's output is read, not refused)
    answers = [f"{p}\r=+1" for p in pos] + [f"{p}= n " for p in neg]
    r = run(["session", "label", sid, *answers, "--user", "ana", "--db", db], home)
    assert r.returncode == 0 and "5 label(s) recorded" in r.stdout, r.stderr
    r = run(["session", "round", sid, "--db", db], home)
    assert r.returncode == 0, r.stderr
    assert "round 1: logistic/diverse, 5 labels (2+ / 3-)" in r.stdout
    nxt = r.stdout.strip().splitlines()[-1].split()[1:]
    assert len(nxt) == 8 and all(int(p) in truth for p in nxt)
    r = run(["session", "label", sid, f"{nxt[0]}=y", "999999=+1", "--user", "ana", "--db", db],
            home)
    assert r.returncode == 1 and "not in this session's scope" in r.stderr
    r = run(["sql", "--db", db, "--format", "json", "select count(*) as n from labels"], home)
    assert json.loads(r.stdout)[0]["n"] == 5  # the good answer before it was not written
    assert "Traceback" not in r.stderr
    r = run(["session", "label", sid, "12=maybe", "--user", "ana", "--db", db], home)
    assert r.returncode == 1 and "expected PATCH_ID=+1 (or =y, =yes) for yes" in r.stderr
    r = run(["session", "publish", sid, "--db", db], home)
    assert r.returncode == 0 and "published new_construction" in r.stdout, r.stderr
    assert "positive patches (score >= 0.5, or answered yes)" in r.stdout
    # one round, nothing verified: the advice goes with it
    assert "note: not enough rounds to judge stability yet" in r.stderr, r.stderr
    r = run(["sql", "--db", db, "--format", "json",
             "select count(*) as n from annotations where label_name = 'new_construction'"],
            home)
    assert json.loads(r.stdout)[0]["n"] == 896
    blocked = tmp_path / "a_file"  # a folder that cannot be made: one clear line
    blocked.write_text("")
    r = run(["session", "export", sid, "--to", str(blocked / "exp"), "--db", db], home)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"cannot create the folder {blocked / 'exp'}: Not a directory" in r.stderr
    out = tmp_path / "exp"
    r = run(["session", "export", sid, "--to", str(out), "--db", db], home)
    assert r.returncode == 0, r.stderr
    assert {p.suffix for p in out.iterdir()} >= {".geojson", ".gpkg", ".tif", ".json"}
    assert {f"new_construction-{sid}{x}" for x in (".geojson", ".gpkg")} <= {
        p.name for p in out.iterdir()}  # named for the session: no overwrite in one folder
    # `positive` at the analyst's threshold, as publishing decides it (the model's scores
    # against it; the answers as given); --published stays with --polygons
    r = run(["session", "export", sid, "--format", "geojson", "--threshold", "0.9", "--to",
             str(tmp_path / "exp09"), "--db", db], home)
    assert r.returncode == 0, r.stderr
    feats = [f["properties"] for f in json.loads(Path(r.stdout.split()[0]).read_text())[
        "features"]]
    assert all(f["positive"] == (f["score"] >= 0.9) for f in feats if f["source"] == "model")
    said = {**dict.fromkeys(pos, True), **dict.fromkeys(neg, False)}
    assert {f["patch_id"]: f["positive"] for f in feats if f["source"] == "label"} == said
    assert any(0.5 <= f["score"] < 0.9 for f in feats)  # positive at 0.5, not at 0.9
    r = run(["session", "export", sid, "--published", "--db", db], home)
    assert r.returncode == 2 and "--published goes with --polygons" in r.stderr
    r = run(["session", "list", "--db", db, "--format", "json"], home)
    assert [s["session_id"] for s in json.loads(r.stdout)] == [sid]
    r = run(["session", "show", sid, "--db", db], home)
    info = json.loads(r.stdout)
    assert info["labels"] == 5 and info["rounds"] == 1 and info["status"] == "published"
    # how it ranks and what its scope is, for the analyst who comes back to it
    settings = info["settings"]
    assert settings["feature_sets"] == {oscd_db["fs"]: "oscd_pair_stats"}
    assert (settings["model"], settings["strategy"], settings["batch"]) == (
        "logistic", "diverse", 8)
    assert settings["columns"] == len(pair_feature_names()) and settings["scope"] == {}
    assert "prior" not in settings and settings["spatial_context"] == 0.0
    # what the app's Sessions tab does, from the terminal
    r = run(["session", "rename", sid, "roofs", "--user", "ben", "--db", db], home)
    assert r.returncode == 1 and "belongs to ana and is not shared" in r.stderr
    assert run(["session", "rename", sid, "roofs", "--user", "ana", "--db", db], home).returncode == 0
    assert run(["session", "share", sid, "--user", "ana", "--db", db], home).returncode == 0
    r = run(["session", "duplicate", sid, "--user", "ben", "--model", "random_forest",
             "--db", db], home)
    assert r.returncode == 0, r.stderr
    copy = r.stdout.strip()
    r = run(["session", "show", copy, "--db", db], home)
    info = json.loads(r.stdout)
    assert (info["name"], info["owner"], info["labels"]) == ("roofs (copy)", "ben", 5)
    assert run(["session", "archive", sid, "--user", "ana", "--db", db], home).returncode == 0
    r = run(["session", "list", "--db", db, "--format", "json"], home)
    assert [s["session_id"] for s in json.loads(r.stdout)] == [copy]
    r = run(["session", "list", "--archived", "--db", db, "--format", "json"], home)
    assert [(s["session_id"], s["name"]) for s in json.loads(r.stdout)] == [(sid, "roofs")]


def test_show_says_how_a_session_ranks_and_what_its_scope_is(learn_store, oscd_db, tmp_path,
                                                              capsys):
    db = learn_store.url
    learn_store.close()
    home = tmp_path / "ws"
    run = in_process(capsys)
    r = run(["session", "create", "--db", db, "--name", "scoped", "--owner", "ana",
             "--concept", "new_construction", "--product", oscd_db["product"], "--level", "16",
             "--features", oscd_db["fs"], "--max-cloud", "0.5", "--spatial-context", "0.3",
             "--where", "cloud_fraction <= 1", "--prior", "absdiff_b04"], home)
    assert r.returncode == 0, r.stderr
    r = run(["session", "show", r.stdout.strip(), "--db", db], home)
    settings = json.loads(r.stdout)["settings"]
    assert settings["scope"] == {"max_cloud": 0.5, "where": "cloud_fraction <= 1"}
    assert (settings["model"], settings["strategy"], settings["spatial_context"]) == (
        "rbf_svm", "diverse", 0.3)  # auto resolved for the scope's size, as stored
    assert settings["prior"] == {"column": "absdiff_b04", "weight": 4.0, "half_labels": 20.0}


def test_ids_come_comma_separated_or_repeated(learn_store, oscd_db, tmp_path, capsys):
    from eominer.cli import split_ids
    from eominer.learning.session import Session
    from eominer.store import open_store

    assert split_ids(("a,b", " c ", "a", ",")) == ["a", "b", "c"]
    assert split_ids("x, y") == ["x", "y"] and split_ids(None) == []
    db = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    both = f"{oscd_db['product']},{oscd_db['product2']}"
    r = run(["session", "create", "--db", db, "--name", "two dates", "--owner", "ana",
             "--concept", "water", "--product", both, "--level", "16",
             "--features", f"{oscd_db['fs']},"], tmp_path / "ws")
    assert r.returncode == 1 and "did you mean inland_waters or marine_waters?" in r.stderr
    r = run(["session", "create", "--db", db, "--name", "two dates", "--owner", "ana",
             "--concept", "new_construction", "--product", both, "--level", "16",
             "--features", f"{oscd_db['fs']},"], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    with open_store(db, read_only=True) as store:
        s = Session.open(store, r.stdout.strip())
        assert list(s.product_ids) == [oscd_db["product"], oscd_db["product2"]]
        assert list(s.feature_set_ids) == [oscd_db["fs"]]
        n2 = store.patches(oscd_db["product2"], 16).num_rows
    assert s.missing == n2 and f"note: {n2} patches of the scope have no features" in r.stderr


def test_feature_sets_by_name_or_by_default(learn_store, oscd_db, tmp_path, capsys):
    """`--features spectral` names the one set of that name; no --features takes every
    set covering the products (what the app offers); the session stores ids. A name two
    sets share, or products no set covers, are refused with what to do."""
    from eominer.learning.session import Session
    from eominer.store import open_store

    fs = learn_store.require_feature_set(oscd_db["fs"])
    db = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    base = ["session", "create", "--db", db, "--owner", "ana", "--concept",
            "new_construction", "--level", "16", "--product", oscd_db["product"]]
    by_name = run([*base, "--name", "by name", "--features", fs.name], tmp_path / "ws")
    by_default = run([*base, "--name", "by default"], tmp_path / "ws")
    assert by_name.returncode == by_default.returncode == 0, (by_name.stderr, by_default.stderr)
    assert f"note: feature sets {fs.feature_set_id} (all those covering" in by_default.stderr
    with open_store(db, read_only=True) as store:
        for r in (by_name, by_default):
            s = Session.open(store, r.stdout.strip())
            assert list(s.feature_set_ids) == [fs.feature_set_id]
    r = run([*base, "--name", "x", "--product", oscd_db["product2"]], tmp_path / "ws")
    assert r.returncode == 2 and "no feature set has features for all of" in r.stderr
    r = run([*base, "--name", "x", "--product", "S2_NOT_THERE"], tmp_path / "ws")
    assert r.returncode == 2 and "S2_NOT_THERE are not in" in r.stderr
    # a level the grid does not have is named as such, not as a missing extract
    r = run([*base[:-4], "--level", "24", "--product", oscd_db["product"], "--name", "x"],
            tmp_path / "ws")
    assert r.returncode == 2 and "no patches at level 24 in" in r.stderr, r.stderr
    assert "(levels there: [16" in r.stderr and "extract" not in r.stderr

    with open_store(db) as store:  # a second set of the same name, other parameters
        other = store.register_feature_set(fs.name, fs.version, {**fs.params, "probe": 1},
                                           list(fs.columns))
    r = run([*base, "--name", "x", "--features", fs.name], tmp_path / "ws")
    assert r.returncode == 1 and f"2 feature sets are named {fs.name!r}" in r.stderr
    assert fs.feature_set_id in r.stderr and other.feature_set_id in r.stderr


def test_a_batch_out_of_range_is_refused_and_an_empty_next_says_why(
        learn_store, oscd_db, tmp_path, capsys):
    db = learn_store.url
    learn_store.close()
    home = tmp_path / "ws"
    run = in_process(capsys)
    base = ["session", "create", "--db", db, "--name", "all of it", "--owner", "ana",
            "--concept", "new_construction", "--product", oscd_db["product"], "--level", "32",
            "--features", oscd_db["fs"], "--model", "logistic"]
    for bad in ("0", "100000"):
        r = run([*base, "--batch", bad], home)
        assert r.returncode == 2 and "'--batch': " in r.stderr
        assert "is not in the range 1<=x<=1000" in r.stderr and "Traceback" not in r.stderr
    r = run(base, home)
    sid = r.stdout.strip()
    r = run(["session", "round", sid, "--n", "-3", "--db", db], home)
    assert r.returncode == 2 and "'--n': -3 is not in the range 1<=x<=1000" in r.stderr
    truth = oscd_db["truth"][32]
    answers = [f"{p}={'y' if p in positives(truth) else 'n'}" for p in sorted(truth)]
    r = run(["session", "label", sid, *answers, "--user", "ana", "--db", db], home)
    assert r.returncode == 0, r.stderr
    r = run(["session", "round", sid, "--db", db], home)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert "note: every patch of the scope has a label: nothing left to ask" in lines
    assert lines[-1] == "next: none (see the notes above)"


def test_add_label_records_the_operating_system_user_by_default(learn_store, tmp_path, capsys):
    from eominer.workspace import os_user

    db = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    r = run(["session", "add-label", "solar_parks", "--parent",
             "industrial_commercial_transport", "--title", "Solar parks", "--db", db],
            tmp_path / "ws")
    assert r.returncode == 0 and "added solar_parks (level 3)" in r.stdout, r.stderr
    r = run(["sql", "--db", db, "--format", "json",
             "select created_by from taxonomy where label_name = 'solar_parks'"], tmp_path / "ws")
    assert json.loads(r.stdout) == [{"created_by": os_user()}]


def test_without_products_the_scope_takes_those_at_the_level_with_the_features_in_the_area(
        learn_store, oscd_db, tmp_path, capsys):
    """No --product: every product with patches at the level and features of --features,
    those an --aoi touches when given (as the app ticks them); each way of leaving none
    says which condition did."""
    import shapely

    from eominer.learning.session import Session
    from eominer.store import open_store

    p1, p2 = oscd_db["product"], oscd_db["product2"]
    box = shapely.from_wkt(learn_store.product(p1).footprint_wkt).bounds
    db = learn_store.url
    learn_store.close()
    inside, far = tmp_path / "inside.geojson", tmp_path / "far.geojson"
    lon, lat = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for path, (x, y) in ((inside, (lon, lat)), (far, (lon + 20, lat))):
        ring = [[x - .001, y - .001], [x + .001, y - .001], [x + .001, y + .001],
                [x - .001, y + .001], [x - .001, y - .001]]
        path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": {
            "type": "Polygon", "coordinates": [ring]}}))
    run = in_process(capsys)
    base = ["session", "create", "--db", db, "--owner", "ana", "--concept",
            "new_construction", "--level", "16", "--name", "scope"]
    r = run([*base, "--features", oscd_db["fs"], "--aoi", str(inside)], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    assert ("note: 1 product (every product with patches at level 16 and features of "
            f"{oscd_db['fs']} whose footprint touches the area of interest") in r.stderr
    with open_store(db, read_only=True) as store:
        s = Session.open(store, r.stdout.strip())
        assert list(s.product_ids) == [p1]  # the set is on the pair's first product only
        assert 0 < s.data.n < store.scope_patches([p1], 16).num_rows  # the area's patches
    r = run([*base, "--features", oscd_db["fs"], "--aoi", str(far)], tmp_path / "ws")
    assert r.returncode == 1 and "touches the footprint of none of 1 product (" in r.stderr
    r = run(base, tmp_path / "ws")  # both products; no set covers both
    assert r.returncode == 2, r.stderr
    assert "note: 2 products (every product with patches at level 16;" in r.stderr
    assert f"no feature set has features for all of {p1}, {p2}" in r.stderr
    assert "--product" in r.stderr.splitlines()[-1]
    r = run([*base[:-4], "--level", "24", "--name", "x"], tmp_path / "ws")
    assert r.returncode == 1 and "no product has patches at level 24 (levels in the" in r.stderr


def test_a_round_draws_its_batch_as_a_contact_sheet(learn_store, oscd_db, tmp_path, capsys):
    """`round --sheet`: the batch in its order, each patch as the map shows it (the same
    pixels as `patch_images`), under its number, id and score; a wrong suffix or a
    folder that cannot be written is refused with what to do. `next` prints (and
    draws) the questions not answered yet, without a round."""
    import numpy as np
    from PIL import Image

    from eominer.learning.session import Session
    from eominer.store import open_store
    from eominer.ui.thumbnails import patch_images

    db = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    r = run(["session", "create", "--db", db, "--name", "sheet", "--concept",
             "new_construction", "--product", oscd_db["product"], "--level", "16",
             "--features", oscd_db["fs"], "--batch", "7"], tmp_path / "ws")
    sid = r.stdout.strip()
    truth = oscd_db["truth"][16]
    pos, neg = sorted(positives(truth))[:2], sorted(set(truth) - positives(truth))[:2]
    run(["session", "label", sid, *[f"{p}=y" for p in pos], *[f"{p}=n" for p in neg],
         "--db", db], tmp_path / "ws")
    r = run(["session", "round", sid, "--db", db, "--sheet", str(tmp_path / "a.jpg")],
            tmp_path / "ws")
    assert r.returncode == 2 and "the contact sheet is a PNG" in r.stderr
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    r = run(["session", "round", sid, "--db", db, "--sheet", str(blocked / "s.png")],
            tmp_path / "ws")
    assert r.returncode == 2 and f"cannot write {blocked / 's.png'}" in r.stderr, r.stderr
    sheet = tmp_path / "next.png"
    r = run(["session", "round", sid, "--db", db, "--sheet", str(sheet)], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    nxt = [int(i) for i in r.stdout.strip().splitlines()[-2].split()[1:]]
    assert len(nxt) == 7 and f"sheet: {sheet} (7 patches, in this order)" in r.stdout
    img = np.asarray(Image.open(sheet).convert("RGBA"))
    pad, size = 6, 128
    line = (img.shape[0] - pad) // 2 - size - pad  # 7 patches: 2 rows of 5 columns
    assert img.shape[1] == pad + 5 * (size + pad) and line > 10
    with open_store(db, read_only=True) as store:
        want = patch_images(store, nxt, context=0.5)
    for k in (0, 6):  # the first, and the second of the second row
        x, y = pad + (k % 5) * (size + pad), pad + (k // 5) * (size + line + pad)
        tile = img[y:y + size, x:x + size]
        opaque = want[k][..., 3] == 255
        assert opaque.mean() > 0.5
        assert np.array_equal(tile[opaque][:, :3], want[k][opaque][:, :3])
    assert not np.array_equal(want[0], want[1])
    # another shell, or tomorrow: the questions not answered yet, without fitting again
    r = run(["session", "label", sid, f"{nxt[0]}=n", "--db", db], tmp_path / "ws")
    again = tmp_path / "again.png"
    r = run(["session", "next", sid, "--db", db, "--sheet", str(again)], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "next: " + " ".join(map(str, nxt[1:]))
    first = np.asarray(Image.open(again).convert("RGBA"))[pad:pad + size, pad:pad + size]
    assert np.array_equal(first, img[pad:pad + size, pad + size + pad:pad + 2 * size + pad])
    with open_store(db, read_only=True) as store:
        rounds = len(Session.open(store, sid).rounds())
    assert rounds == 1
    for p in nxt[1:]:
        run(["session", "label", sid, f"{p}=n", "--db", db], tmp_path / "ws")
    r = run(["session", "next", sid, "--db", db], tmp_path / "ws")
    assert r.stdout.strip() == ("next: none (every question of the latest round is "
                                "answered: run a round)")


def test_search_draws_its_results_by_rank(learn_store, oscd_db, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from eominer.store import open_store
    from eominer.ui.thumbnails import patch_images

    db = learn_store.url
    learn_store.close()
    like = sorted(positives(oscd_db["truth"][16]))[:2]
    sheet = tmp_path / "like.png"
    r = in_process(capsys)(["search", "--like", ",".join(map(str, like)), "--top", "45",
                            "--features", oscd_db["fs"], "--format", "json", "--db", db,
                            "--sheet", str(sheet), "--context", "0"], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["rank"] for row in rows] == list(range(1, 46))
    assert f"sheet: {sheet} (45 patches, by rank)" in r.stderr
    img = np.asarray(Image.open(sheet).convert("RGBA"))
    assert img.shape[1] == 6 + 10 * (128 + 6)  # ten columns past 40 patches
    with open_store(db, read_only=True) as store:
        want = patch_images(store, [rows[0]["patch_id"], rows[10]["patch_id"]])
    line = (img.shape[0] - 6) // 5 - 128 - 6
    for (x, y), w in zip(((6, 6), (6, 6 + 128 + line + 6)), want):  # ranks 1 and 11
        opaque = w[..., 3] == 255
        assert np.array_equal(img[y:y + 128, x:x + 128][opaque][:, :3], w[opaque][:, :3])


def test_a_copied_database_exports_beside_its_originals_folder(learn_store, oscd_db, tmp_path,
                                                                capsys):
    """A copy (`cp`) holds its original's session under the same id: its export goes to
    exports/<session>-2 and leaves the original's files as they were; each database
    keeps its own folder, also once the original is gone."""
    import shutil

    # the learning store is itself a copy of the suite's store: here it is the original
    learn_store.execute("DELETE FROM database_paths WHERE path <> ?",
                        (learn_store.file_path(),))
    assert learn_store.copied_from() is None
    db = learn_store.url
    learn_store.close()
    home = tmp_path / "ws"
    run = in_process(capsys)
    r = run(["session", "create", "--db", db, "--name", "roofs", "--concept", "new_construction",
             "--product", oscd_db["product"], "--level", "16", "--features", oscd_db["fs"],
             "--model", "logistic"], home)
    sid = r.stdout.strip()
    truth = oscd_db["truth"][16]
    pos, neg = sorted(positives(truth)), sorted(set(truth) - positives(truth))
    answers = [f"{p}=y" for p in pos[:2]] + [f"{p}=n" for p in neg[:3]]
    assert run(["session", "label", sid, *answers, "--db", db], home).returncode == 0
    assert run(["session", "round", sid, "--db", db], home).returncode == 0

    def export(url: str) -> dict[str, bytes]:
        r = run(["session", "export", sid, "--format", "geojson", "--db", url], home)
        assert r.returncode == 0, r.stderr
        (path,) = r.stdout.split()
        return {path: Path(path).read_bytes()}

    original = export(db)
    (first,) = original
    assert first == str(home / "exports" / sid / f"new_construction-{sid}.geojson")
    # as a folder exported before folders named their database: the copy still knows it
    # is its original's (`Store.copied_from`)
    (home / "exports" / sid / ".database").unlink()
    copy_file = tmp_path / "copy.duckdb"
    shutil.copy(db.removeprefix("duckdb:///"), copy_file)
    copy = f"duckdb:///{copy_file}"
    # the copy's analyst goes on: more labels, another ranking
    more = [f"{p}=y" for p in pos[2:6]] + [f"{p}=n" for p in neg[3:12]]
    assert run(["session", "label", sid, *more, "--db", copy], home).returncode == 0
    assert run(["session", "round", sid, "--db", copy], home).returncode == 0
    copied = export(copy)
    (second,) = copied
    assert second == str(home / "exports" / f"{sid}-2" / f"new_construction-{sid}.geojson")
    assert copied[second] != original[first]  # another ranking, written beside
    assert Path(first).read_bytes() == original[first]  # the original's, as it was
    assert export(db) == original  # the original keeps its folder
    names = {f: (home / "exports" / f / ".database").read_text().strip()
             for f in (sid, f"{sid}-2")}  # each folder names its database
    assert names == {sid: str(Path(db.removeprefix("duckdb:///")).resolve()),
                     f"{sid}-2": str(copy_file.resolve())}
    Path(db.removeprefix("duckdb:///")).unlink()  # the original goes: the copy stays put
    assert export(copy) == copied
