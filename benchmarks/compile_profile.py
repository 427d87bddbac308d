"""Where a test run's time goes: a pytest plugin that records JAX's compilation per test, and its summary.

Run (cold, the suite as CI runs it, with its own empty cache):
    JAX_COMPILATION_CACHE_DIR=/tmp/coldcache PYTHONPATH=benchmarks COMPILE_PROFILE_DIR=/tmp/prof \
        .venv/bin/python -m pytest -q -n 2 -m "not slow" -p compile_profile -p no:cacheprovider
    JAX_LOG_COMPILES=1 ... (the same) also logs each compiled program's name and seconds
    python benchmarks/compile_profile.py /tmp/prof      # the summary

Each test (xdist worker processes included) appends one JSON line to COMPILE_PROFILE_DIR: its wall
time and the sums of JAX's `backend_compile_duration` (XLA's compilation; `n` compilations),
`jaxpr_trace_duration` and `jaxpr_to_mlir_module_duration` events during it. Compilations in
processes a test starts (CLI subprocesses, Dask workers) are in its wall time only. The summary gives
the totals and the 25 costliest files, and, with JAX_LOG_COMPILES=1, the 30 costliest programs by name
and the 40 costliest (program, test) pairs.
"""

from __future__ import annotations

import collections
import glob
import json
import logging
import os
import sys
import time

_DIR = os.environ.get("COMPILE_PROFILE_DIR", "compile-profile")
_acc = {"c": 0.0, "n": 0, "t": 0.0, "l": 0.0}
_KEYS = {"/jax/core/compile/backend_compile_duration": "c", "/jax/core/compile/jaxpr_trace_duration": "t",
         "/jax/core/compile/jaxpr_to_mlir_module_duration": "l"}


def _listen(name, duration, **kwargs):
    key = _KEYS.get(name)
    if key is not None:
        _acc[key] += duration
        _acc["n"] += key == "c"


class _CompileLog(logging.Handler):
    def emit(self, record):
        message = record.getMessage()
        if "Finished XLA compilation" in message:
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
            with open(os.path.join(_DIR, f"comp_{os.getpid()}.log"), "a") as f:
                f.write(f"{message}\t{test}\n")


def pytest_configure(config):
    from jax._src import monitoring

    os.makedirs(_DIR, exist_ok=True)
    monitoring.register_event_duration_secs_listener(_listen)
    logging.getLogger("jax").addHandler(_CompileLog(logging.DEBUG))


def _hookwrapper(fn):
    import pytest

    return pytest.hookimpl(hookwrapper=True)(fn)


@_hookwrapper
def pytest_runtest_protocol(item, nextitem):
    before, t0 = dict(_acc), time.time()
    yield
    row = {"id": item.nodeid, "wall": time.time() - t0, **{k: _acc[k] - before[k] for k in _acc}}
    with open(os.path.join(_DIR, f"out_{os.getpid()}.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")


def summarise(folder):
    rows = [json.loads(line) for name in glob.glob(os.path.join(folder, "out_*.jsonl")) for line in open(name)]
    if not rows:
        raise SystemExit(f"{folder}: no profile (run the suite with -p compile_profile first)")
    total = {k: sum(r[k] for r in rows) for k in ("wall", "c", "t", "l", "n")}
    print(f"{len(rows)} tests: {total['wall']:.0f} s in tests, XLA compilation {total['c']:.0f} s "
          f"({int(total['n'])} compilations), tracing {total['t']:.0f} s, lowering {total['l']:.0f} s")
    files = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
    for r in rows:
        f = files[r["id"].split("::")[0]]
        f[0] += r["wall"]
        f[1] += r["c"]
        f[2] += r["t"] + r["l"]
    print("\n   wall      XLA  tracing  file")
    for name, (w, c, t) in sorted(files.items(), key=lambda kv: -kv[1][0])[:25]:
        print(f"{w:7.1f} {c:8.1f} {t:8.1f}  {name}")
    programs = collections.defaultdict(lambda: [0.0, 0])
    by_test = collections.defaultdict(lambda: [0.0, 0])
    for name in glob.glob(os.path.join(folder, "comp_*.log")):
        for line in open(name):
            message, _, test = line.rstrip("\n").partition("\t")
            head, _, tail = message.rpartition(" in ")
            program, sec = head.replace("Finished XLA compilation of ", ""), float(tail.split()[0])
            for key, table in ((program, programs), ((program, test or "?"), by_test)):
                table[key][0] += sec
                table[key][1] += 1
    if programs:
        print("\n   XLA s  count  program")
        for name, (sec, n) in sorted(programs.items(), key=lambda kv: -kv[1][0])[:30]:
            print(f"{sec:8.2f} {n:6d}  {name}")
        print("\n   XLA s  count  program  test")
        for (name, test), (sec, n) in sorted(by_test.items(), key=lambda kv: -kv[1][0])[:40]:
            print(f"{sec:8.2f} {n:6d}  {name}  {test}")


if __name__ == "__main__":
    summarise(sys.argv[1] if len(sys.argv) > 1 else _DIR)
