"""A pytest plugin that logs the set-up time of every module-, class-, package- and session-scoped
fixture, per worker process, and a summary of the ones set up more than once (on both xdist workers).

Run (BENCHMARKS.md, "Test-suite time", twenty-ninth session):
    JAX_COMPILATION_CACHE_DIR=<new dir> PYTHONPATH=benchmarks FIXLOG_DIR=DIR \\
        .venv/bin/python -m pytest -q -n 2 -m "not slow" -p fixture_log -p no:cacheprovider --durations=0
    python benchmarks/fixture_log.py DIR
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys
import time

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    t = time.perf_counter()
    yield
    if fixturedef.scope in ("module", "session", "class", "package"):
        out = os.environ.get("FIXLOG_DIR", "fixlog")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"{os.getpid()}.jsonl"), "a") as fh:
            fh.write(json.dumps({"fixture": fixturedef.argname, "scope": fixturedef.scope,
                                 "node": request.node.nodeid,
                                 "param": repr(getattr(request, "param", None))[:40],
                                 "s": time.perf_counter() - t}) + "\n")


def summary(folder: str) -> None:
    """Fixtures by total set-up seconds; the seconds of all but the most expensive copy are duplicates."""
    setups = collections.defaultdict(list)
    for path in glob.glob(os.path.join(folder, "*.jsonl")):
        for line in open(path):
            r = json.loads(line)
            setups[(r["node"].split("::")[0], r["fixture"], r["param"])].append(r["s"])
    duplicate = 0.0
    for key, secs in sorted(setups.items(), key=lambda kv: -sum(kv[1])):
        duplicate += sum(sorted(secs)[:-1])
        if sum(secs) > 3:
            print(f"{sum(secs):7.1f} s  set up {len(secs)}×  {key}")
    print(f"duplicate set-up seconds (all but the most expensive copy): {duplicate:.1f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python benchmarks/fixture_log.py DIR")
    summary(sys.argv[1])
