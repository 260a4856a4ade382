"""Removing a Sentinel-1 product from an archive with a fused S1+S2 set
(`eominer products remove`): only the rows of its S2 partners go, with their index
shards; the set, its other rows and the sessions over other products stay."""

from __future__ import annotations

from pathlib import Path

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
