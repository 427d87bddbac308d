"""Benchmarks for symland.gaussian (issue 5); not timing tests.

Run from the repository root:

    PYTHONPATH=src python benchmarks/bench_gaussian.py [--runs 500] [--kmax 10000]

Each line reports wall-clock seconds including JIT compilation (a fresh process).
"""

import argparse
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--kmax", type=int, default=10_000)
    p.add_argument("--only", default="family,frequency,decay")
    args = p.parse_args()
    t0 = time.perf_counter()
    from symland.gaussian import DECAY_CONSTANT, critical_value_decay, empirical_frequency, safran_shamir_family

    print(f"import: {time.perf_counter() - t0:.1f} s")
    only = args.only.split(",")
    if "family" in only:
        t = time.perf_counter()
        fam = safran_shamir_family(range(6, 21))
        dt = time.perf_counter() - t
        worst = max(p.grad_norm for p in fam.values())
        print(f"ΔS_(k-1) family k=6..20 (restricted solve + full Hessian spectrum): {dt:.1f} s; "
              f"max ‖∇L‖∞ = {worst:.1e}; all minima: {all(p.kind == 'minimum' for p in fam.values())}")
    if "frequency" in only:
        t = time.perf_counter()
        fr = empirical_frequency(10, n_runs=args.runs)
        dt = time.perf_counter() - t
        print(f"frequency k=10, {args.runs} runs: {dt:.1f} s; counts {fr.counts}")
    if "decay" in only:
        t = time.perf_counter()
        fit = critical_value_decay(args.kmax)
        dt = time.perf_counter() - t
        print(f"a/k fit up to k={args.kmax}: {dt:.1f} s; a = {fit.a:.9f} ± {fit.a_uncertainty:.1e} "
              f"(1/2 − 2/π² = {DECAY_CONSTANT:.9f}); windows {[(w, round(a, 9)) for w, a in fit.windows]}")
    np.set_printoptions(precision=4)


if __name__ == "__main__":
    main()
