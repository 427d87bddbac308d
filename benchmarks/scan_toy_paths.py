"""Which pairs of the Fig. 1 toy have a permutation path that converges at every δ step?

Run: .venv/bin/python benchmarks/scan_toy_paths.py [--activations softplus,relu] [--seeds 1:20]

For each activation and `toy_problem` seed, all 10 pairs are solved in one
batched call on a screening schedule (50 log-spaced δ to 1e−4·δ₀ and δ = 0,
≤ 50 Newton steps per δ); pairs whose 51 steps all converge are re-run on the
full schedule (200 steps, the default ≤ 200 Newton steps) to confirm. Prints per seed the
number of converged steps per pair, then a summary with the failure reasons.
The numbers are quoted in README.md ("What the path finder finds").
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

import symland as s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--activations", default="softplus,relu")
    ap.add_argument("--seeds", default="1:20", help="first:last, inclusive")
    args = ap.parse_args()
    lo, hi = (int(v) for v in args.seeds.split(":"))
    for act in args.activations.split(","):
        reasons, full, n_pairs = collections.Counter(), [], 0
        for seed in range(lo, hi + 1):
            p = s.toy_problem(act, seed=seed)
            t = time.perf_counter()
            paths = s.find_permutation_paths(p.model, p.teacher, p.x, p.y, 1, "all", steps=50,
                                             max_newton_steps=50)
            counts = [int(q.converged.sum()) for q in paths]
            print(f"{act} seed {seed:2d}: converged steps per pair {counts} of 51 "
                  f"({time.perf_counter() - t:.1f} s)", flush=True)
            n_pairs += len(paths)
            for q in paths:
                reasons.update(r for r in q.reason if r)
                if q.all_converged:
                    c = s.find_permutation_path(p.model, p.teacher, p.x, p.y, 1, q.l, q.m, steps=200)
                    full.append((seed, (q.l, q.m), int(c.converged.sum()), c.permutation_point_loss,
                                 c.permutation_point_index))
        confirmed = [f for f in full if f[2] == 201]
        print(f"{act}: {len(confirmed)}/{n_pairs} pairs converge at every step (201/201 on the full "
              f"schedule); failed screening steps by reason {dict(reasons)}")
        for seed, pair, n, loss, index in full:
            print(f"   seed {seed} pair {pair}: {n}/201, permutation point L = {loss:.4g}, index {index}")


if __name__ == "__main__":
    main()
