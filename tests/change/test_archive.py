"""The archive's change sets (eominer.store.archive) on two real OSCD cities: every pair's
rows in one set, a session over both first dates, a model of one pair applied to the
other, a pair mapped before the archive existed, and a removal that keeps the other
pair's rows."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.cli import main
from eominer.errors import FeatureError

LEVEL = 32


@pytest.fixture
def two_pairs(oscd, db_url, tmp_path, capsys) -> dict:
    """Paris and Bercy ingested at one level, spectral extracted, both pairs mapped with
    `eominer change --pairs` in this process."""
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    with open_store(db_url) as store:
        ids = {c: [r.product_id for r in ingest_paths(
            store, [oscd / "images" / c / "imgs_1", oscd / "images" / c / "imgs_2"],
            levels=(LEVEL,))] for c in ("paris", "bercy")}
    main(["extract", "--features", "spectral", "--workers", "0", "--db", db_url])
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(f"{a} {b}\n" for a, b in ids.values()))
    args = ["change", "--pairs", str(pairs), "--method", "cva", "--workers", "0",
            "--db", db_url]
    main(args)
    capsys.readouterr()
    return {"ids": ids, "args": args}


def _rows(store, fid: str, product: str) -> tuple[np.ndarray, np.ndarray]:
    ids, X, _ = store.read_features([fid], [product], LEVEL)
    return ids, X


def _pair_sets(store, first: str) -> dict[str, str]:
    """name -> id of the pair's own sets on `first` (change_cva, diff_tails)."""
    p = store.pairs(kind="change").to_pylist()
    row = store.pair(next(r["pair_id"] for r in p if r["first_id"] == first))["params"]
    return {"change_cva": row["feature_set_id"], "diff_tails": row["tails_feature_set_id"]}


def test_every_pair_in_one_set_and_the_sessions_default_sets(two_pairs, db_url):
    from eominer.store import open_store

    (p1, _), (b1, b2) = two_pairs["ids"]["paris"], two_pairs["ids"]["bercy"]
    with open_store(db_url) as store:
        archive = {fs.name: fs.feature_set_id for fs in store.feature_sets()
                   if fs.name.startswith("archive_")}
        assert set(archive) == {"archive_change_cva", "archive_diff_tails"}
        for first in (p1, b1):
            own = _pair_sets(store, first)
            for name, fid in own.items():  # the pair's rows, to the bit
                ids, X = _rows(store, fid, first)
                got_ids, got = _rows(store, archive[f"archive_{name}"], first)
                assert len(ids) > 100
                np.testing.assert_array_equal(got_ids, ids)
                np.testing.assert_array_equal(got, X)
        # both first dates: only the archive's sets cover them (beside spectral)
        both = store.covering_feature_sets([p1, b1], LEVEL)
        assert sorted(store.feature_set(f).name for f in both) == [
            "archive_change_cva", "archive_diff_tails", "spectral"]
        # one first date: its pair's own sets, as before, and not the archive's twice
        one = store.covering_feature_sets([p1], LEVEL)
        assert set(one) == {*_pair_sets(store, p1).values(),
                            store.feature_sets("spectral")[0].feature_set_id}
        # a product that is the first date of a second pair: its rows are the last pair's
        fs = store.feature_set(archive["archive_change_cva"])
        other = store.register_feature_set("change_cva", fs.version,
                                           {**fs.params, "first": p1, "second": b2},
                                           list(fs.columns), "S2")
        ids, X = _rows(store, archive["archive_change_cva"], p1)
        with store.transaction():
            store.write_archive(other, p1, (p1, b2), ids[:10], X[:10] + 1)
        got_ids, got = _rows(store, archive["archive_change_cva"], p1)
        np.testing.assert_array_equal(got_ids, ids[:10])
        np.testing.assert_array_equal(got, X[:10] + 1)
        assert _rows(store, archive["archive_change_cva"], b1)[0].size > 100  # untouched


