"""Registry: names, identities, bad names, the encoder before training."""

from __future__ import annotations

import pytest

from eominer.errors import FeatureError, ModelNotTrainedError
from eominer.features import build, parse_feature_names
from eominer.store import feature_set_id


def test_parse_names_defaults_and_dedup():
    assert parse_feature_names(None) == ["spectral", "gabor", "wld", "sar", "encoder", "ssl"]
    assert parse_feature_names("gabor, spectral,gabor") == ["gabor", "spectral"]


def test_unknown_feature_name_is_a_clear_error():
    with pytest.raises(FeatureError, match=r"unknown feature set 'texture'.*spectral"):
        parse_feature_names("spectral,texture")
    with pytest.raises(FeatureError, match="unknown feature set"):
        build("texture", ["B04"])


def test_identity_changes_with_parameters_and_bands():
    a = build("spectral", ["B04", "B08"])
    b = build("spectral", ["B04", "B08"], percentiles=(25, 75))
    c = build("spectral", ["B03", "B04", "B08"])
    ids = {feature_set_id(d.name, d.version, d.params) for d in (a, b, c)}
    assert len(ids) == 3


def test_encoder_before_training():
    with pytest.raises(ModelNotTrainedError, match="eominer encoder train --method autoencoder"):
        build("encoder", ["B02", "B03", "B04", "B08"])


def test_missing_band_is_named():
    with pytest.raises(FeatureError, match="missing B08"):
        build("gabor", ["B02", "B03", "B04"])
