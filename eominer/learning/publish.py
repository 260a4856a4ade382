"""Publishing: the session's result becomes one annotation row per patch.

Then SQL can ask, e.g. "patches labelled flooded_field with score > 0.8 acquired
after 2017-05-01" (see `Store.annotated_patches` and docs/learning.md). The classifier
is saved with it (`eominer.learning.saved`), so `eominer apply` can use it on the rest
of the archive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from eominer.learning.session import Session


def decide(session: Session, threshold: float | None = None,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, positive, source) per patch of the session's result: positive where the
    score (float32) is at least `threshold` (default the session's publish threshold),
    or where the analyst said yes; source "label" where an answer decides, else "model".
    Publishing and the exports both decide so, so a download says what the annotations
    say."""
    if threshold is None:
        threshold = session.params.publish_threshold
    scores = session.result_scores()
    positive = scores >= np.float32(threshold)
    source = np.full(len(scores), "model", dtype=object)
    ids, y = session.labels()
    rows = session.data.rows(ids)
    positive[rows] = y == 1
    source[rows] = "label"
    return scores, positive, source


def publish(session: Session, threshold: float = 0.5) -> str:
    """Write the annotations at `threshold`, which becomes the session's publish
    threshold: the default of its exports, polygons, refinement and saved models (so
    `eominer apply MODEL` marks positives as the session was published), in the same
    transaction. Then save the model."""
    import dataclasses

    from eominer.learning.saved import save_model

    scores, positive, source = decide(session, threshold)
    version = session.model_version()
    store = session.store
    params = dataclasses.replace(session.params, publish_threshold=float(threshold))
    with store.transaction():
        store.write_annotations(session.session_id, session.concept, session.patch_ids,
                                scores, positive, version, source.tolist())
        if params != session.params:
            store.update_session(session.session_id, params=params)
    session.record = dataclasses.replace(session.record, params=params)
    save_model(session)
    session.set_status("published")
    return version
