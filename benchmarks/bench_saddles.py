"""Speed of permutation saddles on the Fig. 1 toy (issue 9).

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_saddles.py [--activation tanh] [--seed 2]

Times in one run: the first call (compilation included), then after
compilation one pair and all 10 pairs batched, for init="auto" (fixed-δ
paths, the band where they are complete, the transition network elsewhere)
and init="network" (no fixed-δ paths); the path plus the certified saddle
and its dense-Hessian spectrum are included in every time. `--pair` picks
the single pair (default 2,3: its fixed-δ path is complete on tanh seed 2).
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
    ap.add_argument("--pair", default="2,3")
    ap.add_argument("--inits", nargs="+", default=["network", "auto"])
    args = ap.parse_args()
    pair = tuple(int(t) for t in args.pair.split(","))
    toy = s.toy_problem(args.activation, seed=args.seed)
    run = lambda pairs, init: s.permutation_saddles(toy.model, toy.teacher, toy.x, toy.y, 1, pairs, init=init)
    for init in args.inits:
        for pairs, label in (([pair], f"one pair ({pair[0]} & {pair[1]})"), ("all", "all 10 pairs, batched")):
            first, res = timed(lambda: run(pairs, init))
            warm = min(timed(lambda: run(pairs, init))[0] for _ in range(args.repeat))
            ok = sum(r.certified for r in res)
            routes = sorted({r.init for r in res})
            print(f"{args.activation} seed {args.seed}, init={init}, {label}: first call {first:.2f} s "
                  f"(compilation included), after compilation {warm:.2f} s (best of {args.repeat}); "
                  f"{ok}/{len(res)} certified; routes {routes}", flush=True)


if __name__ == "__main__":
    main()
