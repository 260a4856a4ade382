"""The app's encoder job refuses, before any process starts, a product that lacks the
bands chosen in 'Encoder sees' (views without a browser; the job itself runs in
tests/ui/test_workspace.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def four_band_store(four_band_pair, tmp_path: Path, monkeypatch):
    """A four-band COG (B02, B03, B04, B08 of a real OSCD date) beside the full date."""
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path))
    with open_store(f"duckdb:///{tmp_path / 'db.duckdb'}") as store:
        ingest_paths(store, list(four_band_pair), levels=(32,))
        yield store


def test_the_encoder_job_names_the_product_without_the_chosen_bands(four_band_store):
    from eominer.ui.jobs import ENCODER_BANDS, JobsView
    from eominer.ui.state import AppState

    ids = {len(p.bands): p.product_id for p in four_band_store.product_list()}
    assert sorted(ids) == [4, 13]
    state = AppState(four_band_store, user="ana")
    view = JobsView(state=state, selected=lambda: sorted(ids.values()),
                    on_finished=lambda: None)
    assert view._encoder_bands.value == "4 bands (10 m)"  # what every product has
    assert ENCODER_BANDS["10 bands (10 and 20 m)"][4:] == ("B05", "B06", "B07", "B8A",
                                                           "B11", "B12")
    view._encoder_bands.value = "10 bands (10 and 20 m)"
    view._run_encoder()
    assert state.severity == "error"
    assert (f"product {ids[4]} lacks band(s) B05, B06, B07, B8A, B11, B12: choose "
            "'4 bands (10 m)' in 'Encoder sees'") in state.message
    assert not [j for j in view.launcher.active() if j.key[0] == "encoder"]  # nothing ran
