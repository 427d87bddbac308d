"""Which code compiles: a pytest plugin that records each XLA compilation with its call sites, and its summary.

Run (cold, the suite as CI runs it, with its own empty cache):
    JAX_COMPILATION_CACHE_DIR=/tmp/coldcache PYTHONPATH=benchmarks COMPILE_SITES_DIR=/tmp/sites \
        .venv/bin/python -m pytest -q -n 2 -m "not slow" -p compile_sites -p no:cacheprovider
    python benchmarks/compile_sites.py /tmp/sites        # the summary

The plugin wraps `jax._src.compiler.backend_compile_and_load`, which JAX calls only when it really
compiles (a persistent-cache hit does not), and appends one JSON line per compilation to
COMPILE_SITES_DIR: the program's name, its seconds, the three innermost `symland` frames of the call
stack, the innermost test frame and the test. The summary gives the totals, the costliest programs by
(name, innermost symland frame), and the compilations of single primitives (`jit_add`, `jit_tanh`, …:
JAX compiles each primitive on its own, per shape, where code runs op by op outside `jit`), by site.
`backend_compile_and_load` is JAX-internal (checked with jax 0.10.2); the extra stack walk adds a few
per cent to the run.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys
import time
import traceback

_DIR = os.environ.get("COMPILE_SITES_DIR", "compile-sites")
_current = {"test": "?"}
# function-named programs that recur: not primitives even though many compile
_NOT_PRIMITIVES = {"jit_value_grads", "jit_hvp", "jit_jitted", "jit_advance", "jit_relax", "jit_blocked",
                   "jit_finish", "jit_refine", "jit_epoch"}


def pytest_configure(config):
    from jax._src import compiler
    from jax._src.lib.mlir import ir

    os.makedirs(_DIR, exist_ok=True)
    real = compiler.backend_compile_and_load
    out = open(os.path.join(_DIR, f"sites_{os.getpid()}.jsonl"), "a", buffering=1)

    def logged(backend, module, *args, **kwargs):
        start = time.perf_counter()
        executable = real(backend, module, *args, **kwargs)
        seconds = time.perf_counter() - start
        stack = traceback.extract_stack()
        src = [f"{f.filename.split('/src/')[-1]}:{f.lineno}:{f.name}" for f in stack if "/src/symland/" in f.filename]
        tst = [f"{f.filename.split('/tests/')[-1]}:{f.lineno}" for f in stack if "/tests/" in f.filename]
        name = ir.StringAttr(module.operation.attributes["sym_name"]).value
        out.write(json.dumps({"name": name, "s": seconds, "src": src[-3:], "tst": tst[-1:],
                              "test": _current["test"]}) + "\n")
        return executable

    compiler.backend_compile_and_load = logged


def pytest_runtest_logstart(nodeid, location):
    _current["test"] = nodeid


def _site(row):
    if row["src"]:
        return row["src"][-1]
    return "test " + (row["tst"][0] if row["tst"] else "?")


def summary(folder: str, top: int = 30) -> None:
    rows = [json.loads(line) for path in glob.glob(os.path.join(folder, "sites_*.jsonl")) for line in open(path)]
    print(f"{len(rows)} compilations, {sum(r['s'] for r in rows):.1f} s of XLA")
    by = collections.defaultdict(lambda: [0, 0.0])
    for r in rows:
        key = (r["name"][:30], _site(r))
        by[key][0] += 1
        by[key][1] += r["s"]
    print("\n   XLA s  count  program                         innermost symland frame (or test)")
    for (name, site), (n, sec) in sorted(by.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{sec:8.1f} {n:6d}  {name:30s}  {site}")
    counts = collections.Counter(r["name"] for r in rows)
    prims = {n for n, c in counts.items() if c >= 15 and not n.startswith("jit__") and n not in _NOT_PRIMITIVES}
    prim_rows = [r for r in rows if r["name"] in prims]
    print(f"\nsingle primitives (op by op): {len(prim_rows)} compilations, "
          f"{sum(r['s'] for r in prim_rows):.1f} s of XLA")
    sites = collections.defaultdict(lambda: [0, 0.0])
    for r in prim_rows:
        sites[_site(r)][0] += 1
        sites[_site(r)][1] += r["s"]
    for site, (n, sec) in sorted(sites.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{sec:8.1f} {n:6d}  {site}")


if __name__ == "__main__":
    summary(sys.argv[1] if len(sys.argv) > 1 else _DIR)
