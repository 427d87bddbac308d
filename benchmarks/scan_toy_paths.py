"""Which pairs of the Fig. 1 toy have a permutation path that converges at every δ step?

Run: .venv/bin/python benchmarks/scan_toy_paths.py [--activations softplus,relu] [--seeds 1:20]
     [--teacher fig1|pos|unit|unitpos|ring]

For each activation and `toy_problem` seed, all 10 pairs are solved in one
batched call on a screening schedule (50 log-spaced δ to 1e−4·δ₀ and δ = 0,
≤ 50 Newton steps per δ); pairs whose 51 steps all converge are re-run on the
full schedule (200 steps, the default ≤ 200 Newton steps) to confirm. Prints per seed the
number of converged steps per pair, then a summary with the failure reasons.
The numbers are quoted in README.md ("What the path finder finds").

`--teacher` picks the teacher distribution: `fig1` is `toy_problem`
(W ~ N(0, 4I), b ~ N(0, 1), a = ±U[0.5, 1.5]); the others test whether a
different teacher makes the paths better posed: `pos` (fig1 with a > 0),
`unit` (W ~ N(0, I), b ~ N(0, ¼), a = ±U[0.5, 1.5]), `unitpos` (unit with
a > 0), `ring` (‖W_i‖ = 2 at a uniform angle, b ~ U[−1, 1], a = ±1).
"""

from __future__ import annotations

import argparse
import collections
import time

import jax
import jax.numpy as jnp
import numpy as np

import symland as s

TEACHERS = ("fig1", "pos", "unit", "unitpos", "ring")


def teacher_problem(kind: str, activation: str, seed: int) -> s.ToyProblem:
    """The Fig. 1 toy (5 hidden neurons, 1000 samples of N(0, I₂)) with teacher `kind`."""
    if kind == "fig1":
        return s.toy_problem(activation, seed=seed)
    model = s.MLP((2, 5, 1), activation=activation)
    k_w, k_b, k_a, k_s = jax.random.split(jax.random.PRNGKey(seed), 4)
    sign = jnp.where(jax.random.bernoulli(k_s, 0.5, (1, 5)), 1.0, -1.0)
    size = jax.random.uniform(k_a, (1, 5), minval=0.5, maxval=1.5)
    if kind == "ring":
        angle = jax.random.uniform(k_w, (5,), maxval=2 * np.pi)
        W = 2.0 * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
        b, a = jax.random.uniform(k_b, (5,), minval=-1.0, maxval=1.0), sign
    else:
        scale = 2.0 if kind == "pos" else 1.0
        W = scale * jax.random.normal(k_w, (5, 2))
        b = (1.0 if kind == "pos" else 0.5) * jax.random.normal(k_b, (5,))
        a = size if kind in ("pos", "unitpos") else sign * size
    teacher = [(W, b), (a, jnp.zeros(1))]
    x, y = s.gaussian_teacher_data(model, teacher, 1000, seed=seed + 1)
    return s.ToyProblem(model, teacher, x, y, seed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--activations", default="softplus,relu")
    ap.add_argument("--seeds", default="1:20", help="first:last, inclusive")
    ap.add_argument("--teacher", default="fig1", choices=TEACHERS)
    args = ap.parse_args()
    lo, hi = (int(v) for v in args.seeds.split(":"))
    for act in args.activations.split(","):
        reasons, full, n_pairs = collections.Counter(), [], 0
        for seed in range(lo, hi + 1):
            p = teacher_problem(args.teacher, act, seed)
            t = time.perf_counter()
            paths = s.find_permutation_paths(p.model, p.teacher, p.x, p.y, 1, "all", steps=50,
                                             max_newton_steps=50)
            counts = [int(q.converged.sum()) for q in paths]
            print(f"{act} seed {seed:2d}: converged steps per pair {counts} of 51 "
                  f"({time.perf_counter() - t:.1f} s)", flush=True)
            n_pairs += len(paths)
            for q in paths:
                reasons.update(r for r in q.status if r != "converged")
                if q.all_converged:
                    c = s.find_permutation_path(p.model, p.teacher, p.x, p.y, 1, q.l, q.m, steps=200)
                    full.append((seed, (q.l, q.m), int(c.converged.sum()), c.permutation_point_report.loss,
                                 c.permutation_point_report.index))
        confirmed = [f for f in full if f[2] == 201]
        print(f"{args.teacher} {act}: {len(confirmed)}/{n_pairs} pairs converge at every step (201/201 on the full "
              f"schedule); failed screening steps by reason {dict(reasons)}")
        for seed, pair, n, loss, index in full:
            print(f"   seed {seed} pair {pair}: {n}/201, permutation point L = {loss:.4g}, index {index}")


if __name__ == "__main__":
    main()
