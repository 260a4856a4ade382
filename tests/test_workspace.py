"""File names in a workspace that several databases share (eominer.workspace)."""

from __future__ import annotations

import threading
from pathlib import Path

from eominer.workspace import claim, staged, unclaimed


def test_a_claimed_name_is_taken_until_its_file_is_gone(tmp_path: Path) -> None:
    ard = tmp_path / "S2_MSIL1C_20170216T102101_T33UUU.tif"
    first, first_staged = claim(ard)
    assert (first, first_staged) == (ard, tmp_path / ".S2_MSIL1C_20170216T102101_T33UUU.staged.tif")
    assert first_staged.exists() and first_staged.stat().st_size == 0  # created, empty
    second, _ = claim(ard)  # the first is still being written
    assert second == tmp_path / "S2_MSIL1C_20170216T102101_T33UUU-2.tif"
    assert unclaimed(ard) == tmp_path / "S2_MSIL1C_20170216T102101_T33UUU-3.tif"
    first_staged.write_bytes(b"cog")
    first_staged.replace(first)  # committed: the name stays taken by the file itself
    assert unclaimed(ard).name.endswith("-3.tif")
    staged(second).unlink()  # the second writer failed and cleaned up
    assert unclaimed(ard) == second


def test_the_encoders_staged_file_counts_as_taken(tmp_path: Path) -> None:
    # Keras needs the .keras suffix, so the staged name keeps it: .ssl-v1.staged.keras
    model = tmp_path / "ssl-v1.keras"
    (tmp_path / ".ssl-v1.staged.keras").write_bytes(b"being saved by another database")
    assert unclaimed(model) == tmp_path / "ssl-v1-2.keras"


def test_writers_that_claim_at_the_same_moment_get_names_of_their_own(tmp_path: Path) -> None:
    target, n = tmp_path / "encoder-v1.keras", 8
    start, names, lock = threading.Barrier(n), [], threading.Lock()

    def writer() -> None:
        start.wait()
        name, _ = claim(target)
        with lock:
            names.append(name.name)

    threads = [threading.Thread(target=writer) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(names) == sorted(["encoder-v1.keras"] + [f"encoder-v1-{i}.keras"
                                                           for i in range(2, n + 1)])
