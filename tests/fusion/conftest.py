"""Fixtures for the fusion tests: the BigEarthNet folder, ingested and paired, and its
descriptors and labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from eominer.evaluation import bigearthnet
from eominer.fusion import pairing
from eominer.fusion.features import dataset_descriptors
from eominer.fusion.labels import Vocabulary
from eominer.ingest import ingest_paths
from eominer.store import open_store


@pytest.fixture(scope="module")
def paired(ben: Path, tmp_path_factory):
    """The tiny folders ingested (levels 60, 120) and paired, in a module workspace."""
    home = tmp_path_factory.mktemp("fusion_ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        store = open_store(f"duckdb:///{home / 'f.duckdb'}")
        ingest_paths(store, sorted((ben / "s2-tiny").iterdir())
                     + sorted((ben / "s1-tiny").iterdir()), levels=(60, 120))
        pairs, unpaired = pairing.pair_products(store)
        yield store, pairs, unpaired, mp
        store.close()


@pytest.fixture(scope="module")
def data(ben):
    d = bigearthnet.load(ben)
    X2, X1 = dataset_descriptors(d.patches)
    Y = Vocabulary.present(d.labels).encode(d.labels)
    return d, X2, X1, Y
