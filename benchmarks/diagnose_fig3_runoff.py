"""Why the converged Fig. 3 path runs off after step 13: which neuron moves, and how (issue 10).

Run: PYTHONPATH=src .venv/bin/python benchmarks/diagnose_fig3_runoff.py [--first 18] [--samples 10000]

The setting of `bench_mnist.py --only steps` (seed-0 softplus teacher 784-10-10-10 on Fashion-MNIST,
inputs projected, the most cosine-similar pair (l, m) of hidden layer 2, 100-step schedule, trust-gn,
each step run to convergence). After each of the first `first` δ steps it prints, for the layer-1
neuron j with the largest `upstream_ratios` (‖ϑ_j‖ over its value at θ*; their maximum is
`upstream_scale`):
- ‖ϑ_j‖ and ‖W^(2)_{:,j}‖ and their product (constant if the move is a rescaling ϑ_j → cϑ_j,
  W^(2)_{:,j} → W^(2)_{:,j}/c);
- W^(2)_{l,j} − W^(2)_{m,j}, entry j of ϑ_l − ϑ_m, whose size the rescaling divides by c;
- the share of samples with z_j = ϑ_j·x̃ > 3 (softplus's linear regime, where softplus(cz)/c ≈ z) and < −3.
Written for diagnosis; the per-step cost is in `bench_mnist.py --only steps`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

import symland as s
from symland._newton_krylov import matrix_free_paths
from symland._path import delta_schedule, effective_params, upstream_ratios

sys.path.insert(0, str(Path(__file__).parent))
from bench_mnist import teacher_and_pair  # noqa: E402

jax.config.update("jax_enable_x64", True)


class _Enough(Exception):
    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--first", type=int, default=18, help="how many δ steps after θ*")
    ap.add_argument("--samples", type=int, default=10000)
    a = ap.parse_args()
    x, labels, name = s.load_image_data("fashion-mnist", n_samples=a.samples)
    x = jnp.asarray(s.project_inputs(x).x)
    teacher, y, l, m = teacher_and_pair(x, labels, 10)
    deltas = float(s.neuron_distance(teacher.params, 2, l, m)) * delta_schedule(1.0, 100, 1e-4)
    unravel = ravel_pytree(teacher.params)[1]
    xt = np.concatenate([np.asarray(x), np.ones((x.shape[0], 1))], axis=1)
    t0 = time.perf_counter()
    print(f"{name}, pair {l}&{m} of hidden layer 2; per step, the layer-1 neuron j that rescaled most:")

    def on_step(i, delta, r):
        theta = effective_params(unravel(jnp.asarray(r.x)), 2, l, m, delta)
        (W1, b1), (W2, _) = theta[0], theta[1]
        rows = np.concatenate([np.asarray(W1), np.asarray(b1)[:, None]], axis=1)
        ratio = np.asarray(upstream_ratios(theta, teacher.params, 2))
        j = int(np.argmax(ratio))
        z = xt @ rows[j]
        out = float(np.linalg.norm(np.asarray(W2)[:, j]))
        print(f"  step {i} δ={delta:.3f} {r.status}: j={j}, scale {ratio[j]:.2f}×, ‖ϑ_j‖ {np.linalg.norm(rows[j]):.2f}, "
              f"‖W2[:,j]‖ {out:.3f}, product {np.linalg.norm(rows[j]) * out:.2f}, "
              f"W2[l,j]−W2[m,j] {float(W2[l, j] - W2[m, j]):+.3f}, z>3 {np.mean(z > 3):.1%}, z<−3 {np.mean(z < -3):.1%} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if i == a.first:
            raise _Enough

    try:
        matrix_free_paths(teacher.model, teacher.params, x, y, 2, [(l, m)], deltas[None, :], loss="nmse",
                          max_steps=300, solver="trust-gn", on_step=on_step)
    except _Enough:
        pass


if __name__ == "__main__":
    main()
