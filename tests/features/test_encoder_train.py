"""The patch autoencoder: tiny unsupervised training on an ingested product, then
embeddings through the `encoder` descriptor."""

from __future__ import annotations

import json
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

    said: list[str] = []  # a line per epoch, with the loss the model row keeps
    again = train_encoder(store, epochs=2, dim=8, max_patches=200, seed=1, log=said.append)
    assert again["model_id"] == "encoder-v2"
    assert said[-2:] == [f"epoch {i + 1}/2: loss {v:.4f}"
                         for i, v in enumerate(again["metrics"]["loss_history"])]
    d2 = build("encoder", bands, model=again)
    assert feature_set_id(d.name, d.version, d.params) != feature_set_id(
        d2.name, d2.version, d2.params)


def test_training_needs_s2_patches(ingested, monkeypatch):
    import dataclasses

    from eominer.features.encoder_train import sample_sources

    store, _ = ingested
    with pytest.raises(FeatureError, match="not in the database"):
        train_encoder(store, ["S2X_NOPE"], epochs=1)
    # the same product seen as a Sentinel-1 one: named, it is refused as not Sentinel-2
    (prod,) = store.product_list()
    radar = dataclasses.replace(prod, sensor="S1")
    monkeypatch.setattr(store, "product_list", lambda: [radar])
    with pytest.raises(FeatureError, match=f"{prod.product_id} are not Sentinel-2"):
        sample_sources(store, [prod.product_id], 100)


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


def test_the_command_trains_the_self_supervised_encoder_by_default(ingested, capsys):
    """`eominer encoder train` with no --method trains `ssl` (ahead out of fold);
    `--method autoencoder` the other kind."""
    from tests.cli.process import in_process

    store, home = ingested
    before = {m["model_id"] for m in store.models("ssl") + store.models("encoder")}
    call = in_process(capsys)
    args = ["encoder", "train", "--no-ray", "--epochs", "1", "--dim", "8",
            "--max-patches", "64", "--db", f"duckdb:///{home / 'db.duckdb'}"]
    log = home / "train.progress.jsonl"
    r = call([*args, "--progress-log", str(log)], home)
    assert r.returncode == 0, r.stderr
    assert json.loads(log.read_text()) == {"model_id": r.stdout.split()[0], "done": 1, "of": 1}
    r2 = call([*args, "--method", "autoencoder"], home)
    assert r2.returncode == 0, r2.stderr
    new = {m["model_id"]: m["kind"] for m in store.models("ssl") + store.models("encoder")
           if m["model_id"] not in before}
    assert sorted(new.values()) == ["encoder", "ssl"]
    first = r.stdout.split()[0]
    assert new[first] == "ssl" and first.startswith("ssl-v")
    assert new[r2.stdout.split()[0]] == "encoder"
    # the list says which is which: kind, the bands it sees, how it was trained
    r3 = call(["encoder", "list", "--format", "json", "--db", f"duckdb:///{home / 'db.duckdb'}"],
              home)
    assert r3.returncode == 0, r3.stderr
    listed = {x["model_id"]: x for x in json.loads(r3.stdout)}
    for model_id, kind in new.items():
        x = listed[model_id]
        assert (x["kind"], x["bands"], x["dim"], x["epochs"], x["seed"]) == (
            kind, "B02,B03,B04,B08", 8, 1, 0)
        assert x["patches"] <= 64 and Path(x["path"]).is_file()


TEN = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12")


