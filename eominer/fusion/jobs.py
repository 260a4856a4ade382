"""Batch jobs: train the two-branch network on Ray, classify every paired patch with it.

Training runs as ONE Ray task (the data of a BigEarthNet folder fits one worker); it asks
for a GPU only when the cluster has one, so the same call works on a laptop and on a
cluster with GPU nodes. The task returns the saved model's bytes, so the driver can store
the model in its own workspace whichever node trained it; the data folder must be readable
by the workers (a shared file system on a cluster). Ray starts through
`compute.runtime.ray_session`, the one entry point that calls `ray.init`.

Classification writes one annotation row per (S2 patch, label): label_name the class's
snake_case key (eominer.fusion.labels.label_key, e.g. 'arable_land'), session_id
'fusion:<model id>', score, positive (score >= threshold), model_version = model id, and
source 'fusion' or 'fusion:s1-only' where the optical patch was cloudy and the S1 head
answered.
"""

from __future__ import annotations

import datetime as dt
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eominer.errors import FeatureError, ModelNotTrainedError
from eominer.fusion.labels import BEN19, Vocabulary, label_key

SESSION_PREFIX = "fusion:"


def _train_task(data_root: str, vocabulary: str, epochs: int, seed: int,
                ) -> tuple[bytes, bytes, dict[str, Any], list[str]]:
    """Runs in a Ray worker: read the data, train, return (model bytes, sidecar, metrics)."""
    from compute.runtime import limit_worker_threads

    limit_worker_threads()  # before TensorFlow or scikit-learn load
    from sklearn.metrics import f1_score

    from eominer.fusion import bigearthnet
    from eominer.fusion.network import TwoBranchNet, stack_patches

    data = bigearthnet.load(data_root)
    vocab = Vocabulary(BEN19) if vocabulary == "ben19" else Vocabulary.present(data.labels)
    Y = vocab.encode(data.labels)
    s2, s1 = stack_patches(data.patches)
    net = TwoBranchNet(vocab, epochs=epochs, seed=seed).fit(s2, s1, Y)
    P = net.predict_proba(s2, s1)
    metrics = {
        "n_patches": len(data), "epochs": epochs,
        # on the training patches: a sanity check, not an accuracy (see `eominer eval fusion`)
        "train_micro_f1": float(f1_score(Y, P >= 0.5, average="micro", zero_division=0)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = net.save(Path(tmp) / "model", {"data_root": str(data_root)})
        return (path.read_bytes(), path.with_suffix(".json").read_bytes(), metrics,
                [p.patch_id for p in data.patches])


def train(
    store, data_root: str | Path, *, vocabulary: str = "present", epochs: int = 30,
    seed: int = 0, address: str | None = None, num_cpus: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train on a BigEarthNet folder as a Ray task; record the model; return its row."""
    from compute.runtime import gpus_for_models, ray_session
    from eominer.fusion.network import KIND
    from eominer.workspace import models_dir

    if vocabulary not in ("present", "ben19"):
        raise FeatureError(f"vocabulary must be 'present' or 'ben19', got {vocabulary!r}")
    root = str(Path(data_root).resolve())
    with ray_session(address=address, num_cpus=num_cpus) as ray:
        gpus = gpus_for_models(ray)  # on an autoscaling cluster this boots a GPU node
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=1)(_train_task)
        if progress:
            progress(f"training on Ray ({'GPU' if gpus else 'CPU'} worker)")
        model_bytes, sidecar, metrics, trained_on = ray.get(
            task.remote(root, vocabulary, epochs, seed))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    model_id = f"{KIND}_{stamp}_{secrets.token_hex(2)}"
    path = models_dir() / f"{model_id}.keras"
    path.write_bytes(model_bytes)
    path.with_suffix(".json").write_bytes(sidecar)
    params = {"data_root": root, "vocabulary": vocabulary, "epochs": epochs, "seed": seed,
              "gpu": bool(gpus)}
    store.add_model(model_id, KIND, str(path), params, metrics, trained_on)
    return store.model(model_id)


def resolve_model(store, model: str | None):
    """A fusion network by model id, by .keras path, or the latest trained one."""
    from eominer.fusion.network import KIND, TwoBranchNet

    if model and (model.endswith(".keras") or Path(model).exists()):
        return Path(model).stem, TwoBranchNet.load(model)
    row = store.model(model) if model else store.latest_model(KIND)
    if row is None or row["kind"] != KIND:
        raise ModelNotTrainedError(
            f"no fusion network {model or ''} in {store.url}: train one with "
            "`eominer fusion train --data ROOT`"
        )
    return row["model_id"], TwoBranchNet.load(row["path"])


def classify(
    store, model: str | None = None, level: int | None = None, threshold: float = 0.5,
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
