"""Where the lowest exits of θ*'s basin lead, on teachers whose pairs get no certified saddle (issue 9).

Run: PYTHONPATH=src .venv/bin/python benchmarks/diagnose_exits.py [--activation softplus] [--seeds 4 5]
     [--samples 1000] [--steps 1500]

On the 2-5-1 toy teacher θ* (`toy_problem`), index-1 saddles next to θ* are
searched single-ended by min-mode following (Cerjan & Miller 1981; Wales
2003, *Energy Landscapes*, §6.2.3): from θ* ± h·q_k, for every Hessian
eigenvector q_k at θ*, each step climbs along the lowest Hessian mode and
descends along all others (the |H| metric of `minimise_flat`, the step cut
to length h). All 2P searches run in one `vmap`-ed scan. The end points are
refined by `refine_flat` (LM on ∇L) to ‖∇L‖∞ ≤ 1e−12·max(1, L); those
with dense-Hessian index 1 are kept, one per point. From each, the two
descents along ±(its unstable direction) (`descent_trail`, then
`minimise_flat`) show where the exit leads: back to θ* (aligned neuron by
neuron by the Hungarian method, so a permuted θ* counts), to another
minimum, or into a channel to infinity (Martinelli et al. 2025: the descent
does not converge, an output weight grows and two incoming vectors close
up). Printed per saddle: its loss and the two ends.

Written for diagnosis, not as a library solver: min-mode following finds
*some* index-1 saddles near θ*, not provably the lowest one.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy.optimize import linear_sum_assignment

import symland as s
from symland._mep import descent_trail
from symland._results import result_code, result_name
from symland._saddle import _PairLoss
from symland._solver import minimise_flat, refine_flat
from symland._transition_network import neuron_blocks

TRAIL_STEPS = 2000  # steps of each descent from a saddle, then ≤ 200 Newton steps (with 400, seed 4's descent had not arrived)


def min_mode_following(f, hess, x, *, h, n_steps):
    """`n_steps` steps up the lowest Hessian mode and down all others, each at most `h` long."""

    def body(x, _):
        g = jax.grad(f)(x)
        lam, Q = jnp.linalg.eigh(hess(x))
        gt = Q.T @ g
        mu = 1e-10 * jnp.max(jnp.abs(lam))
        pt = -gt / (jnp.abs(lam) + mu)
        pt = pt.at[0].set(gt[0] / (jnp.abs(lam[0]) + mu))  # uphill along the lowest mode
        p = Q @ pt
        n = jnp.linalg.norm(p)
        return x + jnp.where(n > h, p * h / n, p), None

    return jax.lax.scan(body, x, None, length=n_steps)[0]


def describe_end(x, x0, blocks, out_cols, unravel, loss, status):
    """(loss, status, aligned distance to θ*, largest |a|, smallest gap between incoming vectors)."""
    B0 = np.stack([x0[b] for b in blocks])
    B = np.stack([x[b] for b in blocks])
    C = ((B0[:, None, :] - B[None, :, :]) ** 2).sum(-1)
    r, c = linear_sum_assignment(C)
    (W, b), _ = unravel(jnp.asarray(x))
    T = np.concatenate([np.asarray(W), np.asarray(b)[:, None]], axis=1)  # incoming vector and bias of each neuron
    gaps = np.linalg.norm(T[:, None] - T[None, :], axis=-1) + np.diag(np.full(len(T), np.inf))
    return (loss, status, float(np.sqrt(C[r, c].sum())), float(np.max(np.abs(x[out_cols]))),
            float(gaps.min()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--activation", default="softplus")
    ap.add_argument("--seeds", type=int, nargs="+", default=[4, 5])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args()
    for seed in args.seeds:
        toy = s.toy_problem(args.activation, seed=seed, n_samples=args.samples)
        x0, unravel = ravel_pytree(toy.teacher)
        x0 = np.asarray(x0)
        P = x0.size
        pl, data = _PairLoss(toy.model, "mse", toy.teacher), (toy.x, toy.y)
        f = lambda x: pl(x, data)
        hess = lambda x: pl.hessian(x, data)
        blocks = neuron_blocks(unravel, P, 1)
        out_cols = np.asarray(unravel(jnp.arange(P, dtype=jnp.float64))[1][0]).astype(np.int64).ravel()
        _, Q0 = np.linalg.eigh(np.asarray(hess(jnp.asarray(x0))))
        h = 0.005 * float(np.linalg.norm(x0))
        starts = np.stack([x0 + sg * h * Q0[:, k] for k in range(P) for sg in (1.0, -1.0)])
        X = jax.jit(jax.vmap(lambda x: min_mode_following(f, hess, x, h=h, n_steps=args.steps)))(
            jnp.asarray(starts))
        refine = lambda x: (lambda out: (out.x, result_code(out.status)))(
            refine_flat(f, x, gtol=1e-12, max_steps=100))
        Xr, codes = jax.jit(jax.vmap(refine))(X)
        saddles = []
        for x, st in zip(np.asarray(Xr), np.asarray(codes)):
            lam = np.linalg.eigvalsh(np.asarray(hess(jnp.asarray(x))))
            index = int(np.sum(lam < -1e-8 * np.max(np.abs(lam))))
            if result_name(int(st)) == "converged" and index == 1 and \
                    not any(np.max(np.abs(x - y)) < 1e-6 for y in saddles):
                saddles.append(x)
        print(f"{args.activation} seed {seed}: {len(saddles)} distinct index-1 saddles from {len(starts)} "
              f"min-mode searches of {args.steps} steps", flush=True)
        for xs in sorted(saddles, key=lambda x: float(f(jnp.asarray(x)))):
            lam, Q = np.linalg.eigh(np.asarray(hess(jnp.asarray(xs))))
            ends = []
            for sg in (1.0, -1.0):
                T = descent_trail(f, jnp.asarray(xs + sg * 1e-3 * h * Q[:, 0]), step=h, n_steps=TRAIL_STEPS,
                                  hessian=hess)
                out = minimise_flat(f, T[-1], gtol=1e-12, max_steps=200, hessian=hess)
                ends.append(describe_end(np.asarray(out.x), x0, blocks, out_cols, unravel, float(out.loss),
                                         result_name(int(result_code(out.status)))))
            print(f"  saddle L = {float(f(jnp.asarray(xs))):.4e}, index 1, distance to θ* "
                  f"{np.linalg.norm(xs - x0):.2f}")
            for sg, (L, st, d, amax, gap) in zip("+-", ends):
                where = "θ* (up to a permutation)" if st == "converged" and d < 1e-6 else \
                    "another minimum" if st == "converged" else "no minimum reached"
                print(f"    {sg}: L = {L:.3e} ({st}), aligned distance to θ* {d:.2e}, max |a| {amax:.1f}, "
                      f"closest incoming vectors {gap:.2e}: {where}")


if __name__ == "__main__":
    main()
