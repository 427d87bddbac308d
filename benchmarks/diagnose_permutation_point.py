"""The index of the Fig. 3 permutation point, the even block included (issue 10).

Run: PYTHONPATH=src .venv/bin/python benchmarks/diagnose_permutation_point.py [--k 16] [--samples 10000]

`matrix_free_paths` reports the permutation point θ_{l⇔m} by `classify_permutation_point`: the
σ_{l⇔m}-odd Hessian block exactly, the even block by Lanczos, which on the Fig. 3 pair converges
none of its smallest eigenvalues, so the index is only "≥ 9". This script decides the even block
another way, and checks the way on a small network first (`--toy-only` stops there).

At δ = 0 the free parameters v of the fixed-δ problem (`symland._path.free_parameters`: row m of
layer k replaced by a direction u that δ = 0 multiplies by zero) map linearly onto θ: θ = Tv, with
ϑ_m = ϑ_l and the output weights a_l, a_m free. So the free problem's Hessian is H_v = Tᵀ∇²L T.
At a σ-fixed θ (ϑ_m = ϑ_l, a_l = a_m) ∇²L is block diagonal in σ-even and σ-odd vectors, and
T's range is the even subspace plus the output differences a_l − a_m, along which the loss is
flat when ϑ_m = ϑ_l. So H_v is congruent to (even block) ⊕ 0, the zeros being the n_{k−1} + 1
entries of u and the n_{k+1} output differences: deflating those directions leaves a matrix with
the even block's inertia (Sylvester's law; the solver's whitening of layer 1 is one more
congruence). Its smallest eigenvalues are found by LOBPCG (`scipy.sparse.linalg.lobpcg`)
preconditioned by the fixed-δ problem's exact Gauss–Newton factors (`path_problem(...).factorise`,
λ = `GN_DAMPING_NEAR`), which Lanczos on the Hessian alone does not have. The eigenvalues are of
the congruent matrix, not of ∇²L, so only their signs (the inertia) carry over.

1. Toy check (dense): on a random 3-4-3-2 softplus network made σ-fixed, the inertia of the full
   Hessian equals that of the odd block (`odd_block_spectrum`) plus that of the deflated H_v.
2. Fig. 3 (the setting of `bench_mnist.py --only steps --first 101`, δ schedule [δ₀, 0], so that
   δ = 0 starts from θ* with the pair merged, as after the run-off): the path's permutation point,
   its report, then the k smallest eigenvalues of the deflated H_v and their residuals.
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
from jax.flatten_util import ravel_pytree
from scipy.sparse.linalg import LinearOperator, lobpcg

import symland as s
from symland._newton_krylov import GN_DAMPING_NEAR, matrix_free_paths, path_problem
from symland._path import effective_params
from symland._plateau import odd_block_spectrum

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, str(Path(__file__).parent))
from bench_mnist import teacher_and_pair  # noqa: E402


def free_at_zero(params, layer, l, m):
    """The δ = 0 free parameters at a σ-fixed point: row m of `layer` replaced by a unit direction u
    (any: δ = 0 multiplies it by zero)."""
    out = list(params)
    W, b = params[layer - 1]
    u = jnp.ones(W.shape[1]) / np.sqrt(W.shape[1])
    out[layer - 1] = (W.at[m].set(u), b.at[m].set(0.0))
    return out


def flat_directions(params, layer, l, m):
    """Orthonormal columns (flat v) spanning u's entries and the output differences a_l − a_m."""
    flat, unravel = ravel_pytree(params)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    cols = []
    W, b = params[layer - 1]
    for j in range(W.shape[1] + 1):
        z = list(zeros)
        Wz, bz = z[layer - 1]
        z[layer - 1] = (Wz.at[m, j].set(1.0), bz) if j < W.shape[1] else (Wz, bz.at[m].set(1.0))
        cols.append(ravel_pytree(z)[0])
    for o in range(params[layer][0].shape[0]):
        z = list(zeros)
        Wz, bz = z[layer]
        z[layer] = (Wz.at[o, l].set(2 ** -0.5).at[o, m].set(-2 ** -0.5), bz)
        cols.append(ravel_pytree(z)[0])
    return np.stack([np.asarray(c) for c in cols], axis=1)


def inertia(eigenvalues, tol):
    e = np.asarray(eigenvalues)
    return int((e < -tol).sum()), int((np.abs(e) <= tol).sum()), int((e > tol).sum())


