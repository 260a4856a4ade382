"""eominer.learning.ann: a shard's Index is opened once per process and shared, and its
beam width (`expansion_search`) is a property of that shared object. The app serves
several browser sessions at once; each search must run at the width it set."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np


class _SlowToSet:
    """The real shard Index, with one delay: setting its width takes a moment (as long
    as another thread needs to set its own). Its searches run on the real Index and
    record the width they ran at."""

    def __init__(self, index: object) -> None:
        self._index = index
        self.searched_at: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._index)

    @property
    def expansion_search(self) -> int:
        return self._index.expansion_search

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self._index.expansion_search = value
        time.sleep(0.2)

    def search(self, query: np.ndarray, count: int) -> object:
        self.searched_at[count] = self._index.expansion_search
        return self._index.search(query, count)


def test_two_searches_of_one_shard_at_once_each_run_at_their_own_width(
        oscd: Path, tmp_path: Path, monkeypatch) -> None:
    import rasterio

    from eominer.learning import ann

    # real vectors: the 8 x 8 px blocks of Bordeaux's red band, standardised
    path = next((oscd / "images" / "bordeaux" / "imgs_1").glob("*B04*"))
    with rasterio.open(path) as src:
        band = src.read(1).astype(np.float32)
    h, w = (s // 8 * 8 for s in band.shape)
    blocks = band[:h, :w].reshape(h // 8, 8, w // 8, 8).swapaxes(1, 2).reshape(-1, 64)
    Z = (blocks - blocks.mean(0)) / blocks.std(0)
    shard = tmp_path / "bordeaux.usearch"
    ann.build_shard(np.arange(len(Z)), Z, shard)
    slow = _SlowToSet(ann._open_shard(shard))
    monkeypatch.setattr(ann, "_open_shard", lambda path: slow)
    ks, got = (300, 900), {}  # two widths above the default beam

    def search(k: int) -> None:
        got[k] = ann._search_shard(shard, Z[0], k)[0]

    threads = [threading.Thread(target=search, args=(k,)) for k in ks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert slow.searched_at == {k: max(ann.EXPANSION_SEARCH, k) for k in ks}
    assert all(len(got[k]) == k and got[k][0] == 0 for k in ks)  # the block itself first
