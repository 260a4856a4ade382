"""eominer.learning.ann: a shard's Index is opened once per process and shared, and its
beam width (`expansion_search`) is a property of that shared object. The app serves
several browser sessions at once; each search must run at the width it set."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np


class _SlowIndex:
    """Stands in for a shard's usearch Index in the one respect tested: setting the
    width takes a moment, and a search records the width it ran at."""

    def __init__(self) -> None:
        self._width = 0
        self.searched_at: dict[int, int] = {}

    def __len__(self) -> int:
        return 10_000

    @property
    def expansion_search(self) -> int:
        return self._width

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self._width = value
        time.sleep(0.2)  # another thread's search would set its own width meanwhile

    def search(self, query: np.ndarray, count: int) -> object:  # as usearch's Matches
        self.searched_at[count] = self._width
        keys = np.arange(count, dtype=np.uint64)
        return type("Matches", (), {"keys": keys, "distances": keys.astype(np.float32)})()


def test_two_searches_of_one_shard_at_once_each_run_at_their_own_width(monkeypatch) -> None:
    from eominer.learning import ann

    shard = _SlowIndex()
    monkeypatch.setattr(ann, "_open_shard", lambda path: shard)
    query = np.zeros(4, np.float32)
    ks = (300, 900)  # two widths above the default beam
    threads = [threading.Thread(target=ann._search_shard, args=(Path("s.usearch"), query, k))
               for k in ks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shard.searched_at == {k: max(ann.EXPANSION_SEARCH, k) for k in ks}
