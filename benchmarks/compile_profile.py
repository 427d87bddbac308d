"""Where a test run's time goes: a pytest plugin that records JAX's compilation per test, and its summary.

Run (cold, the suite as CI runs it, with its own empty cache):
    JAX_COMPILATION_CACHE_DIR=/tmp/coldcache PYTHONPATH=benchmarks COMPILE_PROFILE_DIR=/tmp/prof \
        .venv/bin/python -m pytest -q -n 2 -m "not slow" -p compile_profile -p no:cacheprovider
    JAX_LOG_COMPILES=1 ... (the same) also logs each compiled program's name and seconds
    COMPILE_PROFILE_KEYS=1 JAX_LOG_COMPILES=1 ... also logs each one's persistent-cache key and
        whether it was a hit (`jax._src.compiler` at DEBUG level, kept out of the console)
    python benchmarks/compile_profile.py /tmp/prof      # the summary

Each test (xdist worker processes included) appends one JSON line to COMPILE_PROFILE_DIR: its wall
time and the sums of JAX's `backend_compile_duration` (XLA's compilation; `n` compilations),
`jaxpr_trace_duration` and `jaxpr_to_mlir_module_duration` events during it. Compilations in
processes a test starts (CLI subprocesses, Dask workers) are in its wall time only. The summary gives
the totals and the 25 costliest files, and, with JAX_LOG_COMPILES=1, the 30 costliest programs by name
and the 40 costliest (program, test) pairs; with COMPILE_PROFILE_KEYS=1 also how many distinct
programs were compiled and which were compiled in more than one process (xdist workers that each
compiled a program before the other had written it to the persistent cache).
"""

from __future__ import annotations

import collections
import glob
import json
import logging
import os
import re
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
    last = ("", "")  # (hit or miss, persistent-cache key) of the compilation being logged

    def emit(self, record):
        message = record.getMessage()
        lower = message.lower()
        if "persistent compilation cache hit" in lower or "persistent compilation cache miss" in lower:
            key = re.search(r"key '([^']+)'", message)
            _CompileLog.last = ("hit" if "hit" in lower else "miss", key.group(1) if key else "?")
        elif "Finished XLA compilation" in message:
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
            kind, key = _CompileLog.last
            _CompileLog.last = ("", "")
            with open(os.path.join(_DIR, f"comp_{os.getpid()}.log"), "a") as f:
                f.write(f"{message}\t{test}\t{kind}\t{key}\n")


def pytest_configure(config):
    from jax._src import monitoring

    os.makedirs(_DIR, exist_ok=True)
    monitoring.register_event_duration_secs_listener(_listen)
    handler = _CompileLog(logging.DEBUG)
    logging.getLogger("jax").addHandler(handler)
    if os.environ.get("COMPILE_PROFILE_KEYS"):  # cache hits and misses are DEBUG records of this logger
        compiler = logging.getLogger("jax._src.compiler")
        compiler.setLevel(logging.DEBUG)
        compiler.propagate = False  # to this handler only, not to the console
        compiler.addHandler(handler)


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
    compiled = collections.defaultdict(list)  # cache key → [(process, seconds, program)] of its misses
    hits = 0
    for name in glob.glob(os.path.join(folder, "comp_*.log")):
        for line in open(name):
            message, test, kind, cache_key = (line.rstrip("\n").split("\t") + ["", "", ""])[:4]
            head, _, tail = message.rpartition(" in ")
            program, sec = head.replace("Finished XLA compilation of ", ""), float(tail.split()[0])
            if kind == "hit":  # a load from the persistent cache, not a compilation
                hits += 1
                continue
            if kind == "miss":
                compiled[cache_key].append((name, sec, program))
            for key, table in ((program, programs), ((program, test or "?"), by_test)):
                table[key][0] += sec
                table[key][1] += 1
    if compiled:
        twice = {k: v for k, v in compiled.items() if len({p for p, _, _ in v}) > 1}
        waste = sum(sum(t for _, t, _ in v) - max(t for _, t, _ in v) for v in twice.values())
        print(f"\n{sum(map(len, compiled.values()))} compilations of {len(compiled)} distinct programs, "
              f"{hits} persistent-cache hits; compiled in more than one process: {len(twice)} programs, "
              f"{waste:.1f} s beyond their first compilation")
    if programs:
        print("\n   XLA s  count  program")
        for name, (sec, n) in sorted(programs.items(), key=lambda kv: -kv[1][0])[:30]:
            print(f"{sec:8.2f} {n:6d}  {name}")
        print("\n   XLA s  count  program  test")
        for (name, test), (sec, n) in sorted(by_test.items(), key=lambda kv: -kv[1][0])[:40]:
            print(f"{sec:8.2f} {n:6d}  {name}  {test}")


if __name__ == "__main__":
    summarise(sys.argv[1] if len(sys.argv) > 1 else _DIR)
