"""fusion/models.py (and the fusion estimators built on it): refusals."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError, ModelNotTrainedError
from eominer.fusion.decision import DecisionFusion, FeatureFusion
from eominer.fusion.models import MultiLabelLogistic


def test_model_errors(data):
    _, X2, X1, Y = data
    with pytest.raises(ModelNotTrainedError, match="not fitted"):
        FeatureFusion(30).predict_proba(np.hstack([X2, X1]))
    with pytest.raises(FeatureError, match="unknown decision-fusion rule 'vote'"):
        DecisionFusion(30, "vote").fit(np.hstack([X2, X1]), Y)
    with pytest.raises(FeatureError, match="NaN/inf"):
        MultiLabelLogistic().fit(np.full((3, 2), np.nan), np.zeros((3, 1)))
    m = MultiLabelLogistic().fit(X2, Y)
    with pytest.raises(FeatureError, match="fitted on 30 features, got 10"):
        m.predict_proba(X1)
