"""The Hessian of the Fig. 3 permutation point, the even block included (issue 10).

Run: PYTHONPATH=src .venv/bin/python benchmarks/diagnose_permutation_point.py [--k 16] [--samples 10000]

`matrix_free_paths` reports the permutation point θ_{l⇔m} by `classify_permutation_point`: the
σ_{l⇔m}-odd Hessian block exactly, and the even block's smallest eigenvalues by
`symland.even_block_spectrum` (`even_block="auto"`: the point is critical and has more than
DENSE_THRESHOLD parameters): LOBPCG on ∇²L constrained to the even subspace, preconditioned through
the δ = 0 fixed-δ problem's exact Gauss–Newton factors. Lanczos on the even block converges none of
its smallest eigenvalues on this pair, which left the index at "≥ 9" and the near-zero count
unknown. The setting is that of `bench_mnist.py --only steps --first 101` with the δ schedule
[δ₀, 0], so that δ = 0 starts from θ* with the pair merged, as after the run-off. It prints the
path's report, the odd block's inertia at the report's zero tolerance, the even block's values with
their residuals and their distance from that tolerance, and then `even_block_spectrum` again, alone,
timed, with `--k` eigenvalues (another start and block size: the same smallest should come back).
Written for diagnosis; the path's cost is in `bench_mnist.py --only steps`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import jax
import jax.numpy as jnp

import symland as s
from symland._newton_krylov import matrix_free_paths

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, str(Path(__file__).parent))
from bench_mnist import teacher_and_pair  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--samples", type=int, default=10_000)
    a = ap.parse_args()
    if a.k < 1:
        ap.error("--k: must be a positive number of eigenvalues")
    x, labels, name = s.load_image_data("fashion-mnist", n_samples=a.samples)
    x = jnp.asarray(s.project_inputs(x, 1e-3).x)
    teacher, y, l, m = teacher_and_pair(x, labels, 10)
    d0 = float(s.pair_distance(teacher.params, 2, l, m, None))
    t0 = time.perf_counter()
    path, = matrix_free_paths(teacher.model, teacher.params, x, y, 2, [(l, m)], d0 * np.array([[1.0, 0.0]]),
                              loss="nmse", max_steps=300, solver="trust-gn")
    r, e = path.permutation_point_report, path.even_block
    index, exact = path.permutation_point_index
    print(f"{name}, pair {l}&{m}: permutation point in {time.perf_counter() - t0:.0f} s, L {float(r.loss):.6e}, "
          f"‖∇L‖∞ {float(r.grad_norm):.1e}; report: {r.kind}, part {r.part}, index {'' if exact else '≥ '}{index}, "
          f"{r.nullity} near-zero at zero tolerance {r.zero_tol:.2e} (even block: "
          + ("Lanczos" if e is None else f"LOBPCG, {e.status}, {e.hvps} HVPs, {e.n_flat} exactly flat directions")
          + f"); §4.2 checks {path.checks()}", flush=True)
    odd = np.asarray(s.odd_block_spectrum(path.loss_fn, path.permutation_point, 2, l, m))
    print(f"odd block (negative, zero, positive) at the report's zero tolerance: "
          f"({int(np.sum(odd < -r.zero_tol))}, {int(np.sum(np.abs(odd) <= r.zero_tol))}, "
          f"{int(np.sum(odd > r.zero_tol))})", flush=True)
    runs = [("the path's", e)]
    t0 = time.perf_counter()
    again = s.even_block_spectrum(teacher.model, path.permutation_point, x, y, 2, l, m, loss="nmse", k=a.k, seed=1)
    runs.append((f"again (k = {a.k}, another start; {again.hvps} HVPs, {time.perf_counter() - t0:.0f} s "
                 "with the factorisation)", again))
    for label, run in runs:
        if run is None:
            continue
        print(f"even block, {label}: {run.status}")
        for value, residual in zip(run.eigenvalues, run.residuals):
            side = ("zero" if abs(value) + residual <= r.zero_tol else "nonzero" if abs(value) - residual > r.zero_tol
                    else "undecided")
            print(f"  {value: .4e}  residual {residual:.1e}  ({side} at {r.zero_tol:.2e})")


if __name__ == "__main__":
    main()
