"""Removing a Sentinel-1 product from an archive with a fused S1+S2 set
(`eominer products remove`): only the rows of its S2 partners go, with their index
shards; the set, its other rows and the sessions over other products stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from compute.index import run_index
from eominer.cli import cli
from eominer.fusion import pairing
from eominer.fusion.featureset import build_fused_features
from eominer.ingest import ingest_paths
from eominer.learning import ann
from eominer.learning.session import Session
from eominer.store import open_store

LEVEL = 60


@pytest.fixture
def archive(ben: Path, tmp_path: Path, monkeypatch):
    """The BigEarthNet tiny folders ingested, paired and fused at level 60, with an index
    of the fused set: a workspace of its own (this test removes a product)."""
    monkeypatch.setenv("EOMINER_HOME", str(tmp_path))
    url = f"duckdb:///{tmp_path / 'f.duckdb'}"
    with open_store(url) as store:
        ingest_paths(store, sorted((ben / "s2-tiny").iterdir())
                     + sorted((ben / "s1-tiny").iterdir()), levels=(LEVEL, 120))
        pairs, _ = pairing.pair_products(store)
        fs, _ = build_fused_features(store, LEVEL)
        run_index(store, fs.feature_set_id, LEVEL, num_workers=0)
    return url, pairs, fs


def test_an_s1_product_removed_takes_its_partners_rows_not_the_fused_set(archive):
    url, pairs, fs = archive
    gone, *others = pairs
    s1, partner = gone["s1_id"], gone["s2_id"]
    rest = [p["s2_id"] for p in others]
    assert len(pairs) == 3 and partner not in rest
    with open_store(url) as store:
        rows = {p: store.read_features([fs.feature_set_id], [p], LEVEL)[0].size
                for p in (partner, *rest)}
        Session.create(store, "pastures", "ana", "pastures", rest, LEVEL,
                       [fs.feature_set_id], model_kind="logistic")
        folder = ann.index_dir(store, fs.feature_set_id, LEVEL)
        n_s1 = store.patches(s1).num_rows
    assert sorted(ann.read_manifest(folder).shards) == sorted([partner, *rest])
    assert all(n > 0 for n in rows.values())

    r = CliRunner().invoke(cli, ["products", "remove", s1, "--yes", "--db", url])
    assert r.exit_code == 0, r.output
    assert (f"removed {s1}: {n_s1} patches, {rows[partner]} feature rows, 0 annotations, 0 "
            "saved-search rows, 1 pair(s), 1 index shard(s)") in r.output
    assert (f"took the rows of {partner} (paired with it) out of fused set "
            f"{fs.feature_set_id}, which keeps its other rows; to have theirs back: eominer "
            "fusion pair (another S1 partner), then eominer fusion features") in r.output
    assert "dropped" not in r.output
    with open_store(url) as store:
        assert store.feature_set(fs.feature_set_id) is not None
        assert store.read_features([fs.feature_set_id], [partner], LEVEL)[0].size == 0
        assert {p: store.read_features([fs.feature_set_id], [p], LEVEL)[0].size
                for p in rest} == {p: rows[p] for p in rest}
        assert store.feature_set_sources(fs.feature_set_id) == sorted(
            p["s1_id"] for p in others)
        # the session over the other products still has every row, and ranks
        s = Session.create(store, "pastures again", "ana", "pastures", rest, LEVEL,
                           [fs.feature_set_id], model_kind="logistic")
        assert s.missing == 0 and s.data.X.shape[0] == sum(rows[p] for p in rest)
    manifest = ann.read_manifest(folder)
    assert sorted(manifest.shards) == sorted(rest)
    assert not (folder / f"{partner}.usearch").exists()


def test_an_s2_product_with_two_s1_partners_keeps_rows_from_the_one_that_stays(archive):
    """An S2 product paired with two S1 products has fused rows computed from both pairs
    (recorded: `feature_row_sources`). Removing one partner computes them again from the
    other's pair, on its real pixels, where before the product lost every row. The
    second partner here is another place's S1 product, with that place's pair layer
    (every BigEarthNet patch is 120 x 120 px at 10 m, so the windows are the same): the
    S2 product's S1 block becomes that layer's, its S2 block stays."""
    from eominer.fusion.features import S2_FEATURE_NAMES

    url, pairs, fs = archive
    a, b = pairs[0], pairs[1]
    fid, n2 = fs.feature_set_id, len(S2_FEATURE_NAMES)
    with open_store(url) as store:
        (other,) = store.fusion_pairs(b["s2_id"])
        store.put_fusion_pair("s1s2_second_partner", a["s2_id"], b["s1_id"], 1.0, 1.0,
                              other["layer_path"], other["params"])
        assert build_fused_features(store, LEVEL)[0].feature_set_id == fid
        assert store.row_sources(fid)[a["s2_id"]] == tuple(sorted((a["s1_id"], b["s1_id"])))
        ids, before, _ = store.read_features([fid], [a["s2_id"]], LEVEL)
        _, xb, _ = store.read_features([fid], [b["s2_id"]], LEVEL)
        n_s1 = store.patches(a["s1_id"]).num_rows

    r = CliRunner().invoke(cli, ["products", "remove", a["s1_id"], "--yes", "--db", url])
    assert r.exit_code == 0, r.output
    assert (f"removed {a['s1_id']}: {n_s1} patches, {len(ids)} feature rows") in r.output
    assert (f"computed the rows of {a['s2_id']} in fused set {fid} again from its other S1 "
            f"partner(s) ({b['s1_id']})") in r.output
    assert "out of fused set" not in r.output
    # its shard of the set's index went with its rows, and came back with them
    assert "built 1 index shard(s) again, of the products whose rows were computed again" \
        in r.output
    with open_store(url) as store:
        got, after, _ = store.read_features([fid], [a["s2_id"]], LEVEL)
        assert store.row_sources(fid)[a["s2_id"]] == (b["s1_id"],)
        assert store.feature_set_sources(fid) == sorted(p["s1_id"] for p in pairs[1:])
        folder = ann.index_dir(store, fid, LEVEL)
        manifest = ann.read_manifest(folder)
        assert sorted(manifest.shards) == sorted(p["s2_id"] for p in pairs)
        assert manifest.shards[a["s2_id"]]["n"] == len(ids)
        assert (folder / manifest.shards[a["s2_id"]]["file"]).is_file()
        # the shard answers queries: the patch nearest one of its new rows is that patch
        z = ann.standardise(after[:1], np.asarray(manifest.mean), np.asarray(manifest.std))
        near, _ = ann.query_index(folder, manifest, z[0], 1)
        assert near.tolist() == [int(ids[0])]
    np.testing.assert_array_equal(got, ids)  # every patch has its row again
    np.testing.assert_array_equal(after[:, :n2], before[:, :n2])  # the S2 block
    np.testing.assert_array_equal(after[:, n2:], xb[:, n2:])  # the other layer's S1 block


def test_a_joined_fused_set_refills_from_the_stored_rows_of_the_other_partner(tmp_path):
    """A fused set made by joining stored sets (`fuse_feature_sets`) computes an S2
    product's rows again from its other S1 partner's stored rows, no pixel read: after
    the partner that wrote them last goes, the rows equal those of a join with the other
    partner alone. (Catalogue rows through the store API: the S1 products' patches lie
    on the S2 product's, so each joins its S2 patch.)"""
    from rasterio.crs import CRS

    from eominer.fusion.featureset import fuse_feature_sets
    from eominer.removal import refill_for
    from tests.store.rows import T0, add_product

    with open_store(f"duckdb:///{tmp_path / 'j.duckdb'}") as store:
        ids = {p: add_product(store, p, T0, 1 + 100 * k)
               for k, p in enumerate(("A2", "Q1", "Q2"))}
        store.execute("UPDATE products SET crs = ?", (CRS.from_epsg(32630).to_wkt(),))
        spectral = store.register_feature_set("spectral", 1, {}, ["a", "b"], "S2")
        sar = store.register_feature_set("sar", 1, {}, ["vv"], "S1")
        store.write_features(spectral, np.array(ids["A2"]),
                             np.arange(16, dtype=np.float32).reshape(8, 2))
        for k, s1 in enumerate(("Q1", "Q2")):
            store.write_features(sar, np.array(ids[s1]), np.full((8, 1), k + 1.0, np.float32))
            store.put_fusion_pair(f"A2~{s1}", "A2", s1, 1.0, 1.0, "", {})
        only_q1 = [p for p in store.fusion_pairs("A2") if p["s1_id"] == "Q1"]
        fs, _ = fuse_feature_sets(store, spectral.feature_set_id, sar.feature_set_id, 32,
                                  pairs=only_q1)
        _, expected, _ = store.read_features([fs.feature_set_id], ["A2"], 32)
        fuse_feature_sets(store, spectral.feature_set_id, sar.feature_set_id, 32)
        _, both, _ = store.read_features([fs.feature_set_id], ["A2"], 32)
        assert store.row_sources(fs.feature_set_id) == {"A2": ("Q1", "Q2")}
        assert not np.array_equal(both, expected)  # Q2's rows, written last

        r = store.remove_product(  # as `products remove` does it
            "Q2", refill=lambda f, p, gone: refill_for(store, f, p, gone))
        assert r.refilled == ((fs.feature_set_id, "A2", "Q1"),)
        got, after, _ = store.read_features([fs.feature_set_id], ["A2"], 32)
        assert len(got) == 4
        np.testing.assert_array_equal(after, expected)
        assert store.row_sources(fs.feature_set_id) == {"A2": ("Q1",)}


def test_a_shard_that_cannot_be_built_again_is_said_and_the_removal_is_done(archive,
                                                                           monkeypatch):
    """The shards are built again last, once the product is out and its files gone: a
    failure there (a full disk) is reported with what puts them back, not raised."""
    url, pairs, fs = archive
    a, b = pairs[0], pairs[1]
    with open_store(url) as store:
        (other,) = store.fusion_pairs(b["s2_id"])
        store.put_fusion_pair("s1s2_second_partner", a["s2_id"], b["s1_id"], 1.0, 1.0,
                              other["layer_path"], other["params"])
        build_fused_features(store, LEVEL)

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ann, "build_shard", full)
    r = CliRunner().invoke(cli, ["products", "remove", a["s1_id"], "--yes", "--db", url])
    assert r.exit_code == 0, r.output
    assert ("could not build 1 index shard(s) again, of the products whose rows were "
            "computed again (OSError: [Errno 28] No space left on device): eominer index "
            "build puts them back") in r.output
    with open_store(url) as store:
        assert not store.product_exists(a["s1_id"])
        assert len(store.read_features([fs.feature_set_id], [a["s2_id"]], LEVEL)[0])
        manifest = ann.read_manifest(ann.index_dir(store, fs.feature_set_id, LEVEL))
    assert a["s2_id"] not in manifest.shards  # out until `eominer index build`
    with open_store(url) as store:
        monkeypatch.undo()
        run_index(store, fs.feature_set_id, LEVEL, num_workers=0)
        manifest = ann.read_manifest(ann.index_dir(store, fs.feature_set_id, LEVEL))
    assert sorted(manifest.shards) == sorted(p["s2_id"] for p in pairs)
