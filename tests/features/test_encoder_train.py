"""The patch autoencoder: tiny unsupervised training on an ingested product, then
embeddings through the `encoder` descriptor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eominer.errors import FeatureError
from eominer.features import build
from eominer.features.blocks import band_indexes, read_block
from eominer.features.encoder import load_embedder
from eominer.features.encoder_train import train_encoder
from eominer.store import feature_set_id, open_store


@pytest.fixture(scope="module")
def ingested(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    from eominer.ingest import ingest_paths

    home = tmp_path_factory.mktemp("enc_ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        store = open_store(f"duckdb:///{home / 'db.duckdb'}")
        ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_1"])
        yield store, home
        store.close()


def test_train_saves_versioned_model_with_metadata(ingested):
    store, home = ingested
    row = train_encoder(store, epochs=1, dim=8, max_patches=200, seed=0)
    assert row["model_id"] == "encoder-v1"
    assert Path(row["path"]) == home / "models" / "encoder-v1.keras"
    assert Path(row["path"]).exists()
    assert not list((home / "models").glob(".*staged*"))
    assert row["metrics"]["patches"] == 200 and row["metrics"]["loss"] > 0
    assert row["trained_on"] == [store.product_list()[0].product_id]
    assert len(row["params"]["mean"]) == 4 and row["params"]["dim"] == 8

    prod = store.product_list()[0]
    bands = list(prod.bands)
    d = build("encoder", bands, model=row)
    assert d.columns[0] == "enc_000" and d.dims == 8
    stack = read_block(prod.ard_path, "S2", band_indexes(bands, d.bands, "p"), 0, 128, 0,
                       prod.width, prod.height)
    stack[:, :32, :32] = np.nan  # nodata patch still embeds (to the mean input's code)
    w = np.array([[0, 0, 32, 32], [0, 32, 32, 32], [0, 0, 64, 64], [0, 0, 128, 128]])
    X = d.compute(stack, w)
    assert X.shape == (4, 8) and np.isfinite(X).all()
    assert np.abs(X[1] - X[0]).max() > 1e-4  # different patches, different codes
    np.testing.assert_allclose(d.compute(stack, w), X, rtol=1e-5, atol=1e-6)
    assert load_embedder.cache_info().currsize >= 1  # loaded once, reused

    again = train_encoder(store, epochs=1, dim=8, max_patches=200, seed=1)
    assert again["model_id"] == "encoder-v2"
    d2 = build("encoder", bands, model=again)
    assert feature_set_id(d.name, d.version, d.params) != feature_set_id(
        d2.name, d2.version, d2.params)


def test_training_needs_s2_patches(ingested):
    store, _ = ingested
    with pytest.raises(FeatureError, match="not in the database"):
        train_encoder(store, ["S2X_NOPE"], epochs=1)


def test_ssl_training_records_its_model_and_extract_uses_the_newest(ingested):
    from compute.extract import ExtractReport, plan
    from eominer.features.ssl import train_ssl

    store, home = ingested
    row = train_ssl(store, epochs=1, dim=8, max_patches=200, batch_size=64, seed=0)
    assert row["model_id"] == "ssl-v1" and row["kind"] == "ssl"
    assert Path(row["path"]) == home / "models" / "ssl-v1.keras" and Path(row["path"]).exists()
    assert row["params"]["method"] == "vicreg" and row["params"]["dim"] == 8
    assert row["trained_on"] == [store.product_list()[0].product_id]
    assert row["metrics"]["patches"] == 200 and len(row["metrics"]["loss_history"]) == 1

    prod = store.product_list()[0]
    d = build("ssl", list(prod.bands), model=row)
    assert d.columns[0] == "ssl_000" and d.dims == 8
    stack = read_block(prod.ard_path, "S2", band_indexes(list(prod.bands), d.bands, "p"),
                       0, 64, 0, prod.width, prod.height)
    X = d.compute(stack, np.array([[0, 0, 32, 32], [0, 32, 32, 32], [0, 0, 16, 16]]))
    assert X.shape == (3, 8) and np.isfinite(X).all() and np.abs(X[1] - X[0]).max() > 1e-4

    newer = train_ssl(store, epochs=1, dim=8, max_patches=200, batch_size=64, seed=1)
    blocks, _ = plan(store, "ssl", None, 512, ExtractReport("j"))
    assert {b.build_params["model"]["model_id"] for b in blocks} == {newer["model_id"]}
