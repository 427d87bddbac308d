"""Shared by the benchmarks that compare source trees: one fresh process per tree and round, alternating.

`compare(call, description, report)` parses `--src A [--src B]` and `--rounds N`, runs the Python
code `call` (which prints one JSON object on its last line) with each tree first on PYTHONPATH, in
turn per round (so a machine that drifts affects both), passes each result to `report(round, src,
result)`, and returns `(srcs, {src: [results]})`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def run_in_tree(call: str, src: str) -> dict:
    """`call` in a fresh interpreter with `src` first on PYTHONPATH; its last stdout line as JSON."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    res = subprocess.run([sys.executable, "-c", call], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{src}: the workload failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def compare(call: str, description: str, report, argv=None):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--src", action="append", help="a source tree (default: src); give two to compare")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    srcs = args.src or ["src"]
    if len(srcs) > 2:
        raise SystemExit("--src: at most two source trees")
    if args.rounds < 1:
        raise SystemExit("--rounds: must be ≥ 1")
    runs = {src: [] for src in srcs}
    for r in range(args.rounds):
        for src in srcs:
            got = run_in_tree(call, src)
            runs[src].append(got)
            report(r + 1, src, got)
    return srcs, runs
