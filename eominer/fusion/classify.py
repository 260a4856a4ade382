"""Classify every paired patch with a trained two-branch network (trained by
`eominer fusion train`, a runner job: compute/fusion.py).

Classification writes one annotation row per (S2 patch, label): label_name the class's
snake_case key (eominer.fusion.labels.label_key, e.g. 'arable_land'), session_id
'fusion:<model id>', score, positive (score >= threshold), model_version = model id, and
source 'fusion' or 'fusion:s1-only' where the optical patch was cloudy and the S1 head
answered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import FeatureError, ModelNotTrainedError
from eominer.fusion.labels import Vocabulary, label_key

if TYPE_CHECKING:
    from eominer.fusion.network import TwoBranchNet
    from eominer.store import Store

SESSION_PREFIX = "fusion:"


def resolve_model(store: Store, model: str | None) -> tuple[str, TwoBranchNet]:
    """A fusion network by model id, by .keras path, or the latest trained one."""
    from eominer.fusion.network import KIND, TwoBranchNet

    if model and (model.endswith(".keras") or Path(model).exists()):
        return Path(model).stem, TwoBranchNet.load(model)
    row = store.model(model) if model else store.latest_model(KIND)
    if row is None or row["kind"] != KIND:
        raise ModelNotTrainedError(
            f"no fusion network{f' {model}' if model else ''} in {store.url}: train one with "
            "`eominer fusion train --data ROOT`"
        )
    return row["model_id"], TwoBranchNet.load(row["path"])


def classify(
    store: Store, model: str | None = None, level: int | None = None, threshold: float = 0.5,
    vocabulary: Vocabulary | None = None, min_valid: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score every S2 patch of every recorded pair; write the annotations; return counts."""
    from eominer.fusion import cloud
    from eominer.fusion.featureset import pair_patches, usable_flags

    model_id, net = resolve_model(store, model)
    if vocabulary is not None:
        net.vocabulary.require_same(vocabulary, f"fusion network {model_id}")
    pairs = store.fusion_pairs()
    if not pairs:
        raise FeatureError("no S1/S2 pairs recorded: run `eominer fusion pair` first")
    level = int(level or net.size_)
    ids, scores, sources = [], [], []
    for pair in pairs:
        for pid, s2p, s1p, cf in pair_patches(store, pair, level):
            ok = usable_flags(s2p, cf, cloud.MIN_VALID if min_valid is None else min_valid)
            scores.append(net.predict_proba(s2p, s1p, s2_usable=ok))
            ids.append(pid)
            sources += ["fusion" if u else "fusion:s1-only" for u in ok]
        if progress:
            progress(f"{pair['s2_id']}: classified")
    patch_ids, probs = np.concatenate(ids), np.vstack(scores)
    session_id = SESSION_PREFIX + model_id
    with store.transaction():
        for j, name in enumerate(net.vocabulary.names):
            store.write_annotations(session_id, label_key(name), patch_ids, probs[:, j],
                                    probs[:, j] >= threshold, model_id, sources)
    return {"model_id": model_id, "session_id": session_id, "patches": int(len(patch_ids)),
            "labels": len(net.vocabulary), "s1_only": int(sources.count("fusion:s1-only")),
            "positives": int((probs >= threshold).sum())}
