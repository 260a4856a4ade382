"""The OSCD mining task on an ingested workspace: a second date on another grid is
resampled onto the first date's grid, as the change methods align it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eominer.change.align import CHANGE_BANDS
from eominer.evaluation.oscd import load_city
from eominer.evaluation.tasks import oscd_task
from tests.conftest import fresh_workspace


def test_a_smaller_second_date_is_resampled_onto_the_first(tmp_path_factory,
                                                          shared_data: Path) -> None:
    import rasterio

    root = shared_data / "oscd"
    with fresh_workspace(tmp_path_factory, "oscd_task_ws") as (home, store):
        notes: list[str] = []
        task = oscd_task(store, root, ["hongkong"], 16, home, notes)
        assert notes == ["oscd hongkong: imgs_2 (538 x 693 px) resampled onto imgs_1's grid "
                         "(540 x 695 px, bilinear) as the pair's second product"]
        (p1, p2), = task.pairs
        first, second = store.product(p1), store.product(p2)
        assert p2.endswith("_aligned") and second.acquired.year == 2018
        # written under a temporary name, then renamed: nothing else is left beside it
        copies = sorted(p.name for p in (home / "oscd_aligned" / "hongkong").iterdir())
        assert copies == [Path(second.source_path).name]
        assert (second.width, second.height) == (first.width, first.height) == (540, 695)
        assert store.patches(p2, 16).num_rows == store.patches(p1, 16).num_rows
        assert len(task.y) == (540 // 16) * (695 // 16) and task.positives > 0
        # the copy holds what the change methods compare: date 2 on date 1's grid
        pair, _ = load_city(root, "hongkong")
        with rasterio.open(second.ard_path) as ds:
            names = list(ds.descriptions)
            got = np.stack([ds.read(names.index(b) + 1) for b in CHANGE_BANDS]) / 1e4
        inner = (slice(None), slice(2, -2), slice(2, -2))
        diff = np.abs(got[inner] - pair.x2[inner])
        assert np.median(diff) < 2e-4 and np.quantile(diff, 0.99) < 0.01
        assert np.corrcoef(got[inner].ravel(), pair.x2[inner].ravel())[0, 1] > 0.999
