"""Speed of permutation saddles on the Fig. 1 toy (issue 9).

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_saddles.py [--activation tanh] [--seed 2]

Times in one run: the first call (compilation included), then after
compilation one pair (2 & 3) and all 10 pairs batched, each with the fixed-δ
paths (init="auto") and without them (init="merged"); the MEP plus the
certified saddle and its dense-Hessian spectrum are included in every time.
"""

from __future__ import annotations

import argparse
import time

import symland as s


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--activation", default="tanh")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    toy = s.toy_problem(args.activation, seed=args.seed)
    run = lambda pairs, init: s.permutation_saddles(toy.model, toy.teacher, toy.x, toy.y, 1, pairs, init=init)
    for init in ("merged", "auto"):
        for pairs, label in (([(2, 3)], "one pair (2 & 3)"), ("all", "all 10 pairs, batched")):
            first, res = timed(lambda: run(pairs, init))
            warm = min(timed(lambda: run(pairs, init))[0] for _ in range(args.repeat))
            ok = sum(r.certified for r in res)
            print(f"{args.activation} seed {args.seed}, init={init}, {label}: first call {first:.2f} s "
                  f"(compilation included), after compilation {warm:.2f} s (best of {args.repeat}); "
                  f"{ok}/{len(res)} certified", flush=True)


if __name__ == "__main__":
    main()