def test_the_evaluations_gathered_sets_are_the_archives_rows(two_pairs, db_url):
    """`eval learning` gathers the pairs' sets of a pooled task into sets of its own
    (`pairs_change_<method>`, `pairs_diff_tails`): the rows a product session over the
    same first dates now gets by default."""
    from eominer.evaluation import tasks
    from eominer.store import open_store

    (p1, _), (b1, _) = two_pairs["ids"]["paris"], two_pairs["ids"]["bercy"]
    with open_store(db_url) as store:
        archive = {fs.name: fs.feature_set_id for fs in store.feature_sets()
                   if fs.name.startswith("archive_")}
        pairs = [tuple(two_pairs["ids"][c]) for c in ("paris", "bercy")]
        done = {(f, s, "cva", 0): _pair_sets(store, f)["change_cva"] for f, s in pairs}
        gathered = {"change_cva": tasks.change_feature_set(store, pairs, "cva", LEVEL,
                                                           done=done),
                    "diff_tails": tasks.tails_feature_set(store, pairs, LEVEL)}
        for name, g in gathered.items():
            ids, X, _ = store.read_features([g.feature_set_id], [p1, b1], LEVEL)
            got_ids, got, _ = store.read_features([archive[f"archive_{name}"]], [p1, b1], LEVEL)
            np.testing.assert_array_equal(got_ids, ids)
            np.testing.assert_array_equal(got, X)


def test_a_model_of_one_pair_scores_another_through_the_archive_set(two_pairs, db_url,
                                                                    capsys):
    """A model trained with the archive's set scores a pair mapped with the same method;
    so does one trained with its pair's own set (a session over one first date takes
    it): apply reads the other products' rows from the archive's set of its kind, the
    same method and parameters, and gives the same scores. A product no pair of that
    kind was mapped from is told to map one."""
    from compute.apply import run_apply
    from eominer.learning.session import Session
    from eominer.store import open_store

    (p1, p2), (b1, _) = two_pairs["ids"]["paris"], two_pairs["ids"]["bercy"]
    with open_store(db_url) as store:
        spectral = store.feature_sets("spectral")[0].feature_set_id
        archive = store.feature_sets("archive_change_cva")[0].feature_set_id
        own = _pair_sets(store, p1)["change_cva"]
        models = {}
        for name, sets in (("archive", [spectral, archive]), ("own", [spectral, own])):
            # with spatial context: apply's bands of grid rows read the archive's set too
            s = Session.create(store, name, "ana", "new_construction", [p1], LEVEL, sets,
                               model_kind="logistic", params={"spatial_context": 0.3})
            ranked = np.argsort(s.data.X[:, -1])  # by a change column: a few of each end
            for row in ranked[-3:]:
                s.label(int(s.patch_ids[row]), 1, "ana")
            for row in ranked[:3]:
                s.label(int(s.patch_ids[row]), -1, "ana")
            s.run_round()
            models[name] = s.save_model()
        n_b1 = store.scope_patches([b1], LEVEL).num_rows
        scores = {}
        for name, model in models.items():
            report = run_apply(store, model, [b1], num_workers=0)
            report.raise_for_failures()
            assert (report.n_selected, report.n_missing) == (n_b1, 0)
            scores[name] = np.asarray(store.query(
                "SELECT score FROM annotations WHERE model_version = ? ORDER BY patch_id",
                (model,)), np.float32)[:, 0]
            if name == "own":
                assert report.notes[1:] == [
                    f"{own} holds the pair the model was trained on alone: products {b1} "
                    f"are read from {archive}, their own pairs' rows of the same method "
                    "and parameters"]
        assert len(scores["own"]) == n_b1 and 0 <= scores["own"].min() < scores["own"].max()
        np.testing.assert_array_equal(scores["own"], scores["archive"])
        # p2 is the second date of its pair: no pair of this kind starts from it
        with pytest.raises(FeatureError, match=(
                rf"have no features of set {archive} at level {LEVEL}: run `eominer change "
                rf"{p2} AFTER --method cva` first")):
            run_apply(store, models["own"], [p2], num_workers=0)
        # it lacks the archive's diff_tails too: one run writes both, one command says so
        tails = store.feature_sets("archive_diff_tails")[0].feature_set_id
        s = Session.create(store, "tails", "ana", "new_construction", [p1], LEVEL,
                           [spectral, archive, tails], model_kind="logistic")
        for k, row in enumerate(np.argsort(s.data.X[:, -1])[[0, 1, -2, -1]]):
            s.label(int(s.patch_ids[row]), 1 if k > 1 else -1, "ana")
        s.run_round()
        with pytest.raises(FeatureError, match=(
                rf"products {p2} have no features of sets {archive}, {tails} at level "
                rf"{LEVEL}: run `eominer change {p2} AFTER --method cva` first")) as err:
            run_apply(store, s.save_model(), [p2], num_workers=0)
        assert str(err.value).count("eominer change") == 1


