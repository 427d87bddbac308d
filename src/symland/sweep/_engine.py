"""Running a sweep on Dask distributed: embedded `LocalCluster` or an existing scheduler.

The process that calls `run_sweep` expands the spec, skips the jobs already
complete in the store, submits the rest as independent Dask tasks and writes
each result as it arrives (`ResultStore.write`, atomic). Workers run
`execute_job`, which imports the experiment (and JAX, with x64) inside the
worker and never raises: an exception becomes a `failed` record with its
traceback. A worker that dies mid-job makes Dask retry the job elsewhere
(`distributed.scheduler.allowed-failures` times); after that the job is
recorded `failed` with the `KilledWorker` error, and the other jobs go on.

Worker processes are started with the 'spawn' method (never forked from a
process in which JAX may be initialised), one thread each, and environment
variables that keep OpenMP and BLAS to one thread per process
(`WORKER_ENV`). XLA's CPU runtime does not honour a thread-count flag (a
toy job measured 1.75 cores of CPU time per second of wall time with
`--xla_cpu_multi_thread_eigen=false`), so each worker of the embedded
cluster is also pinned to one core of its own (`PinCore`, Linux), before its
first job initialises JAX: N workers use N cores and never oversubscribe.
Workers of an existing cluster (`--scheduler`) are left as their owner
started them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
import traceback
import uuid
from pathlib import Path

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from ._experiments import get_experiment
from ._spec import SweepSpec
from ._store import FAILED, ResultStore

# One thread per worker process for XLA (CPU), OpenMP and BLAS.
WORKER_ENV = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
}

SUMMARY_EVERY_S = 30.0
SATURATION = float(os.environ.get("SYMLAND_SWEEP_SATURATION", "2.0"))  # rewrite summary.csv at most this often while a sweep runs


def worker_env() -> dict:
    """`WORKER_ENV`, with flags the user already set in `XLA_FLAGS` kept."""
    env = dict(WORKER_ENV)
    user = os.environ.get("XLA_FLAGS", "")
    if user:
        env["XLA_FLAGS"] = f"{user} {env['XLA_FLAGS']}"
    return env


def _jsonable(value, name):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"scalars[{name!r}]: {type(value).__name__} is not a JSON scalar")


def execute_job(experiment: str, config: dict) -> dict:
    """Run one job in this process and return its record (never raises).

    **Returns:** dict with `experiment`, `config`, `status` (a `RESULTS`
    name; `failed` when the job raised), `scalars`, `arrays`, `wall_time`,
    `started`, `host`, `pid`, and for a failure `error` (one line) and `traceback`.
    """
    record = {"experiment": experiment, "config": config, "host": socket.gethostname(), "pid": os.getpid(),
              "started": time.time(), "scalars": {}, "arrays": {}, "error": None, "traceback": None}
    t0 = time.perf_counter()
    try:
        from symland._results import RESULT_NAMES  # importing symland switches x64 on

        scalars, arrays = get_experiment(experiment).job(dict(config))
        scalars = {str(k): _jsonable(v, k) for k, v in dict(scalars).items()}
        arrays = {str(k): np.asarray(v) for k, v in dict(arrays).items()}
        status = scalars.pop("status", "converged")
        if status not in RESULT_NAMES or status == FAILED:
            raise ValueError(f"status: the job returned {status!r}, not a RESULTS name")
        record.update(status=status, scalars=scalars, arrays=arrays)
    except Exception as err:  # noqa: BLE001 - a job's failure is data, recorded with its traceback
        record.update(status=FAILED, error=f"{type(err).__name__}: {err}".splitlines()[0],
                      traceback=traceback.format_exc())
    record["wall_time"] = time.perf_counter() - t0
    return record


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What a sweep did: `total` jobs in the spec, `skipped` (already complete), `done`, `failed`."""

    out: Path
    total: int
    skipped: int
    done: int
    failed: int
    summary: Path

    @property
    def ok(self) -> bool:
        return self.failed == 0


def local_cluster(n_workers: int):
    """An embedded `LocalCluster`: `n_workers` spawned processes, one thread each, on 127.0.0.1."""
    import dask
    from distributed import LocalCluster

    dask.config.set({"distributed.worker.multiprocessing-method": "spawn",
                     # queue up to 2 tasks per worker thread, hiding the scheduler round trip between jobs
                     "distributed.scheduler.worker-saturation": SATURATION,
                     # the statistical profiler samples every worker's stack each 10 ms for a dashboard
                     # that this cluster does not start; off, it costs the jobs nothing
                     "distributed.worker.profile.enabled": False})
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None, env=worker_env(), silence_logs=logging.ERROR)


class PinCore(WorkerPlugin):
    """Dask worker plugin: pin the worker process to core `name mod n_cores` of the allowed ones.

    Runs on every worker of the embedded cluster when it starts (and when a
    killed worker is restarted), before any job imports JAX, so that XLA's
    thread pool runs on one core. No-op where `os.sched_setaffinity` does not exist.
    """

    name = "symland-pin-core"

    def __init__(self, cores):
        self.cores = sorted(cores)

    def setup(self, worker):
        if not hasattr(os, "sched_setaffinity") or not self.cores:
            return
        try:
            index = int(worker.name)
        except (TypeError, ValueError):
            index = sum(map(ord, str(worker.name)))
        os.sched_setaffinity(0, {self.cores[index % len(self.cores)]})


