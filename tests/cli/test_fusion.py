"""`eominer fusion pair|features|classify` through click, on the real BigEarthNet folder."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from eominer.cli import cli
from eominer.errors import FeatureError, PairingError
from eominer.fusion.labels import Vocabulary
from eominer.ingest import ingest_paths
from eominer.store import open_store

S2 = "S2A_MSIL2A_20170617T113321_36_85"
S1 = "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_36_85"


def test_cli_pair_and_features(ben: Path, db_url: str):
    with open_store(db_url) as store:
        ingest_paths(store, sorted((ben / "s2-tiny").iterdir())
                     + sorted((ben / "s1-tiny").iterdir()), levels=(60, 120))
    out = CliRunner().invoke(cli, ["fusion", "pair", "--db", db_url, "--level", "60"])
    assert out.exit_code == 0, out.output
    assert "3 pairs recorded; unpaired: S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39" in out.output
    assert "12 fused rows at level 60" in out.output
    out = CliRunner().invoke(cli, ["fusion", "features", "--db", db_url, "--level", "120",
                                   "--weights", "1,2"])
    assert out.exit_code == 0 and "3 fused rows at level 120" in out.output
    out = CliRunner().invoke(cli, ["fusion", "pair", "--db", db_url, "--s2", S1, "--s1", S2])
    assert isinstance(out.exception, PairingError)
    assert "give the Sentinel-2 product first" in str(out.exception)
    out = CliRunner().invoke(cli, ["fusion", "features", "--db", db_url, "--level", "60",
                                   "--weights", "x"])
    assert out.exit_code == 2 and "expected 'S2,S1' weights" in out.output


def test_cli_classify(ben: Path, db_url: str, workspace: Path):
    from eominer.evaluation import bigearthnet
    from eominer.fusion import pairing
    from eominer.fusion.network import TwoBranchNet, stack_patches

    with open_store(db_url) as store:
        ingest_paths(store, [ben / "s2-tiny" / S2, ben / "s1-tiny" / S1], levels=(120,))
        pairing.pair_products(store)
    data = bigearthnet.load(ben)
    vocab = Vocabulary.present(data.labels)
    s2, s1 = stack_patches(data.patches[:4])
    path = TwoBranchNet(vocab, epochs=1).fit(s2, s1, vocab.encode(data.labels[:4])).save(
        workspace / "models" / "tiny")
    out = CliRunner().invoke(cli, ["fusion", "classify", "--db", db_url, "--model", str(path)])
    assert out.exit_code == 0, out.output
    assert "1 patches x 12 labels annotated as session fusion:tiny" in out.output
    with open_store(db_url) as store:
        n = store.query("SELECT COUNT(*) FROM annotations WHERE session_id = 'fusion:tiny'")
    assert n[0][0] == 12
    out = CliRunner().invoke(cli, ["fusion", "classify", "--db", db_url, "--model", str(path),
                                   "--labels", "Pastures,Arable land"])
    assert isinstance(out.exception, FeatureError)
    assert "label vocabulary mismatch" in str(out.exception)