def test_a_pair_mapped_before_the_archive_joins_it_when_its_job_is_run_again(
        two_pairs, db_url, capsys):
    from eominer.store import open_store

    (p1, _), (b1, _) = two_pairs["ids"]["paris"], two_pairs["ids"]["bercy"]
    with open_store(db_url) as store:
        before = {f: _rows(store, store.feature_sets("archive_change_cva")[0].feature_set_id, f)
                  for f in (p1, b1)}
        for fs in store.feature_sets():
            if fs.name.startswith("archive_"):
                store.drop_feature_set(fs.feature_set_id)
    main(two_pairs["args"])
    out, err = capsys.readouterr()
    assert out.count("(done by an earlier run)") == 2, out  # nothing computed again
    with open_store(db_url) as store:
        fid = store.feature_sets("archive_change_cva")[0].feature_set_id
        for f in (p1, b1):
            ids, X = _rows(store, fid, f)
            np.testing.assert_array_equal(ids, before[f][0])
            np.testing.assert_array_equal(X, before[f][1])
        assert store.feature_sets("archive_diff_tails")


def test_removing_a_date_takes_its_pairs_rows_out_and_keeps_the_set(two_pairs, db_url,
                                                                   capsys):
    from eominer.learning.session import Session
    from eominer.store import open_store

    (p1, _), (b1, b2) = two_pairs["ids"]["paris"], two_pairs["ids"]["bercy"]
    with open_store(db_url) as store:
        fid = store.feature_sets("archive_change_cva")[0].feature_set_id
        paris = _rows(store, fid, p1)
        s = Session.create(store, "both", "ana", "new_construction", [p1, b1], LEVEL, [fid])
        sid = s.session_id
    # a session over both first dates uses the set: Bercy's second date is refused
    with pytest.raises(SystemExit, match="^1$"):
        main(["products", "remove", b2, "--yes", "--db", db_url])
    err = capsys.readouterr().err
    assert "used by 1 session(s)" in err and sid in err
    with open_store(db_url) as store:
        store.execute("DELETE FROM sessions WHERE session_id = ?", (sid,))
    main(["products", "remove", b2, "--yes", "--db", db_url])
    out = capsys.readouterr().out
    assert (f"took the rows of {b1} (mapped with it by eominer change) out of {fid}, "
            "which keeps its other rows") in out
    with open_store(db_url) as store:
        assert store.feature_set(fid) is not None
        assert _rows(store, fid, b1)[0].size == 0  # Bercy's pair is gone
        np.testing.assert_array_equal(_rows(store, fid, p1)[1], paris[1])  # Paris' stays
        assert b2 not in store.feature_set_sources(fid)
        assert not [f for f in store.feature_sets("change_cva")
                    if f.params["first"] == b1]  # the pair's own set went whole


