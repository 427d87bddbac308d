"""Fig. 3 speed and memory (issue 10): one matrix-free path, loss+gradient vs the matmul bound, memory.

Run: PYTHONPATH=src python benchmarks/bench_mnist.py [--samples 10000] [--H 10] [--steps 100]
     [--max-hvps 60] [--gd-steps 3] [--gd-seconds 60] [--only grad|path|memory|lanczos|solvers|hvp] [--outer 30]
     [--solvers trust-ncg,trust-pcg,trust-gn] [--gn-damping 1e-6] [--fixed-damping]
     [--only steps --first 5 --solver trust-gn --retract on|off|both --split auto|off|both --starts --predictor auto|theta|both
      --tangent on|off|both --profile] [--only merged --rounds 2 --variants 300/60,360/120] [--input-rtol 1e-3]
Ratios are taken in one run on the same machine. Prints one line per figure.
The inputs are projected as `symland mnist` projects them (`project_inputs`, `--input-rtol`,
default `INPUT_RTOL`; 0 keeps the raw data, as every figure in BENCHMARKS.md dated before
2026-12-02 18:00 used).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

import symland as s
import symland._network as network
from symland._data import INPUT_RTOL
from symland._newton_krylov import FIG3_HVP_BUDGET, GN_DAMPING, GN_DAMPING_NEAR, path_problem

jax.config.update("jax_enable_x64", True)


def best_of(fn, repeat=5):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def timer(spent, calls=None):
    """`timed(name, fn)`: fn wrapped so that each call runs to completion (`jax.block_until_ready`) and
    adds its seconds to spent[name] (and 1 to calls[name] when `calls` is given)."""
    def timed(name, fn):
        def run(*args, **kw):
            t = time.perf_counter()
            out = jax.block_until_ready(fn(*args, **kw))
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
            if calls is not None:
                calls[name] = calls.get(name, 0) + 1
            return out
        return run
    return timed


def grad_vs_matmul(x, H):
    """Loss+gradient of 784-H-H-10 vs the best time for its two big products on the same shapes.

    The products x·W₁ᵀ (forward) and Dᵀ·x (backward, the first layer's gradient) carry
    all but ~2 % of the flops; the bound is the faster of numpy's and XLA's time for them
    (run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, which slow numpy here).
    """
    model = s.MLP((x.shape[1], H, H, 10), "softplus")
    p = model.init(jax.random.PRNGKey(0))
    y = model.apply(p, x) + 0.1
    v, unravel = ravel_pytree(p)
    vg = jax.jit(jax.value_and_grad(lambda v, x, y: s.nmse(model, unravel(v), x, y)))
    t_grad = best_of(lambda: jax.block_until_ready(vg(v, x, y)))
    xn = np.asarray(x)
    W = np.random.default_rng(0).standard_normal((H, x.shape[1]))
    D = np.random.default_rng(1).standard_normal((x.shape[0], H))
    t_np = best_of(lambda: (xn @ W.T, D.T @ xn))
    mm = jax.jit(lambda x, W, D: (x @ W.T, D.T @ x))
    c = network.SAMPLE_CHUNKS  # Dᵀx as `layer_product`'s reverse pass forms it: over sample blocks, then summed
    q = x.shape[0] // c
    mm_blocks = jax.jit(lambda x, W, D: (x @ W.T, jnp.einsum("ctj,cti->ji", D[:c * q].reshape(c, q, -1),
                                                             x[:c * q].reshape(c, q, -1)) + D[c * q:].T @ x[c * q:]))
    Wj, Dj = jnp.asarray(W), jnp.asarray(D)
    t_xla = best_of(lambda: jax.block_until_ready(mm(x, Wj, Dj)))
    t_blocks = best_of(lambda: jax.block_until_ready(mm_blocks(x, Wj, Dj)))
    t_mm = min(t_np, t_xla, t_blocks)
    flops = 2 * 2 * x.shape[0] * x.shape[1] * H
    print(f"loss+grad 784-{H}-{H}-10, T={x.shape[0]}: {t_grad * 1e3:.1f} ms; the two big products "
          f"({flops / 1e9:.2f} GFLOP): numpy {t_np * 1e3:.1f} ms, XLA {t_xla * 1e3:.1f} ms, XLA by "
          f"{c} sample blocks {t_blocks * 1e3:.1f} ms "
          f"({flops / t_mm / 1e9:.1f} GFLOP/s at best); ratio bound/actual = {t_mm / t_grad:.2f}")


def teacher_and_pair(x, labels, H, epochs=20):
    """The Fig. 3 setting of every benchmark here: the seed-0 teacher 784-H-H-10, the data relabelled
    by it, and the most cosine-similar pair (l, m) of hidden layer 2."""
    teacher = s.train_teacher(x, labels, H, seed=0, epochs=epochs)
    y = s.relabel(teacher.model, teacher.params, x)
    l, m, _ = s.most_similar_pair(teacher.params, 2)
    return teacher, y, l, m


def index_text(path) -> str:
    """The permutation point's index as a report prints it: "9", or "≥ 9" for a lower bound."""
    index, exact = path.permutation_point_index
    return f"{index}" if exact else f"≥ {index}"


def one_path(x, labels, H, steps, gd_steps, max_hvps, gd_seconds):
    teacher, y, l, m = teacher_and_pair(x, labels, H)
    t = time.perf_counter()
    path = s.find_permutation_path(teacher.model, teacher.params, x, y, 2, l, m, steps=steps,
                                   loss="nmse", method="matrix-free", max_hvps=max_hvps, progress=True)
    dt = time.perf_counter() - t
    st = {k: path.status.count(k) for k in sorted(set(path.status))}
    r = path.permutation_point_report
    print(f"path H={H}, T={x.shape[0]}, {steps} steps, ≤ {max_hvps} HVPs a step: {dt:.1f} s "
          f"(compilation included); statuses {st}; HVPs {int(path.hessians.sum())}; permutation point "
          f"{r.kind}, ‖∇L‖∞ {r.grad_norm:.1e}, spectrum {r.part} ({r.eigenvalues.size} eigenvalues), "
          f"index {index_text(path)}, near-zero {r.nullity}")
    # Plain full-batch GD (the paper's method) on the first δ steps, from the same start, until it
    # reaches the ‖∇L‖∞ that Newton–Krylov reached there (1e-8·max(1, L) where NK converged), or
    # `gd_seconds` run out. GD's rate is 1/λ_max (power iteration on HVPs, not timed).
    prob = path_problem(teacher.model, 2, "nmse", x, precondition=False)
    from symland._path import free_parameters, rescale_direction  # noqa: PLC0415
    for i in range(1, 1 + gd_steps):
        delta = float(path.delta[i])
        v = ravel_pytree(rescale_direction(free_parameters(path.params[i - 1], 2, l, m), 2, m, delta))[0]
        args = (delta, l, m, x, y)
        u = jnp.ones_like(v) / np.sqrt(v.size)
        for _ in range(30):
            w = prob.hvp(v, u, *args)
            lam, u = float(jnp.linalg.norm(w)), w / jnp.linalg.norm(w)
        target = max(float(path.grad_norm[i]), 1e-8 * max(1.0, float(path.loss[i])))
        nk_seconds = dt * path.hessians[i] / max(int(path.hessians.sum()), 1)  # its share of the path
        lr, t, n = 1.0 / max(lam, 1e-12), time.perf_counter(), 0
        while time.perf_counter() - t < gd_seconds:
            f, g, _ = prob.value_grads(v, *args)
            gmax = float(jnp.max(jnp.abs(g)))
            if gmax <= target:
                break
            v, n = v - lr * g, n + 1
        gd = time.perf_counter() - t
        verdict = (f"reached it: {gd / max(nk_seconds, 1e-9):.0f}× Newton–Krylov's time" if gmax <= target
                   else f"not reached in {gd_seconds:g} s (≥ {gd / max(nk_seconds, 1e-9):.0f}× Newton–Krylov's time)")
        print(f"  δ step {i}: target ‖∇L‖∞ {target:.1e} (NK: {path.steps[i]} iterations, {path.hessians[i]} HVPs, "
              f"≈ {nk_seconds:.1f} s, L {path.loss[i]:.3e}); GD {n} iterations, {gd:.1f} s, "
              f"‖∇L‖∞ {gmax:.1e}, L {float(f):.3e}: {verdict}")


def lanczos_budgets(x, labels, H, steps, max_hvps):
    """How many of the 30 smallest Hessian eigenvalues ARPACK converges at a Fig. 3 merged point,
    for a few HVP budgets and tolerances (the point of the budgeted path; seed 0)."""
    teacher, y, l, m = teacher_and_pair(x, labels, H)
    path = s.find_permutation_path(teacher.model, teacher.params, x, y, 2, l, m, steps=steps,
                                   loss="nmse", method="matrix-free", max_hvps=max_hvps)
    point = path.permutation_point
    loss_fn = lambda p: s.nmse(teacher.model, p, x, y)
    print(f"merged point of the H={H} path: ‖∇L‖∞ {path.permutation_point_report.grad_norm:.1e}")
    for k, tol, budget in [(30, 0.0, 1000), (30, 0.0, 2500), (30, 1e-8, 2500), (4, 0.0, 1000)]:
        t = time.perf_counter()
        try:
            eig = s.hessian_spectrum(loss_fn, point, method="lanczos", k=k, tol=tol, max_hvps=budget)
            got = f"all {k} converged, smallest {np.array2string(eig[:3], precision=3)}"
        except s.SpectrumNotConverged as err:
            got = (f"{err.eigenvalues.size} of {k} converged in {err.hvps} HVPs "
                   f"{np.array2string(err.eigenvalues, precision=3)}")
        print(f"  Lanczos k={k}, tol={tol:g}, budget {budget} HVPs: {got}; {time.perf_counter() - t:.1f} s")


def solvers(x, labels, H, steps, outer, methods, gn_damping, fixed_damping=False):
    """The first δ step below the teacher (δ₁ of the `steps` schedule; pair and teacher as in
    `one_path`), minimised without an HVP budget for `outer` trust-region iterations by scipy's
    `trust-ncg`, by `trust-pcg` with the EKFAC preconditioner of `path_problem`, and by
    `trust-gn` (trust-pcg with the exact Gauss–Newton matrix, factorised at the start, and once
    more with GN_DAMPING_NEAR when an inner solve runs out of CG iterations, unless
    `fixed_damping`; its seconds include the factorisations, the first also printed alone)."""
    from symland._newton_krylov import minimise_matrix_free  # noqa: PLC0415
    from symland._path import delta_schedule, free_parameters, rescale_direction  # noqa: PLC0415

    teacher, y, l, m = teacher_and_pair(x, labels, H)
    delta = float(s.neuron_distance(teacher.params, 2, l, m)) * delta_schedule(1.0, steps, 1e-4)[1]
    v0 = ravel_pytree(rescale_direction(free_parameters(teacher.params, 2, l, m), 2, m, delta))[0]
    prob = path_problem(teacher.model, 2, "nmse", x)
    f0, _, g0 = prob.value_grads(prob.to_s(v0), delta, l, m, x, y)
    print(f"first δ step, H={H}, pair {l}&{m}, δ={delta:.3e}: start L {float(f0):.3e}, "
          f"‖∇L‖∞ {float(jnp.max(jnp.abs(g0))):.3f}; {outer} outer iterations each")
    for method in methods:
        factors, extra, note = None, 0.0, ""
        if method == "trust-gn":
            gn = path_problem(teacher.model, 2, "nmse", x, preconditioner="gauss-newton",
                              gn_damping=gn_damping)
            t = time.perf_counter()
            factors = gn.factorise(v0, delta, l, m, x, y)
            extra = time.perf_counter() - t
            note = f" (factorisation {extra:.0f} s, with compilation)"
        near = None
        if method == "trust-gn" and not fixed_damping:  # as matrix_free_paths does
            near = lambda v: gn.factorise(v, delta, l, m, x, y, damping=GN_DAMPING_NEAR)
        r = minimise_matrix_free(gn if method == "trust-gn" else prob, v0, (delta, l, m, x, y),
                                 max_steps=outer, method="trust-pcg" if method == "trust-gn" else method,
                                 factors=factors, refactorise=near)
        if r.factorisations:
            note += f", {r.factorisations} refactorisation(s) with λ factor {GN_DAMPING_NEAR:g}"
        print(f"  {method}: {r.hvps} HVPs, {r.steps} iterations, {r.seconds + extra:.0f} s{note}, "
              f"L {r.loss:.3e}, ‖∇L‖∞ {r.grad_norm:.1e}, {r.status}", flush=True)


def interleaved(a, b, rounds=30):
    """Median times of `a` and `b` and the median of their per-round ratio, calls alternating (after one
    warm-up call each), so that a slow spell of a shared machine hits both."""
    a(), b()
    ta, tb = [], []
    for _ in range(rounds):
        for fn, out in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    ta, tb = np.array(ta), np.array(tb)
    return float(np.median(ta)), float(np.median(tb)), float(np.median(ta / tb))


def hvp_products(x, labels, H, steps):
    """One HVP of the Fig. 3 fixed-δ problem (first δ step after θ*, solver variables): `FlatProblem.hvp`
    (forward-over-reverse, the primal passes every time) against `FlatProblem.hvp_at` (the gradient
    linearised once at the point; its cost printed separately), and one pass x·Wᵀ over the data
    with numpy, all in one run."""
    from symland._path import delta_schedule, free_parameters  # noqa: PLC0415

    teacher, y, l, m = teacher_and_pair(x, labels, H)
    delta = float(s.pair_distance(teacher.params, 2, l, m)) * delta_schedule(1.0, steps, 1e-4)[1]
    problem = path_problem(teacher.model, 2, "nmse", x, preconditioner="gauss-newton")
    v = ravel_pytree(free_parameters(teacher.params, 2, l, m))[0]
    sv = problem.to_s(v)
    t = jax.random.normal(jax.random.PRNGKey(3), sv.shape)
    args = (delta, l, m, x, y)
    t_lin = best_of(lambda: jax.block_until_ready(problem._linearise(sv, *args)), 5)
    at = problem.hvp_at(sv, *args)
    t_hvp, t_at, ratio = interleaved(lambda: jax.block_until_ready(problem.hvp(sv, t, *args)),
                                     lambda: jax.block_until_ready(at(t)))
    err = float(jnp.max(jnp.abs(at(t) - problem.hvp(sv, t, *args))) / jnp.max(jnp.abs(at(t))))
    # the same for the full loss at θ* (`hessian_vector_product`, used by Lanczos) against plain jvp-of-grad
    loss_fn = lambda p: s.nmse(teacher.model, p, x, y)
    theta, unravel = ravel_pytree(teacher.params)
    grad = jax.grad(lambda th: loss_fn(unravel(th)))
    plain = jax.jit(lambda th, u: jax.jvp(grad, (th,), (u,))[1])
    u = jax.random.normal(jax.random.PRNGKey(4), theta.shape)
    hv = s.hessian_vector_product(loss_fn, teacher.params)
    t_plain, t_full, ratio_full = interleaved(lambda: jax.block_until_ready(plain(theta, u)),
                                              lambda: jax.block_until_ready(hv(u)))
    print(f"full loss at θ* (medians of 30 interleaved calls): jvp of grad {t_plain * 1e3:.1f} ms, "
          f"hessian_vector_product {t_full * 1e3:.1f} ms (median ratio {ratio_full:.2f}×)")
    xn, W = np.asarray(x), np.random.default_rng(0).standard_normal((H, x.shape[1]))
    t_pass = best_of(lambda: xn @ W.T, 20)
    # `layer_product` by SAMPLE_CHUNKS sample blocks against the plain h @ W.T (SAMPLE_CHUNKS = 1), one run
    fns = {}
    for c in (network.SAMPLE_CHUNKS, 1):
        old, network.SAMPLE_CHUNKS = network.SAMPLE_CHUNKS, c
        try:  # traced (and compiled) now, under this setting
            p = path_problem(teacher.model, 2, "nmse", x, preconditioner="gauss-newton")
            hv = p.hvp_at(sv, *args)
            vg = jax.jit(lambda sv, p=p: p.value_grads(sv, *args))
            jax.block_until_ready((hv(t), vg(sv)))
            fns[c] = (hv, vg)
        finally:
            network.SAMPLE_CHUNKS = old
    (hv_b, vg_b), (hv_1, vg_1) = fns[network.SAMPLE_CHUNKS], fns[1]
    t_b, t_1, r_hvp = interleaved(lambda: jax.block_until_ready(hv_b(t)), lambda: jax.block_until_ready(hv_1(t)))
    g_b, g_1, r_vg = interleaved(lambda: jax.block_until_ready(vg_b(sv)), lambda: jax.block_until_ready(vg_1(sv)))
    diff = float(jnp.max(jnp.abs(hv_b(t) - hv_1(t))) / jnp.max(jnp.abs(hv_1(t))))
    print(f"layer_product by {network.SAMPLE_CHUNKS} sample blocks / plain (medians of 30 interleaved calls): "
          f"hvp_at {t_b * 1e3:.1f} / {t_1 * 1e3:.1f} ms ({1 / r_hvp:.2f}× faster), loss and gradient "
          f"{g_b * 1e3:.1f} / {g_1 * 1e3:.1f} ms ({1 / r_vg:.2f}× faster); max relative difference {diff:.1e}")
    print(f"HVP 784-{H}-{H}-10, T={x.shape[0]} (medians of 30 interleaved calls): hvp {t_hvp * 1e3:.1f} ms, "
          f"hvp_at {t_at * 1e3:.1f} ms (median ratio {ratio:.2f}×; linearising once {t_lin * 1e3:.1f} ms; "
          f"max relative difference {err:.1e}); "
          f"one pass x·Wᵀ (numpy) {t_pass * 1e3:.1f} ms")


class _Enough(Exception):
    pass


def converged_steps(x, labels, H, steps, first, solver, gauge=None, retract=True, split="auto", starts=False,
                    predictor="auto", profile=False, tangent=True):
    """The first `first` δ steps after θ* of the `steps`-step Fig. 3 path (pair and teacher as in
    `one_path`), each run to convergence (no HVP budget, 300 iterations) by `matrix_free_paths`
    with `solver`; one line per step as it ends (its `on_step` ends the path early). Each line
    also gives `upstream_scale` (how far a layer-1 neuron has rescaled; a step past
    `UPSTREAM_FACTOR` stops, as the solver's `escape`, which the path names `rescaling`),
    ‖Δθ‖ from the previous step and the share of the first layer's ‖ΔW₁‖² that lies in
    the input directions whose singular value is below 1e-3 of the largest (the data's
    near-null space). `gauge`: how δ is measured (None: the paper's δ; `upstream`:
    `symland.pair_distance`). `retract`: matrix_free_paths' trial points along the rescaling
    orbits of layer 1 (trust-gn only). With `first` > `steps` the whole path runs, and the
    permutation point's report (refinement and Lanczos spectrum, timed) is printed.
    `predictor`: matrix_free_paths' predictor ("auto": also in the rescaling coordinates of
    layer 1, with trust-gn and `retract`; "theta": θ only). `tangent`:
    matrix_free_paths' tangent of the path at θ* (trust-gn; `path_tangent`). `profile`: the
    time spent in each of the fixed-δ problem's callables (factorisations, HVPs, preconditioner,
    loss and gradient, retraction, changes of variables), each call timed to completion, printed at
    the end; the rest is the solver's own work and the path's bookkeeping. Returns the seconds
    taken."""
    from symland._newton_krylov import matrix_free_paths  # noqa: PLC0415
    from symland._path import delta_schedule, effective_params, upstream_gauge, upstream_scale  # noqa: PLC0415

    teacher, y, l, m = teacher_and_pair(x, labels, H)
    if gauge == "upstream":  # resolved once, as matrix_free_paths does: the same metric C
        gauge = upstream_gauge(teacher.model, teacher.params, x, 2)
    deltas = float(s.pair_distance(teacher.params, 2, l, m, gauge)) * delta_schedule(1.0, steps, 1e-4)
    _, sv, vt = np.linalg.svd(np.asarray(x), full_matrices=False)
    low = vt[sv / sv[0] < 1e-3]
    unravel = ravel_pytree(teacher.params)[1]
    t0 = last = time.perf_counter()
    totals = {"hvps": 0, "factorisations": 0}
    prev = teacher.params

    def on_step(i, delta, r):
        nonlocal last, prev
        now = time.perf_counter()
        totals["hvps"] += r.hvps
        totals["factorisations"] += r.factorisations
        theta = effective_params(unravel(jnp.asarray(r.x)), 2, l, m, delta, gauge)
        moved = float(jnp.linalg.norm(ravel_pytree(theta)[0] - ravel_pytree(prev)[0]))
        up = float(upstream_scale(theta, teacher.params, 2))
        dw = np.asarray(theta[0][0] - prev[0][0])
        share = float(np.sum((dw @ low.T) ** 2) / max(np.sum(dw ** 2), 1e-300))
        prev = theta
        print(f"  step {i} δ={delta:.3e}: {r.status}, L {r.loss:.3e}, ‖∇L‖∞ {r.grad_norm:.1e}, "
              f"{r.steps} iterations, {r.hvps} HVPs, {r.factorisations} factorisation(s), {r.substeps} sub-step(s), "
              f"{now - last:.1f} s (total {now - t0:.0f} s); upstream scale {up:.2f}×, ‖Δθ‖ {moved:.2f}, "
              + (f"{share:.1%} of ‖ΔW₁‖² in the {low.shape[0]} near-null input directions" if moved > 1e-12
                 else "no move"), flush=True)
        last = now
        if i == first:
            raise _Enough

    print(f"converged δ steps, H={H}, pair {l}&{m}, {solver}, gauge {'upstream' if gauge else None}, "
          f"retract {retract}, split {split}, predictor {predictor}, first {first} of {steps}:")
    import symland._newton_krylov as nk  # noqa: PLC0415

    solve, prev_loss = nk.minimise_matrix_free, [0.0]

    def logged(problem, v0, args, **kw):  # --starts: each solve's start against the last solve's loss
        f0 = float(problem.value_grads(problem.to_s(jnp.asarray(v0)), *args)[0])
        print(f"    solve at δ={float(args[0]):.4e} starts at L {f0:.3e}, {f0 / prev_loss[0]:.3g}× the last solve's "
              f"{prev_loss[0]:.3e}" if prev_loss[0] > 0 else f"    solve at δ={float(args[0]):.4e} starts at L {f0:.3e}",
              flush=True)
        r = solve(problem, v0, args, **kw)
        prev_loss[0] = r.loss
        return r

    spent, calls, make_problem = {}, {}, nk.path_problem
    timed = timer(spent, calls)  # --profile

    def profiled_problem(*args, **kw):
        problem = make_problem(*args, **kw)
        for name in ("factorise", "apply_preconditioner", "value_grads", "retract", "to_s", "to_v"):
            if getattr(problem, name, None) is not None:
                setattr(problem, name, timed(name, getattr(problem, name)))
        hvp_at = problem.hvp_at
        problem.hvp_at = lambda *a: timed("hvp", timed("linearise (hvp_at)", hvp_at)(*a))
        return problem

    if starts:
        nk.minimise_matrix_free = logged
    if profile:
        nk.path_problem = profiled_problem
    try:
        path, = matrix_free_paths(teacher.model, teacher.params, x, y, 2, [(l, m)], deltas[None, :], loss="nmse",
                                  max_steps=300, solver=solver, gauge=gauge, retract=retract, split=split,
                                  predictor=predictor, tangent=tangent, on_step=on_step)
        r = path.permutation_point_report  # first > steps: the whole path, the permutation point included
        e = path.even_block
        print(f"  permutation point (refined matrix-free, σ-odd block exactly, even block by "
              f"{'Lanczos' if e is None else 'LOBPCG'}; "
              f"{time.perf_counter() - last:.0f} s after the last δ step): L {r.loss:.4e}, ‖∇L‖∞ {r.grad_norm:.1e} "
              f"(gtol {r.gtol:g}), {r.kind}, index {index_text(path)}, {r.nullity} near-zero of the "
              f"{r.eigenvalues.size} eigenvalues found at zero tolerance {r.zero_tol:.1e} ({r.part})"
              + ("" if e is None else f"; even block ({e.status}, {e.hvps} HVPs, {e.n_flat} exactly flat "
                 f"directions): {np.array2string(e.eigenvalues, precision=3, max_line_width=10**4)}, residuals "
                 f"{np.array2string(e.residuals, precision=1, max_line_width=10**4)}")
              + f"; §4.2 checks {path.checks()}")
    except _Enough:
        pass
    finally:
        nk.minimise_matrix_free = solve
        nk.path_problem = make_problem
    seconds = time.perf_counter() - t0
    print(f"  steps 0–{first}: {seconds:.0f} s, {totals['hvps']} HVPs, "
          f"{totals['factorisations']} factorisation(s)")
    if profile:
        for name in sorted(spent, key=spent.get, reverse=True):
            print(f"    {name}: {spent[name]:.1f} s ({spent[name] / seconds:.0%}) in {calls[name]} calls, "
                  f"{1e3 * spent[name] / calls[name]:.1f} ms each")
        print(f"    the rest (solver, predictor, bookkeeping, this script's per-step diagnostics): "
              f"{seconds - sum(spent.values()):.1f} s")
    return seconds


def merged_start(x, labels, H, rounds, variants=()):
    """The δ = 0 solve of the Fig. 3 pair from θ* with the pair merged (where `matrix_free_paths` starts
    it after a run-off), as `matrix_free_paths` runs it (trust-gn at `GN_DAMPING_NEAR`, trial points
    along the rescaling orbits, refactorising after `GN_SWITCH_HVPS`), without and with the
    preconditioned L-BFGS phase (`LBFGS_ITERATIONS`, `LBFGS_REFACTORISE`), alternately `rounds` times;
    one line per solve, then the ratio of the medians. Each solve builds its own factors (counted).
    `variants`: (iterations, refactorise every) pairs of the phase, each solved once after them."""
    import symland._newton_krylov as nk  # noqa: PLC0415
    from symland._path import free_parameters, rescale_direction  # noqa: PLC0415

    teacher, y, l, m = teacher_and_pair(x, labels, H)
    norm = float(s.pair_distance(teacher.params, 2, l, m, None))
    v0 = ravel_pytree(rescale_direction(free_parameters(teacher.params, 2, l, m, None), 2, m, norm))[0]
    problem = path_problem(teacher.model, 2, "nmse", x, preconditioner="gauss-newton", retract=True)
    args = (0.0, l, m, x, y)
    build = lambda v: problem.factorise(v, *args, damping=GN_DAMPING_NEAR)
    print(f"δ = 0 from the merged θ*, H={H}, pair {l}&{m}: L {float(problem.value_grads(problem.to_s(v0), *args)[0]):.4e}")
    solve = lambda n: nk.minimise_matrix_free(problem, v0, args, gtol=nk.NK_GTOL, max_steps=300, method="trust-pcg",
                                              max_cg=nk.CG_MAX_ITERATIONS, factors=lambda: build(v0),
                                              refactorise=build, refactorise_after=nk.GN_SWITCH_HVPS, lbfgs=n)
    times = {0: [], nk.LBFGS_ITERATIONS: []}
    for _ in range(rounds):
        for n in times:
            r = solve(n)
            times[n].append(r.seconds)
            print(f"  lbfgs={n}: {r.status}, L {r.loss:.6e}, ‖∇L‖∞ {r.grad_norm:.1e}, {r.lbfgs} L-BFGS and "
                  f"{r.steps} trust-region iterations, {r.hvps} HVPs, {r.gradients} gradients, "
                  f"{r.factorisations} factorisation(s), {r.seconds:.1f} s", flush=True)
    t0, t1 = (float(np.median(t)) for t in times.values())
    print(f"  median {t0:.1f} s without, {t1:.1f} s with the L-BFGS phase: {t0 / t1:.2f}×")
    default = nk.LBFGS_REFACTORISE
    try:
        for n, every in variants:
            nk.LBFGS_REFACTORISE = every
            r = solve(n)
            print(f"  lbfgs={n}, factors every {every}: {r.status}, L {r.loss:.6e}, ‖∇L‖∞ {r.grad_norm:.1e}, "
                  f"{r.steps} trust-region iterations, {r.hvps} HVPs, {r.factorisations} factorisation(s), "
                  f"{r.seconds:.1f} s", flush=True)
    finally:
        nk.LBFGS_REFACTORISE = default


def memory(x, labels, H, max_hvps):
    teacher, y, l, m = teacher_and_pair(x, labels, H, epochs=1)
    t = time.perf_counter()
    path = s.find_permutation_path(teacher.model, teacher.params, x, y, 2, l, m, steps=2, loss="nmse",
                                   method="matrix-free", max_hvps=max_hvps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"peak RSS, H={H} ({teacher.model.n_params} parameters) matrix-free path (2 steps + permutation "
          f"point and its Lanczos spectrum, {time.perf_counter() - t:.0f} s): {peak:.2f} GB; "
          f"statuses {path.status}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--H", type=int, default=10)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--gd-steps", type=int, default=3)
    ap.add_argument("--gd-seconds", type=float, default=60.0)
    ap.add_argument("--max-hvps", type=int, default=FIG3_HVP_BUDGET)
    ap.add_argument("--only", choices=("grad", "path", "memory", "lanczos", "solvers", "steps", "hvp", "merged"))
    ap.add_argument("--rounds", type=int, default=2, help="--only merged: solves of each kind, alternately")
    ap.add_argument("--variants", default="", help="--only merged: L-BFGS phases N/K (N iterations, factors "
                    "every K), comma-separated, each solved once after the rounds")
    ap.add_argument("--first", type=int, default=5,
                    help="--only steps: how many δ steps after θ* (more than --steps: the whole path and its permutation point)")
    ap.add_argument("--solver", default="trust-gn", help="--only steps: matrix_free_paths' solver")
    ap.add_argument("--gauge", choices=("paper", "upstream"), default="paper",
                    help="--only steps: how δ is measured (symland.pair_distance)")
    ap.add_argument("--retract", choices=("on", "off", "both"), default="on",
                    help="--only steps: trust-gn's trial points along the rescaling orbits "
                         "(both: on, then off; the second run reuses compilations)")
    ap.add_argument("--split", choices=("auto", "off", "both"), default="auto",
                    help="--only steps: matrix_free_paths' continuation sub-steps (both: auto, then off)")
    ap.add_argument("--predictor", choices=("auto", "theta", "both"), default="auto",
                    help="--only steps: matrix_free_paths' predictor; both: auto, then theta, in one run")
    ap.add_argument("--tangent", choices=("on", "off", "both"), default="on",
                    help="--only steps: matrix_free_paths' tangent at θ* (trust-gn); both: on, then off, in one run")
    ap.add_argument("--profile", action="store_true",
                    help="--only steps: the time spent in each of the fixed-δ problem's callables")
    ap.add_argument("--starts", action="store_true",
                    help="--only steps: print each solve's starting loss against the last solve's (one more loss each)")
    ap.add_argument("--outer", type=int, default=30, help="--only solvers: trust-region iterations")
    ap.add_argument("--solvers", default="trust-ncg,trust-pcg,trust-gn",
                    help="--only solvers: which, comma-separated")
    ap.add_argument("--gn-damping", type=float, default=GN_DAMPING, help="--only solvers: trust-gn's λ factor")
    ap.add_argument("--input-rtol", type=float, default=INPUT_RTOL,
                    help="project_inputs' rtol (0: the raw data)")
    ap.add_argument("--fixed-damping", action="store_true",
                    help="--only solvers: trust-gn keeps its λ (no GN_DAMPING_NEAR refactorisation)")
    a = ap.parse_args()
    x, labels, name = s.load_image_data("fashion-mnist", n_samples=a.samples)
    projection = s.project_inputs(x, a.input_rtol)
    x = projection.x
    print(f"{name}; inputs projected off {projection.dropped} directions (σ < {a.input_rtol:g} σ_max, "
          f"{projection.energy:.1e} of the energy)")
    xj = jnp.asarray(x)
    if a.only in (None, "grad"):
        grad_vs_matmul(xj, 25)
    if a.only in (None, "path"):
        one_path(xj, labels, a.H, a.steps, a.gd_steps, a.max_hvps, a.gd_seconds)
    if a.only == "solvers":  # not part of the default run
        solvers(xj, labels, a.H, a.steps, a.outer, a.solvers.split(","), a.gn_damping, a.fixed_damping)
    if a.only == "steps":  # not part of the default run
        gauge = None if a.gauge == "paper" else a.gauge
        # One option may be "both": its two values in one run, the first as measured, then the second
        # (the first of tangent, predictor, split and retract that is "both"; the others as given).
        chosen = {"tangent": a.tangent, "predictor": a.predictor, "split": a.split, "retract": a.retract}
        pairs = {"tangent": ("on", "off"), "predictor": ("auto", "theta"), "split": ("auto", "off"),
                 "retract": ("on", "off")}
        both = next((k for k in pairs if chosen[k] == "both"), None)
        seconds = {}
        for value in (pairs[both] if both else (None,)):
            o = dict(chosen, **({both: value} if both else {}))
            seconds[value] = converged_steps(xj, labels, a.H, a.steps, a.first, a.solver, gauge, o["retract"] == "on",
                                             {"auto": "auto", "off": None}[o["split"]], a.starts, o["predictor"],
                                             a.profile, o["tangent"] == "on")
        if both:
            first, second = pairs[both]
            print(f"{both} {first} / {second}: {seconds[first]:.0f} s / {seconds[second]:.0f} s = "
                  f"{seconds[second] / seconds[first]:.2f}× faster")
    if a.only == "merged":  # not part of the default run
        merged_start(xj, labels, a.H, a.rounds, [tuple(map(int, v.split("/"))) for v in a.variants.split(",") if v])
    if a.only == "hvp":  # not part of the default run
        hvp_products(xj, labels, a.H, a.steps)
    if a.only == "lanczos":  # not part of the default run: it repeats the path
        lanczos_budgets(xj, labels, a.H, a.steps, a.max_hvps)
    if a.only in (None, "memory"):
        memory(xj, labels, 25, a.max_hvps)


if __name__ == "__main__":
    main()
