"""eominer.learning.cascade: coarse to fine on real OSCD data."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.learning.cascade import cascade
from eominer.learning.session import Session
from tests.learning.sessions import _trained


def test_cascade_coarse_to_fine(learn_store, oscd_db):
    coarse = _trained(learn_store, oscd_db, level=32, rounds=1)
    with pytest.raises(SessionError, match="cannot cascade from level 32 to 64"):
        cascade(coarse, 64)
    fine = cascade(coarse, 16, threshold=0.4)
    # the pruning threshold is the coarse session's published one, not the fine one's
    assert coarse.params.publish_threshold == 0.4 and fine.params.publish_threshold == 0.5
    pos32 = learn_store.positive_annotations(coarse.session_id)
    assert 0 < len(pos32) < 224
    kids = learn_store.patches(oscd_db["product"], 16)
    parent = kids["parent_id"].fill_null(-1).to_numpy()
    expected = kids["patch_id"].to_numpy()[np.isin(parent, pos32)]
    assert np.array_equal(np.sort(fine.patch_ids), np.sort(expected))
    assert fine.level == 16 and fine.params.parent_session == coarse.session_id
    # the fine session learns on its own, and reopens with the same scope
    truth = oscd_db["truth"][16]
    inside = fine.patch_ids.tolist()
    for p in [p for p in inside if truth[p] > 0.05][:2] + \
            [p for p in inside if truth[p] == 0][:3]:
        fine.label(p, 1 if truth[p] > 0.05 else -1, "ana")
    r = fine.run_round()
    assert r.scores.shape == (len(expected),)
    again = Session.open(learn_store, fine.session_id)
    assert np.array_equal(again.patch_ids, fine.patch_ids)
