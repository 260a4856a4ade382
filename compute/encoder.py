"""`eominer encoder train`: the autoencoder or the self-supervised (VICReg) encoder
trained as one runner task.

The driver samples the training patches from the patch table (ids and offsets, no
pixels); the task reads them from the ARD COGs itself (the workspace must be readable by
the workers: a shared file system on a cluster), trains, and returns the saved model's
bytes, so the driver stores the model in its own workspace whichever node trained it.
The task asks for a GPU where the cluster has or can start one. Each run trains a new
model; one that was stopped (or failed) leaves its task to the next training of its kind,
which takes it over: there is nothing to resume in a single task but its row.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compute.runner import Finished, JobSpec, Task, TaskCallback, task_says
from eominer.errors import FeatureError

if TYPE_CHECKING:
    from eominer.features.encoder_train import PatchSource
    from eominer.store import Store

METHODS = {"autoencoder": "encoder", "ssl": "ssl"}  # method -> model kind / feature set


def fitter(method: str) -> Callable[..., tuple[Any, dict[str, Any], dict[str, Any]]]:
    if method == "ssl":
        from eominer.features.ssl import fit_ssl

        return fit_ssl
    from eominer.features.encoder_train import fit_autoencoder

    return fit_autoencoder


def train_task(method: str, sources: Sequence[PatchSource], epochs: int, dim: int,
               batch_size: int, seed: int) -> tuple[bytes, dict[str, Any], dict[str, Any],
                                                     list[str]]:
    """The task function: read the patches, train; (model bytes, params, metrics, products)."""
    from eominer.features.encoder_train import read_patches
    from eominer.tfimport import import_tensorflow

    tf = import_tensorflow("the encoder")
    x, used = read_patches(sources)
    # a line per epoch: in the terminal above the bar, in the app's job list
    # (`AppJob.said`), from a Ray (GPU) worker too
    model, params, metrics = fitter(method)(x, epochs, dim, batch_size, seed,
                                            log=task_says, bands=sources[0].use)
    metrics["gpu"] = bool(tf.config.list_physical_devices("GPU"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes(), params, metrics, used


def train(store: Store, method: str = "autoencoder", product_ids: Sequence[str] | None = None,
          *, epochs: int = 5, dim: int | None = None, max_patches: int = 20000,
          batch_size: int = 128, seed: int = 0, bands: Sequence[str] | None = None,
          address: str | None = None,
          num_cpus: int | None = None, progress: Callable[[str], None] | None = None,
          on_start: Callable[[int, int], None] | None = None,
          on_task: TaskCallback | None = None,
          ) -> dict[str, Any]:
    """Train on the runner; record the model (`models` row, `<kind>-v<N>.keras`); return
    its row. `on_start`, `on_task`: `run_job`'s progress callbacks."""
    from compute.runner import new_job_id, run_job, task_to_take_over
    from eominer.features.encoder import BANDS
    from eominer.features.encoder_train import sample_sources, save_model

    if method not in METHODS:
        raise FeatureError(f"encoder method must be one of {', '.join(METHODS)}, got "
                           f"{method!r}")
    kind = METHODS[method]
    dim = dim or (64 if method == "ssl" else 32)
    sources = sample_sources(store, product_ids, max_patches, seed=seed,  # checks first
                             bands=bands or BANDS, log=progress)
    job_id = new_job_id(f"{kind}-train")
    saved: list[dict[str, Any]] = []

    def commit(store: Store | None, done: list[Finished]) -> None:
        assert store is not None
        model_bytes, params, metrics, used = done[0].result
        saved.append(save_model(store, kind, model_bytes, params, metrics, used))

    task = Task(task_to_take_over(store, f"{kind}-train") or f"{job_id}/train", train_task,
                (method, sources, epochs, dim, batch_size, seed), gpu=True,
                n_items=sum(len(s.ys) for s in sources))
    if progress:
        where = "on Ray" if address else "in this process"
        progress(f"training {method} {where} ({epochs} epochs, "
                 f"{task.n_items} patches of {len(sources)} product(s))")
    # one task: on a cluster a (GPU) worker; else this process, with all its threads (a
    # local Ray worker gets one thread and costs its start-up: 5.5 s)
    report = run_job(store, JobSpec(f"{kind}-train", [task], commit, says=True),
                     address=address, num_cpus=num_cpus, num_workers=1 if address else None,
                     retries=1, on_start=on_start, on_task=on_task)
    report.raise_for_failures()
    return saved[0] if saved else store.latest_model(kind)
