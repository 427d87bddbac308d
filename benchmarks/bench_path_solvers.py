"""The path solvers on the 2-5-1 softplus toy (issue 10): steps converged and their cost, in one run.

Run: PYTHONPATH=src python benchmarks/bench_path_solvers.py [--steps 12] [--seed 6] [--pair 2,3]
The path of tests/test_newton_krylov.py (softplus seed 6, pair 2 & 3) with ‖∇L‖∞ ≤ 1e−10 per step,
solved by dense Newton and by every matrix-free solver of `PATH_SOLVERS`. Prints one line each.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import jax

import symland as s
from symland._newton_krylov import PATH_SOLVERS

jax.config.update("jax_enable_x64", True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--pair", default="2,3")
    a = ap.parse_args()
    l, m = (int(t) for t in a.pair.split(","))
    prob = s.toy_problem("softplus", seed=a.seed)
    print(f"softplus toy seed {a.seed}, pair {l}&{m}, {a.steps} steps + δ = 0, gtol 1e-10")
    for solver in ("dense",) + PATH_SOLVERS:
        kw = dict(method="dense") if solver == "dense" else dict(method="matrix-free", solver=solver)
        t = time.perf_counter()
        p = s.find_permutation_path(prob.model, prob.teacher, prob.x, prob.y, 1, l, m, steps=a.steps,
                                    gtol=1e-10, **kw)
        seconds = time.perf_counter() - t
        unit = "Hessians" if solver == "dense" else "HVPs"
        failed = sorted({st for st in p.status if st != "converged"})
        print(f"  {solver:12s} {int(np.sum(p.converged))}/{len(p.status)} steps converged "
              f"{'(' + '/'.join(failed) + ') ' if failed else ''}| {int(np.sum(p.steps))} iterations, "
              f"{int(np.sum(p.hessians))} {unit}"
              + (f", {p.factorisations} factorisations" if p.factorisations else "")
              + f" | {seconds:.1f} s (compilation included) | max L {float(np.max(p.loss)):.6e}", flush=True)


if __name__ == "__main__":
    main()
