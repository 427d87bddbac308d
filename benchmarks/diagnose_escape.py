"""Diagnose an `escape` step of the softplus toy (README, "What the path finder finds").

Run: .venv/bin/python benchmarks/diagnose_escape.py [--rounds 3] [--budget 20000]

On the 5-neuron softplus toy (seed 1), pair 0 & 1, the fixed-δ problems are
solved along the paper's schedule with a large Newton budget per δ, warm
started, until the first δ that does not converge. That step is then continued
for `rounds` more rounds of `budget` steps. Printed per round: the loss, the
gradient, and the neuron j ≠ l that neuron m approaches, with the two output
weights and a·‖ϑ_m − ϑ_j‖. Output weights that grow without bound at constant
a·‖ϑ_m − ϑ_j‖, with the loss still falling, mean there is no finite
constrained minimiser: m and j form a derivative unit. As an independent
check, scipy's BFGS is run on the same step from the same start.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jax.flatten_util import ravel_pytree

import symland as s
from symland._path import _effective, _rescale_direction, _to_free, delta_schedule
from symland._results import result_name
from symland._solver import minimise_flat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=20000)
    args = ap.parse_args()
    prob = s.toy_problem("softplus", seed=1)
    layer, l, m = 1, 0, 1
    deltas = delta_schedule(float(s.neuron_distance(prob.teacher, layer, l, m)), 200, 1e-4)
    unravel = ravel_pytree(_to_free(prob.teacher, layer, l, m))[1]

    @jax.jit
    def solve(v, delta):
        f = lambda w: s.mse(prob.model, _effective(unravel(w), layer, l, m, delta), prob.x, prob.y)
        return minimise_flat(f, v, gtol=1e-10, max_steps=args.budget)

    def describe(v, delta):
        f = lambda w: s.mse(prob.model, _effective(unravel(w), layer, l, m, delta), prob.x, prob.y)
        lam = np.abs(np.linalg.eigvalsh(np.asarray(jax.hessian(f)(v))))
        theta = _effective(unravel(v), layer, l, m, delta)
        vecs = np.asarray(s.neuron_vectors(theta, layer))
        a = np.asarray(theta[layer][0][0])
        dist = np.linalg.norm(vecs - vecs[m], axis=1)
        dist[[l, m]] = np.inf
        j = int(np.argmin(dist))
        return f"a_m = {a[m]:+.1f}, a_j = {a[j]:+.1f} (j = {j}), ‖ϑ_m − ϑ_j‖ = {dist[j]:.3e}, " \
               f"|a_m|·‖ϑ_m − ϑ_j‖ = {abs(a[m]) * dist[j]:.3f}; |λ| of ∇²L: 2nd smallest " \
               f"{np.sort(lam)[1]:.1e} (the smallest is the exact null direction ‖u‖), largest {lam.max():.1e}"

    theta = prob.teacher
    for i, delta in enumerate(deltas[1:], start=1):
        z = _rescale_direction(_to_free(theta, layer, l, m), layer, m, delta)
        v, fv, gn, steps, status, *_ = solve(ravel_pytree(z)[0], delta)
        print(f"δ step {i} (δ/δ₀ = {delta / deltas[0]:.3f}): {result_name(status)} after {int(steps)} "
              f"steps, L = {float(fv):.7e}, ‖∇L‖∞ = {float(gn):.1e}", flush=True)
        if result_name(status) != "converged":
            break
        theta = _effective(unravel(v), layer, l, m, delta)
    print(f"   {describe(v, delta)}")
    z = _rescale_direction(_to_free(theta, layer, l, m), layer, m, delta)
    f = jax.jit(jax.value_and_grad(
        lambda w: s.mse(prob.model, _effective(unravel(w), layer, l, m, delta), prob.x, prob.y)))
    res = scipy.optimize.minimize(lambda w: tuple(np.asarray(t) for t in f(w)), np.asarray(ravel_pytree(z)[0]),
                                  jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 5000})
    print(f"scipy BFGS from the same start: {res.message} after {res.nit} iterations, L = {res.fun:.7e}; "
          f"{describe(jnp.asarray(res.x), delta)}")
    for r in range(args.rounds):
        v, fv, gn, steps, status, *_ = solve(v, delta)
        print(f"+{(r + 1) * args.budget} steps: {result_name(status)}, L = {float(fv):.7e}, "
              f"‖∇L‖∞ = {float(gn):.1e}; {describe(v, delta)}", flush=True)


if __name__ == "__main__":
    main()