def allowed_cores() -> list[int]:
    """The cores this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def check_scheduler(address) -> str:
    """`tcp://HOST:PORT` (or `HOST:PORT`); `ValueError` naming `--scheduler` otherwise."""
    text = str(address).strip()
    bare = text.removeprefix("tcp://")
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"scheduler: expected tcp://HOST:PORT, got {address!r}")
    return f"tcp://{bare}"


def run_sweep(spec: SweepSpec, out=None, *, scheduler: str | None = None, workers: int | None = None,
              progress: bool = True, timeout: float = 60.0) -> SweepResult:
    """Run every job of `spec` not already complete in the store `out` (Dask distributed).

    **Arguments:**
    - `spec`: a `SweepSpec` (`load_spec`); `out`: the store folder (default `spec.out`).
    - `scheduler`: address `tcp://HOST:PORT` of a running Dask scheduler; None
      starts an embedded `LocalCluster` with `workers` processes (default: one
      per core). `workers=0` runs the jobs one after another in this process,
      without Dask (for debugging, and the serial baseline of the benchmark).
    - `progress`: show a progress bar (done, failed, running, ETA).
    - `timeout`: seconds to wait for the scheduler to answer.

    **Returns:** a `SweepResult`; `summary.csv` in `out` lists every job in the store.

    Example:
    >>> import tempfile
    >>> from symland.sweep import SweepSpec, run_sweep
    >>> spec = SweepSpec("selftest", grid={"x": [1, 2]}, fixed={})
    >>> run_sweep(spec, tempfile.mkdtemp(), workers=0, progress=False).done
    2
    """
    out = out if out is not None else spec.out
    if out is None:
        raise ValueError("out: give --out or out = \"...\" in the spec")
    if scheduler is not None:
        scheduler = check_scheduler(scheduler)
        if workers is not None:
            raise ValueError("workers: only for the embedded LocalCluster, not with --scheduler")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValueError(f"workers: must be an integer ≥ 0, got {workers!r}")
    jobs = spec.jobs()
    store = ResultStore(out).open(spec.experiment, spec.to_dict())
    todo = [j for j in jobs if not store.is_complete(j.hash)]
    done = failed = 0
    if todo and workers == 0:
        done, failed = _run_serial(store, todo, progress=progress)
    elif todo:
        done, failed = _run_jobs(store, todo, scheduler=scheduler, workers=workers or os.cpu_count() or 1,
                                 progress=progress, timeout=timeout)
    summary = store.write_summary()
    return SweepResult(store.out, len(jobs), len(jobs) - len(todo), done, failed, summary)


def _store_record(store, job, record) -> bool:
    """Write one job's record; True when it completed (status not `failed`)."""
    arrays = record.pop("arrays", None)
    record.update(hash=job.hash, experiment=job.experiment,
                  version=get_experiment(job.experiment).version, config=job.config)
    store.write(record, arrays)
    return record["status"] != FAILED


def _run_serial(store, todo, *, progress):
    from tqdm.auto import tqdm

    done = failed = 0
    bar = tqdm(todo, desc=f"sweep {todo[0].experiment} (serial)", unit="job", disable=not progress)
    for job in bar:
        if _store_record(store, job, execute_job(job.experiment, job.config)):
            done += 1
        else:
            failed += 1
        bar.set_postfix(done=done, failed=failed)
    return done, failed


def _run_jobs(store, todo, *, scheduler, workers, progress, timeout):
    from distributed import Client, as_completed
    from tqdm.auto import tqdm

    cluster = None if scheduler is not None else local_cluster(min(workers, len(todo)))
    client = Client(scheduler if cluster is None else cluster, timeout=timeout, set_as_default=False)
    if cluster is not None:
        client.register_plugin(PinCore(allowed_cores()))
    done = failed = 0
    bar = tqdm(total=len(todo), desc=f"sweep {todo[0].experiment}", unit="job", disable=not progress,
               smoothing=0.1)
    try:
        tag = uuid.uuid4().hex[:8]
        futures = {}
        for job in todo:
            fut = client.submit(execute_job, job.experiment, job.config, key=f"{job.experiment}-{job.hash[:16]}-{tag}",
                                pure=False)
            futures[fut] = job
        last_summary = time.monotonic()
        pending = len(todo)
        threads, threads_at = _threads(client), time.monotonic()
        bar.set_postfix(done=0, failed=0, running=min(pending, threads))
        for fut in as_completed(list(futures), loop=client.loop):
            job = futures.pop(fut)
            completed = _store_record(store, job, _outcome(fut, job))
            fut.release()
            pending -= 1
            if completed:
                done += 1
            else:
                failed += 1
            bar.update(1)
            if time.monotonic() - threads_at > 2.0:  # workers may come and go
                threads, threads_at = _threads(client), time.monotonic()
            bar.set_postfix(done=done, failed=failed, running=min(pending, threads))
            if time.monotonic() - last_summary > SUMMARY_EVERY_S:
                store.write_summary()
                last_summary = time.monotonic()
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return done, failed


def _threads(client) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - only for the progress bar
        return 1


def _outcome(fut, job) -> dict:
    """The record a finished future carries, or a `failed` record for a task Dask gave up on."""
    try:
        return fut.result()
    except Exception as err:  # noqa: BLE001 - KilledWorker, CancelledError, a lost scheduler
        return {"status": FAILED, "scalars": {}, "arrays": {}, "wall_time": 0.0, "started": None,
                "host": None, "pid": None, "error": f"{type(err).__name__}: {err}".splitlines()[0],
                "traceback": "".join(traceback.format_exception(err))}
