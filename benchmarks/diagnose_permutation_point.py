"""The index of the Fig. 3 permutation point, the even block included (issue 10).

Run: PYTHONPATH=src .venv/bin/python benchmarks/diagnose_permutation_point.py [--k 16] [--samples 10000]

`matrix_free_paths` reports the permutation point θ_{l⇔m} by `classify_permutation_point`: the
σ_{l⇔m}-odd Hessian block exactly, and the even block's signs by `symland.even_block_inertia`
(`even_block="auto"`: the point is critical and has more than DENSE_THRESHOLD parameters). Lanczos
on the even block converges none of its smallest eigenvalues on the Fig. 3 pair, which left the
index at "≥ 9". `even_block_inertia` runs LOBPCG on a matrix congruent to the even block (the
δ = 0 fixed-δ problem's Hessian, deflated of its 21 exactly flat directions), preconditioned by
that problem's exact Gauss–Newton factors. Its docstring gives the argument; tests/test_plateau.py
checks it against dense spectra. The setting is that of `bench_mnist.py --only steps --first 101`
with the δ schedule [δ₀, 0], so that δ = 0 starts from θ* with the pair merged, as after the
run-off. It prints the path's report and index, the odd block's inertia at the report's zero
tolerance, and then `even_block_inertia` again, alone and timed, with `--k` eigenvalues and their
residuals. Written for diagnosis; the path's cost is in `bench_mnist.py --only steps`.
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
          f"‖∇L‖∞ {float(r.grad_norm):.1e}; report: {r.kind}, part {r.part}; the path's index "
          f"{'' if exact else '≥ '}{index} (even block: "
          + ("Lanczos" if e is None else f"{e.status}, {e.n_negative} negative of {e.eigenvalues.size}, "
             f"{e.hvps} HVPs") + ")", flush=True)
    odd = np.asarray(s.odd_block_spectrum(path.loss_fn, path.permutation_point, 2, l, m))
    print(f"odd block (negative, zero, positive) at the report's zero tolerance {r.zero_tol:.1e}: "
          f"({int(np.sum(odd < -r.zero_tol))}, {int(np.sum(np.abs(odd) <= r.zero_tol))}, "
          f"{int(np.sum(odd > r.zero_tol))})", flush=True)
    t0 = time.perf_counter()
    even = s.even_block_inertia(teacher.model, path.permutation_point, x, y, 2, l, m, loss="nmse", k=a.k)
    print(f"even block, {a.k} smallest congruent eigenvalues: {even.status}, {even.n_negative} negative, "
          f"{even.hvps} HVPs, {time.perf_counter() - t0:.0f} s (the factorisation included)", flush=True)
    for value, residual in zip(even.eigenvalues, even.residuals):
        print(f"  {value: .4e}  residual {residual:.1e}")


if __name__ == "__main__":
    main()
