"""Sweeps on Dask (issue 11): specs, the result store, and reliability with real processes.

The cluster tests start real processes on 127.0.0.1 only: the `symland sweep`
command (LocalCluster of 2 spawned workers), a `dask scheduler` with two
`dask worker` processes, a sweep killed with SIGKILL and resumed, and a worker
killed with SIGKILL mid-job. They run the cheap built-in `selftest` experiment;
the toy experiment on a LocalCluster is the slow test.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from symland.cli import main
from symland.sweep import FAILED, EXPERIMENTS, ResultStore, SweepSpec, job_hash, load_spec, parse_spec, run_sweep
from symland.sweep._experiments import _ACTIVATIONS, _FAMILIES, _INITS

SRC = str(Path(__file__).resolve().parents[1] / "src")
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def sweep_cli(*args, timeout=300):
    return subprocess.run([str(BIN / "symland"), "sweep", *map(str, args), "--no-progress"], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def summary(out, drop=("wall_time",)):
    with open(Path(out) / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def check_store_whole(out):
    """Every job folder has a parseable result.json (and arrays.npz when present); no temporaries."""
    jobs = Path(out) / "jobs"
    assert not [p for p in jobs.iterdir() if p.name.startswith(".")]
    hashes = []
    for d in jobs.iterdir():
        record = json.loads((d / "result.json").read_text())
        assert d.name == record["hash"][:16]
        hashes.append(record["hash"])
        if (d / "arrays.npz").exists():
            with np.load(d / "arrays.npz") as data:
                assert np.array_equal(data["range"], np.arange(record["config"]["x"]))
    assert len(hashes) == len(set(hashes))
    return hashes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- specs and hashes (no processes)


def test_spec_expands_grid_with_defaults_and_stable_hash(tmp_path):
    spec = load_spec(write(tmp_path, "s.toml", 'experiment = "selftest"\nout = "store"\n'
                                               '[fixed]\nsleep = 0\n[grid]\nx = [3, 1]\nfail = [false, true]\n'))
    jobs = spec.jobs()
    assert [(j.config["x"], j.config["fail"]) for j in jobs] == [(3, False), (3, True), (1, False), (1, True)]
    assert all(j.config == {"x": j.config["x"], "sleep": 0.0, "fail": j.config["fail"], "log": ""} for j in jobs)
    assert spec.out == tmp_path / "store"
    # The hash is the sha256 of the sorted JSON, whatever the key order; 0 and 0.0 are one value.
    config = jobs[0].config
    blob = json.dumps({"config": dict(reversed(list(config.items()))), "version": 1, "experiment": "selftest"},
                      sort_keys=True, separators=(",", ":"))
    assert jobs[0].hash == hashlib.sha256(blob.encode()).hexdigest()
    again = parse_spec({"experiment": "selftest", "grid": {"fail": [False], "x": [3]}, "fixed": {"sleep": 0.0}})
    assert again.jobs()[0].hash == jobs[0].hash
    assert job_hash(EXPERIMENTS["selftest"], {**config, "x": 4}) != jobs[0].hash


def test_registry_choices_match_the_library():
    import symland
    from symland.gaussian import SPURIOUS_FAMILIES

    assert set(_ACTIVATIONS) == set(symland.ACTIVATIONS)
    assert set(_FAMILIES) == set(SPURIOUS_FAMILIES)
    from symland._saddle import INITS

    assert set(_INITS) == set(INITS)
    from symland._newton_krylov import FIG3_HVP_BUDGET

    assert EXPERIMENTS["mnist"].resolve({})["max_hvps"] == FIG3_HVP_BUDGET
    from symland._newton_krylov import PATH_SOLVERS

    assert EXPERIMENTS["mnist"].axes["solver"].default == "trust-ncg"
    for solver in PATH_SOLVERS:
        assert EXPERIMENTS["mnist"].resolve({"solver": solver})["solver"] == solver
    with pytest.raises(ValueError, match="solver"):
        EXPERIMENTS["mnist"].resolve({"solver": "lbfgs"})
    from symland._data import INPUT_RTOL

    assert EXPERIMENTS["mnist"].resolve({})["input_rtol"] == INPUT_RTOL
    assert EXPERIMENTS["mnist"].resolve({"input_rtol": 0})["input_rtol"] == 0.0
    with pytest.raises(ValueError, match="input_rtol: must be < 1"):
        EXPERIMENTS["mnist"].resolve({"input_rtol": 1})
    toy = EXPERIMENTS["toy"]
    assert toy.resolve({"pair": [2, 0]})["pair"] == [0, 2]
    with pytest.raises(ValueError, match="pair"):
        toy.resolve({"pair": [0, 5]})


@pytest.mark.parametrize("text, words", [
    ('experiment = "nope"\n[grid]\nx = [1]\n', ["experiment", "nope"]),
    ('experiment = "selftest"\n[grid]\nwidth = [1]\n', ["grid.width", "unknown axis"]),
    ('experiment = "selftest"\n[fixed]\nwidth = 1\n[grid]\nx = [1]\n', ["fixed.width", "unknown axis"]),
    ('experiment = "selftest"\n[grid]\nx = []\n', ["grid.x", "empty"]),
    ('experiment = "selftest"\n', ["grid", "empty grid"]),
    ('experiment = "selftest"\n[grid\nx = [1]\n', ["malformed TOML"]),
    ('experiment = "selftest"\n[grid]\nx = [1.5]\n', ["grid.x", "integer"]),
    ('experiment = "selftest"\nworkers = 3\n[grid]\nx = [1]\n', ["unknown key", "workers"]),
    ('experiment = "toy"\n[grid]\nactivation = ["relu", "swish"]\n', ["grid.activation", "swish"]),
])
def test_bad_spec_is_one_line_exit_2_and_leaves_nothing(tmp_path, capsys, text, words):
    spec = write(tmp_path, "bad.toml", text)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("symland sweep: error:")
    for w in words:
        assert w in err
    assert not out.exists()


def test_cli_refuses_missing_out_and_bad_scheduler(tmp_path, capsys):
    spec = write(tmp_path, "s.toml", 'experiment = "selftest"\n[grid]\nx = [1]\n')
    assert main(["sweep", str(spec)]) == 2
    assert "out:" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--scheduler", "nowhere"]) == 2
    assert "scheduler:" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "not a sweep result store" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --- the store


def test_store_writes_atomically_replaces_failed_keeps_complete(tmp_path):
    store = ResultStore(tmp_path / "out").open("selftest")
    (store.jobs_dir / ".tmp-deadbeef-x").mkdir()  # left by a killed run
    store = ResultStore(tmp_path / "out").open("selftest")
    assert not list(store.jobs_dir.iterdir())
    h = "ab" * 32
    base = {"hash": h, "config": {"x": 2, "sleep": 0.0, "fail": False, "log": ""}, "wall_time": 0.1}
    assert store.write({**base, "status": FAILED, "error": "RuntimeError: boom", "traceback": "tb"})
    assert store.read(h)["status"] == FAILED and not store.is_complete(h)
    assert store.write({**base, "status": "converged", "scalars": {"square": 4}}, {"range": np.arange(2.0)})
    assert store.is_complete(h) and np.array_equal(store.arrays(h)["range"], [0.0, 1.0])
    assert not store.write({**base, "status": FAILED})  # a complete job is never overwritten
    assert store.read(h)["scalars"] == {"square": 4}
    assert [p.name for p in store.jobs_dir.iterdir()] == [h[:16]]
    with pytest.raises(ValueError, match="holds a 'selftest' sweep"):
        ResultStore(tmp_path / "out").open("toy")


def test_serial_sweep_records_failure_with_traceback(tmp_path):
    spec = SweepSpec("selftest", grid={"x": [1, 2, 3], "fail": [False]}, fixed={})
    bad = SweepSpec("selftest", grid={"x": [4], "fail": [True]}, fixed={})
    r = run_sweep(spec, tmp_path, workers=0, progress=False)
    assert (r.total, r.done, r.failed) == (3, 3, 0)
    r = run_sweep(bad, tmp_path, workers=0, progress=False)
    assert (r.done, r.failed) == (0, 1)
    record = ResultStore(tmp_path).read(bad.jobs()[0].hash)
    assert record["status"] == FAILED and "failed on request" in record["traceback"]
    assert record["config"]["x"] == 4
    r = run_sweep(spec, tmp_path, workers=0, progress=False)
    assert (r.skipped, r.done) == (3, 0)
    rows = summary(tmp_path)
    assert [(row["x"], row["status"], row["square"]) for row in rows] == [
        ("1", "converged", "1"), ("2", "converged", "4"), ("3", "converged", "9"), ("4", FAILED, "")]
    assert "RuntimeError" in rows[-1]["error"]


# --- real processes


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """`symland sweep --workers 2` (LocalCluster of 2 spawned processes) over 8 jobs, one raising."""
    tmp = tmp_path_factory.mktemp("local")
    log = tmp / "log.txt"
    spec = write(tmp, "s.toml", 'experiment = "selftest"\n[fixed]\nsleep = 0.05\n'
                 f'log = "{log}"\n[grid]\nx = [0, 1, 2, 3, 4, 5, 6, 7]\n')
    fail = write(tmp, "f.toml", 'experiment = "selftest"\n[grid]\nx = [99]\nfail = [true]\n')
    proc = sweep_cli(spec, "--out", tmp / "out", "--workers", 2)
    assert proc.returncode == 0, proc.stderr
    proc_fail = sweep_cli(fail, "--out", tmp / "out", "--workers", 2)
    return tmp, spec, log, proc, proc_fail


def test_local_cluster_sweep_isolates_failure_and_resumes_only_failed(local_run):
    tmp, spec, log, proc, proc_fail = local_run
    assert "8 jobs: 0 already complete, 8 done, 0 failed" in proc.stdout
    assert proc_fail.returncode == 1 and "1 failed" in proc_fail.stdout
    rows = summary(tmp / "out")
    assert [r["square"] for r in rows[:8]] == [str(x * x) for x in range(8)]
    assert rows[-1]["status"] == FAILED and "failed on request" in rows[-1]["error"]
    hashes = check_store_whole(tmp / "out")
    record = ResultStore(tmp / "out").read([h for h in hashes if ResultStore(tmp / "out").read(h)["status"] == FAILED][0])
    assert "RuntimeError: selftest job x=99 failed on request" in record["traceback"]
    assert len({int(line.split()[0]) for line in log.read_text().splitlines()}) >= 1
    # Each embedded worker is pinned to one core of its own (XLA ignores thread-count flags).
    cores = {int(line.split()[0]): line.split()[2] for line in log.read_text().splitlines()}
    assert all("," not in c for c in cores.values()), cores
    if len(os.sched_getaffinity(0)) >= 2 and len(cores) == 2:
        assert len(set(cores.values())) == 2, cores
    # Rerun: nothing new runs for the complete jobs (the log does not grow).
    lines = log.read_text()
    again = sweep_cli(spec, "--out", tmp / "out", "--workers", 2)
    assert again.returncode == 0 and "8 already complete, 0 done" in again.stdout
    assert log.read_text() == lines
    assert main(["report", str(tmp / "out")]) == 0
    html = (tmp / "out" / "report.html").read_text()
    assert "data:image/png;base64" in html and "failed on request" in html


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1 (random free ports)."""
    tmp_path = tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**ENV, "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
           "OMP_NUM_THREADS": "1"}
    logs = [open(tmp_path / name, "w") for name in ("scheduler.log", "worker0.log", "worker1.log")]
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                              stderr=logs[0], start_new_session=True)]
    for i in range(2):
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--host", "127.0.0.1",
                                       "--nthreads", "1", "--nworkers", "1", "--no-dashboard"],
                                      env=env, stdout=subprocess.DEVNULL,
                                      stderr=logs[i + 1], start_new_session=True))
    try:
        from distributed import Client

        with Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for fh in logs:
            fh.close()


