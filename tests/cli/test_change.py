"""`eominer change` through click, on real OSCD data."""

from __future__ import annotations

from click.testing import CliRunner

from eominer.cli import cli


def test_change_command_on_paths(oscd, workspace, tmp_path) -> None:
    base = oscd / "images" / "paris"
    out = tmp_path / "paris.tif"
    r = CliRunner().invoke(cli, ["change", str(base / "imgs_1"), str(base / "imgs_2"),
                                 "--method", "cva", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "cva  changed" in r.output and str(out) in r.output
    assert out.exists() and (tmp_path / "paris_binary.tif").exists()


def test_change_command_needs_two_dates(workspace) -> None:
    r = CliRunner().invoke(cli, ["change", "only_one"])
    assert r.exit_code != 0
    assert "give BEFORE and AFTER, --pairs FILE or --consecutive" in r.output
    r = CliRunner().invoke(cli, ["change", "--consecutive", "--pairs", __file__])
    assert r.exit_code == 2 and "give --pairs FILE or --consecutive, not both" in r.output


def test_workers_go_with_a_pairs_file(workspace) -> None:
    r = CliRunner().invoke(cli, ["change", "a", "b", "--workers", "0"])
    assert r.exit_code == 2
    assert ("--workers goes with --pairs FILE or --consecutive (one pair runs in this "
            "process)") in r.output


def test_method_choices_agree_with_the_library() -> None:
    from eominer.change.maps import ALL_METHODS, S1_METHODS
    from eominer.cli import change as cli_change

    assert cli_change.ALL_METHODS == ALL_METHODS and cli_change.S1_METHODS == S1_METHODS


def test_change_command_on_a_sentinel1_pair(ben, workspace, tmp_path) -> None:
    """Two S1 products as BigEarthNet folders: date 2 is date 1 with a PLANTED change
    (a 40 x 40 px block of a second real patch), written to disk; the default S1 method
    (rom, Kittler-Illingworth + CFAR threshold) maps it."""
    import rasterio

    (first,) = (ben / "s1-tiny").glob("*_33UUP_61_41")
    (other,) = (ben / "s1-tiny").glob("*_33UUP_61_40")
    second = tmp_path / "date2" / first.name
    second.mkdir(parents=True)
    for tif in first.glob("*.tif"):
        pol = tif.name.rsplit("_", 1)[1]
        with rasterio.open(tif) as ds, rasterio.open(next(other.glob(f"*_{pol}"))) as src:
            data, profile = ds.read(1), ds.profile
            data[20:60, 30:70] = src.read(1)[0:40, 0:40]
        with rasterio.open(second / tif.name, "w", **profile) as out:
            out.write(data, 1)
    out = tmp_path / "s1.tif"
    r = CliRunner().invoke(cli, ["change", str(first), str(second), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert " rom  changed " in r.output and "ki-gg+cfar" in r.output
    with rasterio.open(tmp_path / "s1_binary.tif") as ds:
        b = ds.read(1)
    assert b[20:60, 30:70].mean() > 0.8 and b[70:].mean() < 0.01
    r = CliRunner().invoke(cli, ["change", str(first), str(second), "--method", "cva"])
    assert r.exit_code != 0  # the library's error (main() prints it as one line)
    assert "'cva' compares Sentinel-2 bands, but the pair is S1" in str(r.exception)


def test_change_command_refuses_a_mixed_pair(ben, workspace) -> None:
    (s1,) = (ben / "s1-tiny").glob("*_36_85")
    (s2,) = (ben / "s2-tiny").glob("*_36_85")
    r = CliRunner().invoke(cli, ["change", str(s2), str(s1), "--method", "cva"])
    assert r.exit_code != 0
    assert "is S2 but" in str(r.exception)
    assert "--fuse S1_BEFORE S1_AFTER" in str(r.exception)


def test_one_product_twice_or_an_unwritable_out_is_refused_before_any_work(
        oscd, workspace, tmp_path, capsys) -> None:
    """The same product as both dates (a path twice, an id twice, a --pairs line) was
    computed for minutes into a map of "no change"; an --out that cannot be written was
    found only once the map was computed, as a traceback. Both are refused up front."""
    import pytest

    from eominer.cli import main
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    base = oscd / "images" / "paris"
    with open_store(None) as store:
        (pid,) = [r.product_id for r in ingest_paths(store, [base / "imgs_1"], levels=(64,))]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{base / 'imgs_1'} {base / 'imgs_2'}\n{pid} {pid}\n")
    for args in (["change", str(base / "imgs_1"), f"{base}/./imgs_1/", "--method", "cva"],
                 ["change", pid, pid, "--method", "cva"],
                 ["change", "--pairs", str(pairs), "--method", "cva", "--num-cpus", "1"]):
        with pytest.raises(SystemExit) as stop:
            main(args)
        err = capsys.readouterr().err
        assert stop.value.code == 1, err
        assert "BEFORE and AFTER are the same product" in err and "two dates" in err
    with pytest.raises(SystemExit) as stop:
        main(["change", str(base / "imgs_1"), str(base / "imgs_2"), "--method", "cva",
              "--out", "/proc/no/map.tif"])
    err = capsys.readouterr().err
    assert stop.value.code == 1
    assert "cannot write the map to /proc/no/map.tif: No such file or directory" in err
    assert "change map on" not in err and "Traceback" not in err  # nothing was computed
    with open_store(None) as store:
        assert store.pairs(kind="change").num_rows == 0
    assert not any((workspace / "layers").glob("*"))  # no layer file either


def test_a_pair_listed_twice_is_mapped_once_and_counted_done_at_both_places(
        oscd, workspace, tmp_path, capsys) -> None:
    """A --pairs file that lists one pair twice: the map is computed once, and both
    lines are done. The second line was left at None, so the command said "1 of 2 pair(s)
    done" and its features of both dates skipped it."""
    from eominer.cli import main
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    base = oscd / "images" / "bercy"
    with open_store(None) as store:
        a, b = (r.product_id for r in ingest_paths(
            store, [base / "imgs_1", base / "imgs_2"], levels=(64,)))
    main(["extract", "--features", "spectral", "--workers", "0"])
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{a} {b}\n{a} {b}\n")
    capsys.readouterr()
    main(["change", "--pairs", str(pairs), "--method", "cva", "--workers", "0",
          "--features", "spectral"])
    err = capsys.readouterr().err
    assert "2 of 2 pair(s) done (0 by an earlier run), 0 failed" in err, err
    with open_store(None) as store:
        assert store.pairs(kind="change").num_rows == 1
        dated = store.feature_sets("dates_spectral")[0]
        assert len(store.featured_patch_ids(dated.table_name, a, 64)) > 0
