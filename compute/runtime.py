"""The one place eominer starts or joins Ray.

    from compute.runtime import ray_session
    with ray_session(num_cpus=2) as ray:          # a fresh local Ray on this machine
        ...
    with ray_session(address="10.0.0.5:6379"):    # an existing cluster
        ...

Library code never calls `ray.init` itself: batch jobs (extract, change, fusion) take
a `ray_session`. Every worker process runs with one BLAS / OpenMP / TensorFlow thread
(`WORKER_ENV`): on our 2-core machines two single-threaded processes beat one process
with two threads, and Ray schedules one task per CPU anyway. Each task or actor applies
that itself (`limit_worker_threads`, its first line) rather than through a Ray
`runtime_env`: a runtime_env starts Ray's runtime-environment agent for every worker,
~2 s of a 12 s job on our machines. A local session is shut down on exit; a session that
joined an already-initialised Ray leaves it running.

A local start is tried up to `LOCAL_START_ATTEMPTS` times: Ray gives its raylet 30 s to
register with the GCS, and a busy 2-core machine can miss that window (it happened in
CI). A failed try's half-started processes are killed before the next one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from eominer.errors import ConfigError, EominerError, JobError, require

if TYPE_CHECKING:
    from types import ModuleType

    import psutil

logger = logging.getLogger(__name__)

LOCAL_START_ATTEMPTS = 3

WORKER_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "GDAL_NUM_THREADS": "1",
}


# Ray binds its servers to every interface and talks to the machine's network address,
# even for a cluster of one machine; with this set before Ray is imported, a local Ray
# stays on 127.0.0.1. A process that joins a real cluster must not set it.
LOCAL_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def import_ray(local: bool = False) -> ModuleType:
    """Ray, or MissingExtraError naming the `ray` extra. `local`: this process will start
    a local Ray (no cluster address), so keep it on loopback."""
    if local and "ray" not in sys.modules:
        for k, v in LOCAL_RAY_ENV.items():
            os.environ.setdefault(k, v)
    return require("ray", "ray", "batch jobs (eominer extract)")


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None,
                **init_kwargs: Any) -> Iterator[Any]:
    """Start a local Ray (default: `num_cpus` or all cores) or join `address`.

    `address` is "host:port" (GCS) or "ray://host:10001" (Ray Client); "auto" joins a
    cluster started on this machine with `ray start`. Yields the `ray` module.
    """
    ray = import_ray(local=not address)
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False, "log_to_driver": False,
        "configure_logging": True, "logging_level": "ERROR", "namespace": "eominer",
    }
    if address:
        if num_cpus is not None:
            raise ConfigError("--num-cpus applies to a local Ray only; a cluster has its own")
        kwargs["address"] = address
    else:
        # "local" always starts a fresh Ray, never a stray cluster left on this machine
        kwargs.update(address="local", num_cpus=num_cpus or os.cpu_count() or 1)
    kwargs.update(init_kwargs)
    # ray.init puts its own SIGTERM handler in (sys.exit): the CLI's, which stops a job
    # as a Ctrl-C does (commit what finished), comes back after it
    term = signal.getsignal(signal.SIGTERM) \
        if threading.current_thread() is threading.main_thread() else None
    if address:
        _check_reachable(address)
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            _close_failed_client_channel(exc)
            # a failed Ray Client connect leaves client mode switched on in this process,
            # and every later local ray.init would then fail: shutdown switches it off
            ray.shutdown()
            raise ConfigError(f"cannot reach a Ray cluster at {address}: {exc}") from exc
    else:
        _start_local(ray, kwargs)
    if callable(term):
        signal.signal(signal.SIGTERM, term)
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Refuse a cluster address where nothing listens before Ray is asked to connect: a
    Ray Client connect that fails leaks a gRPC channel (below), and takes ~30 s to say so."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r}: expected host:port, "
                          "ray://host:10001 or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach a Ray cluster at {address}: {exc}; check that the "
                          "cluster runs and that this address and port are open to you"
                          ) from exc


def _close_failed_client_channel(exc: BaseException) -> None:
    """Close the gRPC channel of a Ray Client connect that failed.

    Ray's client `Worker` opens its channel and subscribes to its state before it
    connects; when no cluster answers it raises out of `Worker.__init__`, so nothing
    holds the half-made worker and `ray.shutdown` cannot close it. The subscription keeps
    a daemon thread (grpc's `_poll_connectivity`) calling into gRPC's C core for the rest
    of the process's life: it races gRPC's and Ray's native teardown at interpreter exit,
    and makes gRPC skip its fork handlers when the process starts a subprocess. The
    worker is still reachable from the traceback's frames: close its channel there.
    """
    tb = exc.__traceback__
    while tb is not None:
        worker = tb.tb_frame.f_locals.get("self")
        tb = tb.tb_next
        # the type first: other frames' `self` (Ray's client API) raise on any attribute
        if type(worker).__module__ != "ray.util.client.worker":
            continue
        channel = getattr(worker, "channel", None)
        if channel is None:
            continue
        with contextlib.suppress(Exception):
            channel.unsubscribe(worker._on_channel_state_change)
        with contextlib.suppress(Exception):
            channel.close()  # also drops every other subscription: the thread ends
        worker.channel = None


_threads_limited = False


def limit_worker_threads() -> None:
    """One BLAS / OpenMP / TensorFlow / GDAL thread in this Ray worker process: the first
    line of every task and actor of eominer's jobs (never called in the driver, whose
    environment stays the user's). Idempotent: a worker runs many tasks."""
    global _threads_limited
    if _threads_limited:
        return
    # read by what loads from now on: TensorFlow at its first use, GDAL per call,
    # OpenMP runtimes at load
    os.environ.update(WORKER_ENV)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # pools already loaded in this process (numpy's OpenBLAS)
    _threads_limited = True


RELEASE_ABOVE_BYTES = 1 << 30  # resident size above which a worker trims its heap


def release_memory(above: int = RELEASE_ABOVE_BYTES) -> None:
    """Hand the C heap's free pages back to the system (glibc's `malloc_trim`; nothing
    where there is none) when this process holds more than `above` bytes: after each
    task of a worker. glibc keeps freed blocks below its mmap threshold (which rises to
    32 MB as large arrays are freed, so a 16 MB numpy block lands on the heap) for
    reuse, and a worker that ran a dozen S1 ingest parts held them all: worker peak
    3.5-3.9 GB for a full-size product against 1.6-1.9 GB with it (docs/sentinel1.md).
    Below the bound nothing is done: pages handed back are faulted in again by the next
    task (a full S2 tile's workers stay under 0.7 GB and keep their heap)."""
    import ctypes

    try:
        with open("/proc/self/statm") as f:
            resident = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return  # not Linux: no glibc either
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if resident > above and trim is not None:
        trim(0)


def _start_local(ray: ModuleType, kwargs: dict[str, Any]) -> None:
    """`ray.init` a local Ray, retrying a start-up that timed out (see module doc)."""
    import psutil  # Ray ships it (ray/thirdparty_files) and puts it on sys.path

    me = psutil.Process()
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        before = {p.pid for p in me.children(recursive=True)}
        try:
            ray.init(**kwargs)
            return
        except Exception as exc:
            if not _is_start_timeout(exc):
                raise
            ray.shutdown()
            _kill_new_children(me, before)
            if attempt == LOCAL_START_ATTEMPTS:
                raise JobError(
                    f"a local Ray did not start in {attempt} tries ({exc}). The machine may "
                    "be too busy for Ray's 30 s start-up window: stop other heavy work, or "
                    "pass --num-cpus lower, and re-run (finished work is kept); or run the "
                    "job in this process (--workers 0 of ingest, extract, apply, index "
                    "build, change --pairs and timeseries). Ray's logs: "
                    "/tmp/ray/session_latest/logs"
                    ) from exc
            logger.warning("local Ray start %d of %d timed out (%s); retrying",
                           attempt, LOCAL_START_ATTEMPTS, exc)


def _is_start_timeout(exc: BaseException) -> bool:
    # Ray raises a bare Exception ("The current node timed out during startup") or a
    # TimeoutError (the GCS port file never appeared); anything else is not transient
    return isinstance(exc, TimeoutError) or "timed out" in str(exc).lower()


def _kill_new_children(me: psutil.Process, before: set[int]) -> None:
    """Kill this process's descendants that a failed start left (GCS, raylet, workers),
    and reap them: their Popen objects died with the failed start, so no one else will."""
    import psutil

    left = [c for c in me.children(recursive=True) if c.pid not in before]
    for child in left:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(left, timeout=5)


def cluster_cpus(ray: ModuleType) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def gpus_in_cluster(ray: ModuleType) -> int:
    """GPUs of the nodes up now."""
    return int(ray.cluster_resources().get("GPU", 0))


def gpus_for_models(ray: ModuleType) -> int:
    """GPUs a model task (encoder, fusion network) should ask for: 1 if the cluster has
    a GPU now, or can start one (`EOMINER_GPU_NODES=1`, set on the head of an
    autoscaling cluster whose GPU nodes are all down: the request makes the autoscaler
    boot one); else 0, so a laptop without a GPU never waits for one."""
    flag = os.environ.get("EOMINER_GPU_NODES", "").strip().lower()
    if flag not in ("", "0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"EOMINER_GPU_NODES must be 1 or 0, got {flag!r}")
    return 1 if gpus_in_cluster(ray) >= 1 or flag in ("1", "true", "yes") else 0


def task_error_text(exc: BaseException) -> str:
    """One line for a task's error (Ray's, whose `cause` is the task's own, or one raised
    in this process): our own errors by class and message (they say what to fix),
    anything else by the last line of its text (Ray's: the traceback)."""
    if not type(exc).__module__.startswith("ray."):  # raised in this process
        return f"{type(exc).__name__}: {exc}"
    cause = getattr(exc, "cause", None)
    if isinstance(cause, EominerError):
        return f"{type(cause).__name__}: {cause}"
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def worker_name() -> str:
    """"host:pid" of this process, as the `jobs` table records a task's worker."""
    return f"{socket.gethostname()}:{os.getpid()}"
