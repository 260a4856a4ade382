"""eominer.learning.taxonomy: user labels on a real store."""

from __future__ import annotations

import pytest

from eominer.errors import SessionError
from eominer.learning.session import Session
from eominer.learning.taxonomy import add_label


def test_user_taxonomy_labels(learn_store, oscd_db):
    row = add_label(learn_store, "solar_farm", "industrial_commercial_transport",
                    "Solar farm", user="ana")
    assert row["level"] == 3
    s = Session.create(learn_store, "pv", "ana", "solar_farm", [oscd_db["product"]], 16,
                       [oscd_db["fs"]])
    assert s.concept == "solar_farm"
    with pytest.raises(SessionError, match="already exists"):
        add_label(learn_store, "solar_farm", None, "again")
    with pytest.raises(SessionError, match="not valid"):
        add_label(learn_store, "Solar Farm", None, "bad")
    assert {r["label_name"] for r in learn_store.taxonomy()} >= {"urban_fabric", "water_bodies"}
