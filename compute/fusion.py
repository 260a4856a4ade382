"""`eominer fusion train`: the two-branch S1/S2 network trained as one runner task.

The data of a BigEarthNet folder fits one worker. The task asks for a GPU only where the
cluster has or can start one, so the same call works on a laptop and on a cluster with
GPU nodes; it returns the saved model's bytes, so the driver stores the model in its own
workspace whichever node trained it (the data folder must be readable by the workers: a
shared file system on a cluster). Each run trains a new model; one that was stopped (or
failed) leaves its task to the next training, which takes it over: there is nothing to
resume in a single task but its row.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compute.runner import Finished, JobSpec, Task, task_says
from eominer.errors import FeatureError

if TYPE_CHECKING:
    from eominer.store import Store


MIN_PATCHES = 10  # fewer labelled patches to train the fusion network on are refused


def train_network(data_root: str, vocabulary: str, epochs: int, seed: int,
                  ) -> tuple[bytes, bytes, dict[str, Any], list[str]]:
    """The task function: read the data, train; (model bytes, sidecar, metrics, patch ids)."""
    from sklearn.metrics import f1_score

    from eominer.evaluation import bigearthnet
    from eominer.fusion.labels import BEN19, Vocabulary
    from eominer.fusion.network import TwoBranchNet, stack_patches
    from eominer.tfimport import import_tensorflow

    tf = import_tensorflow("the S1/S2 fusion network")

    data = bigearthnet.load(data_root)
    if len(data) < MIN_PATCHES:  # it would train, and score itself 1.0 on what it saw
        raise FeatureError(
            f"{data_root} holds {len(data)} labelled patch(es): the fusion network needs "
            f"at least {MIN_PATCHES}; give --data a BigEarthNet folder (S1 and S2 patches "
            "with their labels)")
    vocab = Vocabulary(BEN19) if vocabulary == "ben19" else Vocabulary.present(data.labels)
    Y = vocab.encode(data.labels)
    s2, s1 = stack_patches(data.patches)
    net = TwoBranchNet(vocab, epochs=epochs, seed=seed).fit(s2, s1, Y, log=task_says)
    P = net.predict_proba(s2, s1)
    metrics = {
        "n_patches": len(data), "epochs": epochs,
        "gpu": bool(tf.config.list_physical_devices("GPU")),
        # on the training patches: a sanity check, not an accuracy (see `eominer eval fusion`)
        "train_micro_f1": float(f1_score(Y, P >= 0.5, average="micro", zero_division=0)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = net.save(Path(tmp) / "model", {"data_root": str(data_root)})
        return (path.read_bytes(), path.with_suffix(".json").read_bytes(), metrics,
                [p.patch_id for p in data.patches])


def train(
    store: Store, data_root: str | Path, *, vocabulary: str = "present", epochs: int = 30,
    seed: int = 0, address: str | None = None, num_cpus: int | None = None,
    progress: Callable[[str], None] | None = None, in_process: bool = False,
) -> dict[str, Any]:
    """Train on a BigEarthNet folder on the runner; record the model; return its row.
    `in_process`: the same task in this process, without Ray (`--no-ray`)."""
    import datetime as dt
    import secrets

    from compute.runner import new_job_id, run_job, task_to_take_over
    from eominer.fusion.network import KIND
    from eominer.workspace import models_dir

    if vocabulary not in ("present", "ben19"):
        raise FeatureError(f"vocabulary must be 'present' or 'ben19', got {vocabulary!r}")
    root = str(Path(data_root).resolve())
    job_id = new_job_id("fusion-train")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    model_id = f"{KIND}_{stamp}_{secrets.token_hex(2)}"

    def commit(store: Store | None, done: list[Finished]) -> None:
        assert store is not None
        model_bytes, sidecar, metrics, trained_on = done[0].result
        path = models_dir() / f"{model_id}.keras"
        path.write_bytes(model_bytes)
        path.with_suffix(".json").write_bytes(sidecar)
        params = {"data_root": root, "vocabulary": vocabulary, "epochs": epochs, "seed": seed,
                  "gpu": metrics.pop("gpu")}
        store.add_model(model_id, KIND, str(path), params, metrics, trained_on)

    task = Task(task_to_take_over(store, "fusion-train") or f"{job_id}/train", train_network,
                (root, vocabulary, epochs, seed), gpu=True)
    if progress:
        where = "on Ray" if address and not in_process else "in this process"
        progress(f"training {where} ({epochs} epochs, data {root})")
    # one task: on a cluster a (GPU) worker; else this process (as `encoder train`)
    report = run_job(store, JobSpec("fusion-train", [task], commit, says=True),
                     address=address, num_cpus=num_cpus, retries=1,
                     num_workers=0 if in_process else 1 if address else None)
    report.raise_for_failures()
    return store.model(model_id)