def test_scheduler_and_two_workers_give_the_same_results(local_run, dask_cluster, tmp_path):
    tmp, spec, *_ = local_run
    proc = sweep_cli(spec, "--out", tmp_path / "out", "--scheduler", dask_cluster)
    assert proc.returncode == 0, proc.stderr
    drop = ("wall_time",)
    assert summary(tmp_path / "out", drop) == summary(tmp / "out", drop)[:8]
    check_store_whole(tmp_path / "out")
    assert sweep_cli(spec, "--out", tmp_path / "o2", "--scheduler", dask_cluster, "--workers", 2).returncode == 2


def test_worker_killed_mid_job_is_retried_or_recorded(dask_cluster, tmp_path):
    log = tmp_path / "log.txt"
    spec = write(tmp_path, "s.toml", 'experiment = "selftest"\n[fixed]\nsleep = 1.5\n'
                 f'log = "{log}"\n[grid]\nx = [0, 1, 2, 3, 4, 5]\n')
    proc = subprocess.Popen([str(BIN / "symland"), "sweep", str(spec), "--out", str(tmp_path / "out"),
                             "--scheduler", dask_cluster, "--no-progress"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and log.read_text().strip()):
        time.sleep(0.05)
    pid, x = (int(v) for v in log.read_text().split("\n")[0].split()[:2])
    os.kill(pid, signal.SIGKILL)  # the worker process running job x, mid-sleep
    stdout, stderr = proc.communicate(timeout=300)
    rows = {int(r["x"]): r for r in summary(tmp_path / "out")}
    assert sorted(rows) == list(range(6))  # no job lost
    for xx, r in rows.items():
        if xx != x:
            assert r["status"] == "converged", (xx, r)
    assert rows[x]["status"] == "converged" or "KilledWorker" in rows[x]["error"]
    if rows[x]["status"] == "converged":
        starts = [line for line in log.read_text().splitlines() if line.split()[1] == str(x)]
        assert len(starts) >= 2  # it really ran again elsewhere
    check_store_whole(tmp_path / "out")


def test_sigkill_midway_then_resume_completes_every_job_once(tmp_path):
    log = tmp_path / "log.txt"
    spec = write(tmp_path, "s.toml", 'experiment = "selftest"\n[fixed]\nsleep = 0.4\n'
                 f'log = "{log}"\n[grid]\nx = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\n')
    out = tmp_path / "out"
    proc = subprocess.Popen([str(BIN / "symland"), "sweep", str(spec), "--out", str(out), "--workers", "2",
                             "--no-progress"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    done = []
    while time.monotonic() < deadline and proc.poll() is None:
        done = [d for d in (out / "jobs").glob("*") if not d.name.startswith(".")] if (out / "jobs").is_dir() else []
        if len(done) >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)
    try:  # workers die with their nanny; make sure nothing is left even if one lingers
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    assert 3 <= len(done) < 12, "the sweep was not killed midway"
    before = {d.name: (d / "result.json").read_text() for d in done}
    rerun = sweep_cli(spec, "--out", out, "--workers", 2)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(before)} already complete" in rerun.stdout or "already complete" in rerun.stdout
    hashes = check_store_whole(out)
    assert len(hashes) == 12
    for name, text in before.items():  # jobs finished before the kill were not run again
        assert (out / "jobs" / name / "result.json").read_text() == text
    # The final summary equals that of an uninterrupted run (here: in-process, serial).
    run_sweep(load_spec(spec), tmp_path / "uninterrupted", workers=0, progress=False)
    assert summary(out, ("wall_time",)) == summary(tmp_path / "uninterrupted", ("wall_time",))


@pytest.mark.slow
def test_toy_sweep_on_local_cluster_equals_serial(tmp_path):
    spec = write(tmp_path, "toy.toml", 'experiment = "toy"\n[fixed]\nsteps = 4\nn_samples = 60\n'
                 'n_hidden = 3\nactivation = "softplus"\n[grid]\nseed = [1, 2]\npair = ["all", [0, 1]]\n')
    proc = sweep_cli(spec, "--out", tmp_path / "dask", "--workers", 2, timeout=900)
    assert proc.returncode == 0, proc.stderr
    # The serial reference runs in a process with the workers' thread settings: XLA's thread count
    # changes round-off, and with it whether a borderline δ step converges (measured: a converged
    # fraction of 0.267 against 0.2 when the reference ran with XLA's default threads).
    from symland.sweep._engine import worker_env

    serial = subprocess.run([str(BIN / "symland"), "sweep", str(spec), "--out", str(tmp_path / "serial"),
                             "--workers", "0", "--no-progress"], env={**ENV, **worker_env()},
                            capture_output=True, text=True, timeout=900)
    assert serial.returncode == 0, serial.stderr
    a, b = summary(tmp_path / "dask"), summary(tmp_path / "serial")
    assert len(a) == 4 and [r["status"] for r in a] != [FAILED] * 4
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if k in ("permutation_point_loss", "barrier"):
                assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-8)
            else:
                assert ra[k] == rb[k], k


def test_mnist_job_projects_its_inputs():
    """The sweep's Fig. 3 job reads its data through `fig3_data`, as `symland mnist` does: the
    projection is applied (digits' dark border pixels are dropped) and reported."""
    job = EXPERIMENTS["mnist"]
    config = job.resolve({"data": "digits", "samples": 200, "H": 3, "steps": 2, "epochs": 2,
                          "method": "matrix-free", "max_hvps": 10})
    scalars, arrays = job.job(config)
    assert scalars["dropped_input_directions"] >= 1
    scalars0, _ = job.job({**config, "input_rtol": 0.0})
    assert scalars0["dropped_input_directions"] == 0
    assert arrays["loss"].shape == (3,) and scalars["status"] in ("converged", "max_steps")
    # the permutation point's index: a dense spectrum at this size, so exact
    assert scalars["permutation_point_index"] >= 0 and scalars["permutation_point_index_exact"] is True
    # the gauge axis reaches the path: the upstream δ₀ is another number than the paper's
    assert config["gauge"] == "auto"
    _, upstream = job.job({**config, "gauge": "upstream"})
    assert upstream["distance"][0] > 0 and upstream["distance"][0] != pytest.approx(arrays["distance"][0])