def test_the_bands_an_encoder_sees_are_a_training_choice_kept_with_the_model(ingested):
    """Trained on ten bands, the row records them and their normalisation, extract reads
    them in that order, and a product without one of them is refused by name."""
    from eominer.features.encoder import model_bands
    from eominer.features.ssl import train_ssl

    store, _ = ingested
    row = train_ssl(store, epochs=1, dim=8, max_patches=100, batch_size=32, seed=0,
                    bands=[b.lower() for b in TEN])
    p = row["params"]
    assert tuple(p["bands"]) == TEN and len(p["mean"]) == len(p["std"]) == 10
    prod = store.product_list()[0]
    idx = band_indexes(list(prod.bands), TEN, "p")
    stack = read_block(prod.ard_path, "S2", idx, 0, 64, 0, prod.width, prod.height)
    # the stored mean is the training patches' own: the SWIR band's, not the blue one's
    assert p["mean"][8] == pytest.approx(float(np.nanmean(stack[8])), rel=0.5)
    assert abs(p["mean"][8] - p["mean"][0]) > 0.02

    d = build("ssl", list(prod.bands), model=row)
    assert d.bands == TEN and d.dims == 8
    X = d.compute(stack, np.array([[0, 0, 32, 32], [0, 32, 32, 32]]))
    assert X.shape == (2, 8) and np.isfinite(X).all() and np.abs(X[1] - X[0]).max() > 1e-4
    with pytest.raises(FeatureError, match="B11"):
        build("ssl", [b for b in prod.bands if b != "B11"], model=row)
    # a row from before the choice existed reads as the four 10 m bands
    assert model_bands({"dim": 8}) == ("B02", "B03", "B04", "B08")
    for bad in (["B02", "B99"], ["B02", "B02"], []):
        with pytest.raises(FeatureError, match="distinct Sentinel-2 bands"):
            train_ssl(store, epochs=1, dim=8, max_patches=100, bands=bad)


def test_products_without_the_encoder_bands_are_left_out_by_name(four_band_pair, tmp_path,
                                                                   monkeypatch):
    """A four-band COG (B02, B03, B04, B08) beside a full product: a ten-band encoder
    trains on the full one and says which it left out; naming the COG is an error."""
    from eominer.features.encoder_train import sample_sources
    from eominer.ingest import ingest_paths

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path))
    src, cog = four_band_pair
    with open_store(f"duckdb:///{tmp_path / 'db.duckdb'}") as store:
        ingest_paths(store, [src, cog], levels=(32,))
        ids = {len(p.bands): p.product_id for p in store.product_list()}
        assert sorted(ids) == [4, 13]
        notes: list[str] = []
        got = sample_sources(store, None, 100, bands=TEN, log=notes.append)
        assert [s.product_id for s in got] == [ids[13]]
        assert len(notes) == 1 and ids[4] in notes[0] and "B11" in notes[0]
        with pytest.raises(FeatureError, match=f"product {ids[4]} lacks band.*B05"):
            sample_sources(store, [ids[4]], 100, bands=TEN)
        assert len(sample_sources(store, None, 100)) == 2  # four bands: both


def test_a_second_database_in_the_workspace_never_replaces_the_first_ones_files(
        ingested, shared_data):
    """Two databases in one EOMINER_HOME (the default one and another `--db`): the same
    product ingested into both, and each database's first encoder, get files of their
    own; removing the product from one leaves the other's ARD as it was."""
    from eominer.ingest import ingest_paths
    from eominer.removal import remove_products

    store, home = ingested
    first = store.model("encoder-v1") or train_encoder(store, epochs=1, dim=8,
                                                       max_patches=200, seed=0)
    model_bytes = Path(first["path"]).read_bytes()
    (product,) = store.product_list()
    ard_bytes = Path(product.ard_path).read_bytes()
    other = open_store(f"duckdb:///{home / 'other.duckdb'}")
    try:
        (res,) = ingest_paths(other, [shared_data / "oscd/images/bordeaux/imgs_1"])
        assert res.product_id == product.product_id
        assert Path(res.ard_path) == home / "ard" / f"{product.product_id}-2.tif"
        row = train_encoder(other, epochs=1, dim=8, max_patches=200, seed=2)
        assert row["model_id"] == "encoder-v1"  # this database's first
        assert Path(row["path"]) == home / "models" / "encoder-v1-2.keras"
        (removal,) = remove_products(other, [product.product_id])
        assert removal.files == (res.ard_path,)
    finally:
        other.close()
    assert Path(product.ard_path).read_bytes() == ard_bytes
    assert Path(first["path"]).read_bytes() == model_bytes
