"""eominer.store.models on every engine of the contract."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.store.rows import T0, as_datetime


def test_models(store):
    assert store.models() == [] and store.latest_model("encoder") is None
    store.add_model("encoder-v1", "encoder", "/m/e1.keras", {"dim": 64, "when": T0},
                    {"loss": 0.5}, ["P1", "P2"])
    store.add_model("fusion-v1", "fusion", "/m/f1.keras", {}, {}, [])
    store.add_model("encoder-v2", "encoder", "/m/e2.keras", {"dim": 128}, {"loss": 0.25},
                    ["P1"])
    enc = store.models("encoder")
    assert [m["model_id"] for m in enc] == ["encoder-v1", "encoder-v2"]
    assert enc[0]["params"] == {"dim": 64, "when": str(T0)}
    assert enc[0]["metrics"] == {"loss": 0.5} and enc[0]["trained_on"] == ["P1", "P2"]
    assert isinstance(as_datetime(enc[0]["created"]), dt.datetime)
    assert len(store.models()) == 3
    assert store.latest_model("encoder")["model_id"] == "encoder-v2"
    assert store.model("fusion-v1")["path"] == "/m/f1.keras"
    assert store.model("fusion-v1")["trained_on"] == []
    assert store.model("nope") is None
    with pytest.raises(Exception, match=r"(?i)constraint|primary|duplicate|unique"):
        store.add_model("fusion-v1", "fusion", "/x", {}, {}, [])
    assert len(store.models()) == 3
