"""eominer.evaluation.cascade on the real OSCD learning store (Bordeaux, 16 and 32 px)."""

from __future__ import annotations

import numpy as np

from eominer.evaluation.cascade import coarse_truth, simulate_cascade
from eominer.evaluation.ranking import average_precision
from eominer.evaluation.tasks import Task
from eominer.learning.session import Session


def _task(store, oscd_db) -> Task:
    truth = oscd_db["truth"][16]
    ids = np.asarray(sorted(truth), np.int64)
    y = np.where(np.asarray([truth[i] for i in ids]) > 0.05, 1, -1).astype(np.int8)
    return Task("bordeaux", "new_construction", (oscd_db["product"],), ids, y, 16)


def test_coarse_truth_and_a_cascaded_run_score_the_whole_pool(learn_store, oscd_db):
    task = _task(learn_store, oscd_db)
    ids32, y32 = coarse_truth(learn_store, task, 32)
    kids = learn_store.patches(oscd_db["product"], 16)
    parent = dict(zip(kids["patch_id"].to_numpy().tolist(),
                      kids["parent_id"].to_numpy().tolist(), strict=True))
    by_hand = {parent[int(p)] for p in task.patch_ids[task.y == 1]}
    assert ids32.tolist() == sorted(learn_store.patches(oscd_db["product"], 32)["patch_id"]
                                    .to_numpy().tolist())
    assert set(ids32[y32 == 1].tolist()) == by_hand and 0 < len(by_hand) < len(ids32)

    run = simulate_cascade(learn_store, task, [oscd_db["fs"]], 32, strategy="margin",
                           model="logistic", seed=0, coarse_budget=12, budget=30, batch=6,
                           threshold=0.3, checkpoints=(20, 30))
    assert run.coarse_labels == 12 and run.labels[-1] == 30 and 20 in run.labels
    fine = Session.open(learn_store, run.session_ids[1])
    assert fine.level == 16 and fine.params.parent_session == run.session_ids[0]
    inside = np.isin(task.patch_ids, fine.patch_ids)
    assert run.kept == inside.mean() < 1
    assert run.recall_kept == (task.y[inside] == 1).sum() / (task.y == 1).sum()
    full = np.full(len(task.y), -1.0)  # pruned patches rank last
    fine.show_answers = False  # the evaluation's AP: the model's ranking (mining.drive)
    full[np.searchsorted(task.patch_ids, fine.patch_ids)] = fine.current_scores()
    assert abs(run.ap[-1] - average_precision(task.y, full)) < 1e-9
