"""fusion/labels.py: CORINE names -> the 19 BigEarthNet classes, vocabularies."""

from __future__ import annotations

import pytest

from eominer.errors import FeatureError
from eominer.fusion.labels import BEN19, Vocabulary, to_ben19


def test_corine43_names_map_to_the_19_classes():
    got = to_ben19(["Discontinuous urban fabric", "Non-irrigated arable land", "Water courses",
                    "Transitional woodland/shrub", "Road and rail networks and associated land"])
    assert got == ("Urban fabric", "Arable land", "Transitional woodland, shrub",
                   "Inland waters")
    assert to_ben19(["Pastures", "Pastures"]) == ("Pastures",)


def test_unknown_label_is_an_error():
    with pytest.raises(FeatureError, match="unknown land-cover label 'Lava fields'"):
        to_ben19(["Lava fields"], "x.json")


def test_vocabulary_encodes_and_refuses_foreign_labels():
    v = Vocabulary(("Pastures", "Arable land"))
    assert v.encode([["Arable land"], ["Pastures", "Arable land"], []]).tolist() == [
        [0, 1], [1, 1], [0, 0]]
    with pytest.raises(FeatureError, match="'Mixed forest' is not in the model's vocabulary"):
        v.encode([["Mixed forest"]])
    with pytest.raises(FeatureError, match="not trained with: \\['Mixed forest'\\]"):
        v.require_same(Vocabulary(("Pastures", "Arable land", "Mixed forest")))
    with pytest.raises(FeatureError, match="same labels in another order"):
        v.require_same(Vocabulary(("Arable land", "Pastures")))
    assert Vocabulary.present([["Pastures"], ["Urban fabric"]]).names == (
        "Urban fabric", "Pastures")
    assert len(BEN19) == 19
