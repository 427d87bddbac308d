"""Sweep engine speed (issue 11): scheduling overhead per job, and parallel speed-up of toy jobs.

1. Overhead: N no-op `selftest` jobs on LocalCluster(2), timed from submission
   to the last result written (cluster start excluded):
   (wall − Σ job wall times / workers) / N. Target ≤ 50 ms per job. Also the
   CPU time per job of the sweep process (client, in-process scheduler, store
   writes) and of the workers: what the overhead costs on an idle machine.
2. Speed-up: the toy all-pairs path finder over S seeds, run serially in a
   fresh process (`workers=0`) pinned to one core, as each worker is, and
   again with XLA's default threads (a toy job then uses ~1.75 cores), and on
   LocalCluster(2); every run timed as a whole: the serial process from its
   start (Python, JAX and symland imports included) to its end, the cluster
   run from the cluster's start (its workers' imports included) to the last
   result; each process compiles once. Target ≥ 1.7× the one-core serial
   run; the ratio to the default-threads run is printed too.

Run:  PYTHONPATH=src python benchmarks/bench_sweep.py [--jobs 200] [--seeds 20] [--steps 50]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

for key, value in {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
                   "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}.items():
    os.environ.setdefault(key, value)  # the serial baseline gets the workers' one-thread settings


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} cores"


def overhead(n_jobs: int) -> dict:
    from symland.sweep import ResultStore, SweepSpec
    from symland.sweep import _engine

    spec = SweepSpec("selftest", grid={"x": list(range(n_jobs))}, fixed={})
    with tempfile.TemporaryDirectory() as out:
        store = ResultStore(out).open("selftest")
        cluster = _engine.local_cluster(2)
        try:
            from distributed import Client

            client = Client(cluster)  # warm the workers (imports) before timing
            client.submit(_engine.execute_job, "selftest", spec.jobs()[0].config, pure=False).result()
            cpu_workers = sum(client.run(time.process_time).values())
            t0, c0 = time.perf_counter(), time.process_time()
            done, failed = _engine._run_jobs(store, spec.jobs(), scheduler=cluster.scheduler_address,
                                             workers=2, progress=False, timeout=60)
            wall, cpu_driver = time.perf_counter() - t0, time.process_time() - c0
            cpu_workers = sum(client.run(time.process_time).values()) - cpu_workers
            client.close()
        finally:
            cluster.close()
        work = sum(r["wall_time"] for r in store.records())
    return {"jobs": n_jobs, "done": done, "failed": failed, "wall_s": wall, "work_s": work,
            "overhead_ms_per_job": 1e3 * (wall - work / 2) / n_jobs,
            "driver_cpu_ms_per_job": 1e3 * cpu_driver / n_jobs, "worker_cpu_ms_per_job": 1e3 * cpu_workers / n_jobs}


def serial_run(n_seeds: int, steps: int, out: str, pin: bool) -> float:
    """The toy jobs one after another in this process (`workers=0`); wall seconds."""
    if pin:  # before JAX starts: XLA's thread pool then runs on one core
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from symland.sweep import run_sweep

    t0 = time.perf_counter()
    res = run_sweep(toy_spec(n_seeds, steps), out, workers=0, progress=False)
    assert res.failed == 0, res
    return time.perf_counter() - t0


def toy_spec(n_seeds: int, steps: int):
    from symland.sweep import SweepSpec

    return SweepSpec("toy", grid={"seed": list(range(1, n_seeds + 1))},
                     fixed={"pair": "all", "activation": "softplus", "steps": steps})


def timeline(out: str, epoch) -> str:
    """Where a run's time went, from its job records: per process, jobs, first job, the rest, last end."""
    import numpy as np

    from symland.sweep import ResultStore

    by_pid = {}
    for r in ResultStore(out).open("toy").records():
        by_pid.setdefault(r["pid"], []).append(r)
    parts = []
    for pid, recs in sorted(by_pid.items()):
        recs.sort(key=lambda r: r["started"])
        walls = [r["wall_time"] for r in recs]
        text = (f"{len(recs)} jobs, first {walls[0]:.1f} s, the others {sum(walls[1:]):.1f} s "
                f"(median {np.median(walls[1:]):.1f} s)")
        if epoch is not None:
            text += (f", first started at {recs[0]['started'] - epoch:.1f} s, "
                     f"last ended at {recs[-1]['started'] + walls[-1] - epoch:.1f} s")
        parts.append(text)
    return "; ".join(parts)


def speedup(n_seeds: int, steps: int) -> dict:
    """Serial on one core, serial with XLA's default threads (both in fresh processes), LocalCluster(2)."""
    import subprocess
    import sys

    from symland.sweep import run_sweep

    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, pin in (("serial_one_core_s", True), ("serial_default_threads_s", False)):
            cmd = [sys.executable, __file__, "--serial-into", os.path.join(tmp, label), "--seeds", str(n_seeds),
                   "--steps", str(steps)] + (["--pin"] if pin else [])
            t0 = time.perf_counter()  # the whole process, imports included, as the cluster's start is
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            times[label] = time.perf_counter() - t0
            print(f"  {label}: {times[label]:.1f}", flush=True)
        times["load_between"] = load()
        t0, epoch = time.perf_counter(), time.time()
        parallel = run_sweep(toy_spec(n_seeds, steps), os.path.join(tmp, "dask"), workers=2, progress=False)
        times["local_cluster_2_s"] = time.perf_counter() - t0
        times["timeline"] = timeline(os.path.join(tmp, "dask"), epoch)
        times["serial_jobs"] = timeline(os.path.join(tmp, "serial_one_core_s"), None)
    assert parallel.failed == 0, parallel
    return {"seeds": n_seeds, "steps": steps, **times,
            "speedup": times["serial_one_core_s"] / times["local_cluster_2_s"],
            "speedup_default": times["serial_default_threads_s"] / times["local_cluster_2_s"]}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--skip-speedup", action="store_true")
    p.add_argument("--serial-into", help=argparse.SUPPRESS)  # internal: one serial baseline in a fresh process
    p.add_argument("--pin", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serial_into:
        print(serial_run(args.seeds, args.steps, args.serial_into, args.pin))
        raise SystemExit(0)
    print(f"start: {load()}")
    o = overhead(args.jobs)
    print(f"overhead: {o['jobs']} no-op selftest jobs on LocalCluster(2): wall {o['wall_s']:.2f} s, "
          f"job work {o['work_s']:.3f} s → {o['overhead_ms_per_job']:.1f} ms per job (target ≤ 50); "
          f"CPU per job: driver+scheduler {o['driver_cpu_ms_per_job']:.1f} ms, "
          f"workers {o['worker_cpu_ms_per_job']:.1f} ms (both workers together)")
    if not args.skip_speedup:
        s = speedup(args.seeds, args.steps)
        print(f"speed-up: toy all pairs, {s['seeds']} seeds, {s['steps']} steps: serial on one core "
              f"{s['serial_one_core_s']:.1f} s, serial with XLA's default threads {s['serial_default_threads_s']:.1f} s, "
              f"LocalCluster(2) {s['local_cluster_2_s']:.1f} s → {s['speedup']:.2f}× the one-core run "
              f"(target ≥ 1.7), {s['speedup_default']:.2f}× the default-threads run; {s['load_between']}")
        print(f"  serial one core: {s['serial_jobs']}")
        print(f"  LocalCluster(2), per worker: {s['timeline']}")
    print(f"end: {load()}")