def toy_check():
    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(0), (60, 3))
    y = jnp.sin(x[:, :2]) + 0.3
    p = model.init(jax.random.PRNGKey(3))
    layer, l, m = 2, 0, 2
    (W2, b2), (W3, b3) = p[1], p[2]
    a = 0.5 * (W3[:, l] + W3[:, m])
    point = [p[0], (W2.at[m].set(W2[l]), b2.at[m].set(b2[l])), (W3.at[:, l].set(a).at[:, m].set(a), b3)]
    loss = lambda q: s.mse(model, q, x, y)
    theta, unravel = ravel_pytree(point)
    full = np.linalg.eigvalsh(np.asarray(jax.hessian(lambda t: loss(unravel(t)))(theta)))
    odd = np.asarray(odd_block_spectrum(loss, point, layer, l, m))
    free = free_at_zero(point, layer, l, m)
    v, unv = ravel_pytree(free)
    Hv = np.asarray(jax.hessian(lambda w: loss(effective_params(unv(w), layer, l, m, 0.0, None)))(v))
    B = flat_directions(free, layer, l, m)
    Q = np.linalg.svd(np.eye(v.size) - B @ B.T)[0][:, :v.size - B.shape[1]]
    deflated = np.linalg.eigvalsh(Q.T @ Hv @ Q)
    tol = 1e-10
    summed = tuple(int(i + j) for i, j in zip(inertia(odd, tol), inertia(deflated, tol)))
    print(f"toy 3-4-3-2, σ-fixed point, pair {l}&{m} of layer {layer}: ‖H_v B‖ = {np.abs(Hv @ B).max():.1e}; "
          f"inertia (negative, zero, positive) of ∇²L {inertia(full, tol)}, odd block {inertia(odd, tol)} + "
          f"deflated H_v {inertia(deflated, tol)} = {summed}", flush=True)
    if summed != inertia(full, tol):
        raise SystemExit("the congruence does not hold on the toy")


def fig3(k, samples):
    x, labels, name = s.load_image_data("fashion-mnist", n_samples=samples)
    x = jnp.asarray(s.project_inputs(x, 1e-3).x)
    teacher, y, l, m = teacher_and_pair(x, labels, 10)
    d0 = float(s.pair_distance(teacher.params, 2, l, m, None))
    t0 = time.perf_counter()
    path, = matrix_free_paths(teacher.model, teacher.params, x, y, 2, [(l, m)], d0 * np.array([[1.0, 0.0]]),
                              loss="nmse", max_steps=300, solver="trust-gn")
    r = path.permutation_point_report
    print(f"{name}, pair {l}&{m}: permutation point in {time.perf_counter() - t0:.0f} s, L {float(r.loss):.6e}, "
          f"‖∇L‖∞ {float(r.grad_norm):.1e}; report: {r.kind}, index ≥ {r.index}, part {r.part}", flush=True)
    odd = np.asarray(odd_block_spectrum(path.loss_fn, path.permutation_point, 2, l, m))
    free = free_at_zero(path.permutation_point, 2, l, m)
    v = ravel_pytree(free)[0]
    B = flat_directions(free, 2, l, m)
    problem = path_problem(teacher.model, 2, "nmse", x, preconditioner="gauss-newton")
    args = (0.0, l, m, x, y)
    t0 = time.perf_counter()
    factors = problem.factorise(v, *args, damping=GN_DAMPING_NEAR)
    sv = problem.to_s(v)  # layers ≥ 2 are the same in s and v, so B is too
    hvp = problem.hvp_at(sv, *args)
    count = {"hvps": 0}
    deflate = lambda X: X - B @ (B.T @ X)

    def H(X):
        X = deflate(np.asarray(X).reshape(v.size, -1))
        count["hvps"] += X.shape[1]
        return deflate(np.stack([np.asarray(hvp(jnp.asarray(c))) for c in X.T], axis=1))

    def M(X):
        X = deflate(np.asarray(X).reshape(v.size, -1))
        return deflate(np.stack([np.asarray(problem.apply_preconditioner(factors, jnp.asarray(c))) for c in X.T],
                                axis=1))

    flatness = max(float(jnp.max(jnp.abs(hvp(jnp.asarray(c))))) for c in B.T)
    print(f"‖H_v B‖ = {flatness:.1e} over the {B.shape[1]} flat directions", flush=True)
    X0 = M(np.random.default_rng(0).standard_normal((v.size, k)))
    op = lambda f: LinearOperator((v.size, v.size), matvec=f, matmat=f, dtype=float)
    vals, vecs, hist = lobpcg(op(H), X0, M=op(M), largest=False, tol=1e-9, maxiter=100,
                              retResidualNormsHistory=True)
    res = np.linalg.norm(H(vecs) - vecs * vals, axis=0)
    order = np.argsort(vals)
    print(f"LOBPCG, {k} smallest of the deflated H_v: {len(hist)} iterations, {count['hvps']} HVPs, "
          f"{time.perf_counter() - t0:.0f} s (factorisation included)", flush=True)
    for i in order:
        print(f"  {vals[i]: .4e}  residual {res[i]:.1e}")
    # a unit Ritz vector with residual r has an eigenvalue within ‖r‖ of its value: its sign is
    # certain where ‖r‖ < |value|
    print(f"odd block (negative, zero, positive) at the report's zero tolerance {r.zero_tol:.1e}: "
          f"{inertia(odd, r.zero_tol)}; even block: {int((vals < 0).sum())} negative among its {k} smallest "
          f"(off the flat directions); signs certain by residual: {bool(np.all(res < np.abs(vals)))}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--toy-only", action="store_true")
    a = ap.parse_args()
    if a.k < 1:
        ap.error("--k: must be a positive number of eigenvalues")
    toy_check()
    if not a.toy_only:
        fig3(a.k, a.samples)


if __name__ == "__main__":
    main()