def test_a_model_of_a_removed_pair_scores_the_others_through_the_archive_set(
        two_pairs, db_url, capsys):
    """A model trained on a pair's own set records the archive's set of its kind: once a
    date of that pair is removed (its own set goes whole), the model is not stranded:
    `apply` reads every product from the archive's set, with the scores it gave before."""
    from compute.apply import run_apply
    from eominer.learning.session import Session
    from eominer.store import open_store

    (p1, p2), (b1, _) = two_pairs["ids"]["paris"], two_pairs["ids"]["bercy"]
    with open_store(db_url) as store:
        spectral = store.feature_sets("spectral")[0].feature_set_id
        archive = store.feature_sets("archive_change_cva")[0].feature_set_id
        own = _pair_sets(store, p1)["change_cva"]
        s = Session.create(store, "own", "ana", "new_construction", [p1], LEVEL,
                           [spectral, own], model_kind="logistic")
        ranked = np.argsort(s.data.X[:, -1])
        for row, answer in ((ranked[-1], 1), (ranked[-2], 1), (ranked[0], -1),
                            (ranked[1], -1)):
            s.label(int(s.patch_ids[row]), answer, "ana")
        s.run_round()
        model = s.save_model()
        assert store.model(model)["params"]["archive_sets"] == {own: archive}

        def scores() -> np.ndarray:
            return np.asarray(store.query(
                "SELECT score FROM annotations WHERE model_version = ? ORDER BY patch_id",
                (model,)), np.float32)[:, 0]

        run_apply(store, model, [b1], num_workers=0).raise_for_failures()
        before = scores()
        assert len(before) == store.scope_patches([b1], LEVEL).num_rows
        store.execute("DELETE FROM sessions WHERE session_id = ?", (s.session_id,))
    main(["products", "remove", p2, "--yes", "--db", db_url])
    out = capsys.readouterr().out
    assert "dropped 2 feature set(s)" in out and own in out
    assert "can no longer be applied" not in out  # not stranded
    with open_store(db_url) as store:
        assert store.feature_set(own) is None
        store.execute("DELETE FROM annotations WHERE model_version = ?", (model,))
        report = run_apply(store, model, [b1], num_workers=0, rerun=True)
        report.raise_for_failures()
        assert report.notes == [
            f"{own}, the pair the model was trained on, is gone (a date of it was removed): "
            f"every product is read from {archive}, its pairs' rows of the same method and "
            "parameters"]
        np.testing.assert_array_equal(scores(), before)


def test_search_takes_each_set_once_and_the_archive_reaches_every_first_date(
        two_pairs, db_url, capsys):
    """`search --like` without --features: a change pair's own set and its archive set
    hold the same rows on the examples' product, and a set's features of both dates hold
    its columns at date 1; each is taken once, so no column weighs twice, and the archive
    set lets the other pair's first date be ranked (with the pair's own set only its
    first date was)."""
    from eominer.learning.search import search
    from eominer.store import open_store

    (p1, p2), (b1, b2) = two_pairs["ids"]["paris"], two_pairs["ids"]["bercy"]
    with open_store(db_url) as store:
        like = [int(i) for i in store.patch_ids([p1], LEVEL)[:2]]
        name = {fs.feature_set_id: fs.name for fs in store.feature_sets()}
        r = search(store, like, top=5000)
        assert [name[f] for f in r.feature_set_ids] == [
            "spectral", "archive_change_cva", "archive_diff_tails"]
        assert set(r.product_ids) == {p1, b1}  # both first dates, none of the others
        n_first = sum(len(store.patch_ids([p], LEVEL)) for p in (p1, b1))
        assert len(r.patch_ids) == n_first - len(like)
        assert r.n_missing == sum(len(store.patch_ids([p], LEVEL)) for p in (p2, b2))
        # and it says which products those are, and which sets would rank them too
        spectral = r.feature_set_ids[0]
        assert r.missing_hint == (f"products without them: {', '.join(sorted([p2, b2]))}; "
                                  f"--features {spectral} covers every product searched")
    main([*two_pairs["args"], "--features", "spectral"])  # and both dates' spectral
    capsys.readouterr()
    with open_store(db_url) as store:
        name = {fs.feature_set_id: fs.name for fs in store.feature_sets()}
        r = search(store, like, top=10)
        assert [name[f] for f in r.feature_set_ids] == [
            "archive_change_cva", "archive_diff_tails", "dates_spectral"]
