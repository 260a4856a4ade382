"""File names in a workspace that several databases share (eominer.workspace)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from eominer.workspace import claim, settle, staged

ARD = "S2_MSIL1C_20170216T102101_T33UUU"


def in_another_process(tmp_path: Path, body: str, end: str) -> subprocess.CompletedProcess:
    """Claim `tmp_path/<ARD>.tif` in a Python process of its own, run `body` (with `name`
    the claim), then end it: "kill" (SIGKILL, nothing cleaned up) or "exit"."""
    ending = {"kill": "os.kill(os.getpid(), signal.SIGKILL)", "exit": "sys.exit(0)"}[end]
    code = (f"import os, signal, sys\nfrom pathlib import Path\n"
            f"from eominer.workspace import claim\n"
            f"name = claim(Path({str(tmp_path / f'{ARD}.tif')!r}))\n{body}\n{ending}\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_claimed_name_is_taken_until_its_file_is_gone(tmp_path: Path) -> None:
    ard = tmp_path / f"{ARD}.tif"
    first = claim(ard)
    assert (first.dest, first.staged) == (ard, tmp_path / f".{ARD}.staged.tif")
    assert first.staged.exists() and first.staged.stat().st_size == 0  # created, empty
    second = claim(ard)  # the first is still being written
    assert second.dest == tmp_path / f"{ARD}-2.tif"
    first.staged.write_bytes(b"cog")
    first.staged.replace(first.dest)  # committed: the name stays taken by the file itself
    first.release()
    third = claim(ard)
    assert third.dest.name.endswith("-3.tif")
    second.release()  # the second writer failed and cleaned up
    third.release()
    assert claim(ard).dest == second.dest
    assert leftovers(tmp_path) == [f".{ARD}-2.staged.tif", f".{ARD}-2.staged.tif.lock",
                                   f"{ARD}.tif"]


def test_the_encoders_staged_file_counts_as_taken(tmp_path: Path) -> None:
    # Keras needs the .keras suffix, so the staged name keeps it: .ssl-v1.staged.keras;
    # one staged by a version without lock files is left alone
    model = tmp_path / "ssl-v1.keras"
    (tmp_path / ".ssl-v1.staged.keras").write_bytes(b"being saved by another database")
    name = claim(model)
    assert name.dest == tmp_path / "ssl-v1-2.keras"
    assert (tmp_path / ".ssl-v1.staged.keras").read_bytes() == b"being saved by another database"
    assert not (tmp_path / ".ssl-v1.staged.keras.lock").exists()


def test_writers_that_claim_at_the_same_moment_get_names_of_their_own(tmp_path: Path) -> None:
    target, n = tmp_path / "encoder-v1.keras", 8
    start, names, lock = threading.Barrier(n), [], threading.Lock()

    def writer() -> None:
        start.wait()
        name = claim(target)
        with lock:
            names.append(name.dest.name)

    threads = [threading.Thread(target=writer) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(names) == sorted(["encoder-v1.keras"] + [f"encoder-v1-{i}.keras"
                                                           for i in range(2, n + 1)])


def test_a_name_whose_writer_was_killed_is_taken_back_with_its_file(tmp_path: Path) -> None:
    """SIGKILL mid-write: no clean-up ran, 5 MB are staged. The next claimant takes the
    same name and empties the file, instead of `-2` beside a file nobody removes."""
    r = in_another_process(tmp_path, "name.staged.write_bytes(bytes(5_000_000))", "kill")
    assert r.returncode == -9, r.stderr
    assert (tmp_path / f".{ARD}.staged.tif").stat().st_size == 5_000_000
    name = claim(tmp_path / f"{ARD}.tif")
    assert name.dest == tmp_path / f"{ARD}.tif"
    assert name.staged.stat().st_size == 0
    name.release()
    assert leftovers(tmp_path) == []


def test_a_live_writer_keeps_its_name_and_one_that_exited_gives_it_up(tmp_path: Path) -> None:
    """Another process holds the claim while this one claims: this one gets `-2`. Once
    it exited without releasing (an unhandled error in a foreign caller), it is no
    writer any more: its name is free."""
    code = (f"from pathlib import Path\nfrom eominer.workspace import claim\n"
            f"name = claim(Path({str(tmp_path / f'{ARD}.tif')!r}))\n"
            f"print('held', flush=True)\ninput()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    busy = claim(tmp_path / f"{ARD}.tif")
    assert busy.dest.name == f"{ARD}-2.tif"
    holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    name = claim(tmp_path / f"{ARD}.tif")
    assert name.dest.name == f"{ARD}.tif"


def test_a_committed_name_is_never_taken_and_its_database_settles_it(tmp_path: Path) -> None:
    """Killed between the row's commit and the rename: the row names the file, so another
    claimant moves on to `-2`; the database's re-run (`settle`) moves the staged file
    into place and drops the claim."""
    body = "name.staged.write_bytes(b'cog of the committed row')\nname.committing()"
    assert in_another_process(tmp_path, body, "kill").returncode == -9
    other = claim(tmp_path / f"{ARD}.tif")
    assert other.dest.name == f"{ARD}-2.tif"
    other.release()
    dest = tmp_path / f"{ARD}.tif"
    assert settle(dest)
    assert dest.read_bytes() == b"cog of the committed row"
    assert leftovers(tmp_path) == [f"{ARD}.tif"]
    assert not settle(dest)  # in place: nothing to do


def test_a_live_writer_is_not_settled(tmp_path: Path) -> None:
    name = claim(tmp_path / f"{ARD}.tif")
    name.staged.write_bytes(b"half a cog")
    name.committing()
    assert not settle(name.dest)  # its writer is at work: between commit and rename
    assert name.staged.read_bytes() == b"half a cog" and not name.dest.exists()
    name.staged.replace(name.dest)
    name.release()
    assert leftovers(tmp_path) == [f"{ARD}.tif"]


def test_a_claim_released_twice_or_kept_then_released_is_harmless(tmp_path: Path) -> None:
    name = claim(tmp_path / f"{ARD}.tif")
    name.keep()
    name.release()  # kept: the claim stays for the re-run
    assert staged(name.dest).exists()
    again = claim(tmp_path / f"{ARD}.tif")  # not committing, its holder let go: free
    assert again.dest == name.dest
    again.release()
    again.release()
    assert leftovers(tmp_path) == []


def binary_of(p: Path) -> list[Path]:
    return [p.with_name(f"{p.stem}_binary{p.suffix}")]


def test_maps_in_place_of_a_writer_killed_before_its_row_are_removed_with_its_claim(
        tmp_path: Path) -> None:
    """A change run writes its maps in place, then its row. SIGKILL between the two: no
    row names the maps (the row comes after the `committing` mark), so the next claimant
    removes them, the binary map with them, and takes the name instead of `-2`."""
    body = ("name.dest.write_bytes(b'probability')\n"
            "name.dest.with_name(name.dest.stem + '_binary.tif').write_bytes(b'binary')")
    assert in_another_process(tmp_path, body, "kill").returncode == -9
    assert (tmp_path / f"{ARD}_binary.tif").exists()
    name = claim(tmp_path / f"{ARD}.tif", also=binary_of)
    assert name.dest == tmp_path / f"{ARD}.tif"
    assert leftovers(tmp_path) == [f".{ARD}.staged.tif", f".{ARD}.staged.tif.lock"]
    name.release()
    assert leftovers(tmp_path) == []


def test_maps_of_a_writer_killed_after_marking_stay_and_its_claim_goes(tmp_path: Path) -> None:
    """SIGKILL after the mark (its row may be committed): the maps stay, the next
    claimant moves on to `-2` and removes what the dead claim left beside them."""
    body = ("name.dest.write_bytes(b'probability')\n"
            "name.dest.with_name(name.dest.stem + '_binary.tif').write_bytes(b'binary')\n"
            "from eominer.workspace import mark_committing\nmark_committing(name.dest)")
    assert in_another_process(tmp_path, body, "kill").returncode == -9
    name = claim(tmp_path / f"{ARD}.tif", also=binary_of)
    assert name.dest.name == f"{ARD}-2.tif"
    name.release()
    assert leftovers(tmp_path) == [f"{ARD}.tif", f"{ARD}_binary.tif"]
    assert (tmp_path / f"{ARD}.tif").read_bytes() == b"probability"


def test_a_live_writers_maps_in_place_are_not_touched(tmp_path: Path) -> None:
    dest = tmp_path / f"{ARD}.tif"
    first = claim(dest, also=binary_of)
    dest.write_bytes(b"probability")
    second = claim(dest, also=binary_of)
    assert second.dest.name == f"{ARD}-2.tif" and dest.read_bytes() == b"probability"
    first.release()
    second.release()
    assert claim(dest).dest.name == f"{ARD}-2.tif"  # in place, no claim: taken
    assert not (tmp_path / f".{ARD}.staged.tif.lock").exists()  # and no lock made for it


def test_a_jobs_command_is_kept_without_its_database_url_and_progress_log():
    """A MonetDB URL may hold a password; the app's progress log is its own file."""
    from eominer.workspace import command, set_command

    try:
        set_command(["extract", "--features", "spectral,gabor", "--db",
                     "monetdb://ana:secret@db:50000/eo", "--progress-log", "/tmp/p.jsonl",
                     "--products=A B", "--db=duckdb:///x.duckdb"])
        assert command() == "eominer extract --features spectral,gabor '--products=A B'"
    finally:
        set_command(())
    assert command() is None
