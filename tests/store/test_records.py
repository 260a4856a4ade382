"""eominer.store.records: the typed records check themselves."""

from __future__ import annotations

import pytest

from eominer.store.records import (
    SessionParams,
)
from tests.store.rows import T0, session_record


def test_session_records_check_themselves():
    with pytest.raises(ValueError, match=r"unknown session parameter\(s\) \['batch'\]"):
        SessionParams.from_dict({"batch": 5})
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        SessionParams(batch_size=0)
    with pytest.raises(ValueError, match="status must be one of"):
        session_record("s1", "ana", T0, status="paused")
    p = SessionParams.from_dict({"batch_size": 5, "parent_session": "s0"})
    assert p.to_dict() == {"batch_size": 5, "seed": 0, "spatial_weight": 0.0,
                           "model_params": {}, "publish_threshold": 0.5,
                           "parent_session": "s0"}
    assert "parent_session" not in SessionParams().to_dict()
    assert SessionParams.from_dict({"spatial_context": 0.3}).to_dict()["spatial_context"] == 0.3
    assert "spatial_context" not in SessionParams().to_dict()
    with pytest.raises(ValueError, match=r"spatial_context must be in \[0, 0.9\]"):
        SessionParams(spatial_context=1.0)
