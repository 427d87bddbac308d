"""Applying the Gauss–Newton preconditioner's factor (issue 10): BLAS (NumPy, trmv, trsv) against XLA.

Run: PYTHONPATH=src python benchmarks/bench_gn_apply.py [--n 8070] [--blocks] [--factorise N [--mixed both]]
`gauss_newton_preconditioner` applies M̃⁻¹r = L⁻ᵀ(L⁻¹r) with the dense Cholesky factor L of n × n
(n = 8,070 for 784-10-10-10), here of M̃ = AAᵀ/n + I (A standard normal). Prints the time of LAPACK
`potrf` (the factorisation) and of `trtri` (L⁻¹), then the best of 5 times for each
BLAS and XLA product and solve, and for the library's `apply` (`cholesky_panel_solve` on
`cholesky_panels`: float32, the default, and float64; until the panels it was two BLAS `strsv` on
one thread), and the panel solve with panels of 512, 1,024 (`GN_PANEL`) and 2,048 rows, in one
run. Then the cost of one
preconditioned CG iteration, an HVP of the 784-10-10-10 fixed-δ problem (10,000 Fashion-MNIST
samples, random network; linearised, as the solver's) followed by the library's `apply`, and
followed by two `strsv` on one BLAS thread (mean of 20 pairs each), and one factorisation of that problem
(`factorise`, after a first call that compiles) with layer 1's Gauss–Newton blocks multiplied in float32
(`single`, the default at this size) and in float64, each with the time of the blocks alone.
With `--blocks`, only layer 1's 55 blocks, by `polarised_grams` (one BLAS syrk each) and by XLA
products of their upper block triangles (the library before), interleaved in one run.
With `--factorise N`, only N factorisations at `GN_DAMPING_NEAR` of the Fig. 3 problem on the inputs
as `symland mnist` projects them, each at another point, after one that compiles: the median and
the best, and the mean time of each part (the Gauss–Newton blocks, LAPACK `dpotrf`, `spotrf` and
`strtrs`, the float32 panels, the rest); with `--mixed both`, the float64 factor (`GN_MIXED` off)
and the mixed-precision one (on) alternately at each point, and the ratio of their medians.
Compare two commits by running this file against each commit's `src` (PYTHONPATH) alternately.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.linalg.blas as blas
import jax
import jax.numpy as jnp

import symland as s
from symland._newton_krylov import (GN_PANEL, _gauss_newton_blocks, cholesky_panel_solve, cholesky_panels,
                                    gauss_newton_preconditioner, input_whitening, path_problem)
from bench_mnist import best_of, timer  # benchmarks/ is on sys.path when this script runs

jax.config.update("jax_enable_x64", True)


def best_ms(fn, repeat=5):
    return 1e3 * best_of(fn, repeat)


def upper_triangle_grams(X, A, pairs, parts=4):
    """The library's layer-1 blocks before `polarised_grams`, in XLA: for each pair, Xᵀ diag(a_jk) X
    from the products of its upper triangle of `parts` column blocks (5/8 of the flops for 4), mirrored."""
    n = X.shape[1]
    cuts = [round(i * n / parts) for i in range(parts + 1)]

    def gram(a):
        XD = X * a[:, None]
        b = {(i, j): XD[:, cuts[i]:cuts[i + 1]].T @ X[:, cuts[j]:cuts[j + 1]] for i in range(parts) for j in range(i, parts)}
        return jnp.block([[b[i, j] if i <= j else b[j, i].T for j in range(parts)] for i in range(parts)])

    return jax.lax.map(lambda jk: gram(A[:, jk[0], jk[1]]), jnp.asarray(pairs))


def gram_blocks(repeat=3):
    """Layer 1's float32 Gauss–Newton blocks of the 784-10-10-10 problem (split layer 2, 10,000
    Fashion-MNIST samples, random network): the 55 weighted Grams Xᵀ diag(a_jk) X by the library's
    `polarised_grams` (one BLAS syrk each) and by XLA products of their upper block triangles (the
    library before), interleaved, best of `repeat` each after a call that compiles; and their largest
    difference, relative to the largest entry of the diagonal blocks."""
    import time  # noqa: PLC0415

    from jax.flatten_util import ravel_pytree  # noqa: PLC0415

    from symland._newton_krylov import _output_jacobians, polarised_grams  # noqa: PLC0415
    from symland._network import ACTIVATIONS  # noqa: PLC0415

    x = jnp.asarray(s.load_image_data("fashion-mnist", n_samples=10_000)[0])
    model = s.MLP((784, 10, 10, 10), "softplus")
    p = model.init(jax.random.PRNGKey(0))
    P, _ = input_whitening(x)
    xt = np.asarray(np.concatenate([np.asarray(x), np.ones((x.shape[0], 1))], axis=1) @ np.asarray(P), np.float32)
    act = ACTIVATIONS[model.activation]
    J1 = _output_jacobians(p, x, act, jax.grad(lambda z: jnp.sum(act(z))), 10)[2][0]
    A = np.asarray(jnp.einsum("toj,tok->tjk", J1, J1) / x.shape[0], np.float32)
    pairs = np.array([(j, k) for j in range(10) for k in range(j, 10)])
    xla = jax.jit(upper_triangle_grams)
    xj, Aj = jnp.asarray(xt), jnp.asarray(A)
    fns = {"syrk (polarised_grams)": lambda: polarised_grams(xt, A, pairs),
           "XLA upper block triangles": lambda: np.asarray(xla(xj, Aj, pairs))}
    out = {k: f() for k, f in fns.items()}
    best = {}
    for _ in range(repeat):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            best[k] = min(best.get(k, np.inf), time.perf_counter() - t)
    a, b = out.values()
    scale = max(np.abs(b[i]).max() for i, (j, k) in enumerate(pairs) if j == k)
    ta, tb = best.values()
    print(f"layer 1's Gauss–Newton blocks, 784-10-10-10, 10,000 samples, float32 (best of {repeat}, interleaved): "
          + ", ".join(f"{k} {t:.2f} s" for k, t in best.items())
          + f" ({tb / ta:.2f}×); largest difference {np.max(np.abs(a - b)) / scale:.1e} of the diagonal blocks' largest entry")


def factorisations(n, mixed=(None,)):
    """`n` factorisations (`path_problem(...).factorise`, damping `GN_DAMPING_NEAR`) of the 784-10-10-10
    fixed-δ problem (split layer 2, pair 2 & 6, δ = 1, 10,000 Fashion-MNIST samples projected as
    `symland mnist` projects them, random network), each at another point, after one that compiles.
    `mixed`: the values of `GN_MIXED` to time, alternately at each point (None: the library's)."""
    import time  # noqa: PLC0415

    import scipy.linalg.lapack  # noqa: PLC0415
    from jax.flatten_util import ravel_pytree  # noqa: PLC0415

    import symland._newton_krylov as nk  # noqa: PLC0415
    from symland._data import INPUT_RTOL  # noqa: PLC0415

    x = jnp.asarray(s.project_inputs(s.load_image_data("fashion-mnist", n_samples=10_000)[0], INPUT_RTOL).x)
    model = s.MLP((784, 10, 10, 10), "softplus")
    p = model.init(jax.random.PRNGKey(0))
    y = model.apply(p, x) + 0.1
    parts = {}
    timed = timer(parts)
    lapack = scipy.linalg.lapack
    real = (nk._gauss_newton_blocks, lapack.dpotrf, lapack.spotrf, lapack.strtrs, nk._panels_of_rows, nk.GN_MIXED)

    def blocks_timed(*a, **k):
        pairs, blocks = real[0](*a, **k)
        return pairs, timed("Gauss–Newton blocks", blocks)

    nk._gauss_newton_blocks = blocks_timed
    lapack.dpotrf, lapack.spotrf = timed("dpotrf", real[1]), timed("spotrf", real[2])
    lapack.strtrs, nk._panels_of_rows = timed("strtrs", real[3]), timed("panels", real[4])
    seconds, spent = {m: [] for m in mixed}, {m: {} for m in mixed}
    try:
        problem = path_problem(model, 2, "nmse", x, preconditioner="gauss-newton")
        v = ravel_pytree(p)[0]
        args = (1.0, 2, 6, x, y)
        for m in mixed:  # compiles
            nk.GN_MIXED = real[5] if m is None else m
            problem.factorise(v, *args)
        for i in range(n):
            for m in mixed:
                nk.GN_MIXED = real[5] if m is None else m
                parts.clear()
                t = time.perf_counter()
                problem.factorise(v + 0.01 * (i + 1), *args, damping=nk.GN_DAMPING_NEAR)
                seconds[m].append(time.perf_counter() - t)
                for k, dt in parts.items():
                    spent[m][k] = spent[m].get(k, 0.0) + dt
    finally:
        nk._gauss_newton_blocks, lapack.dpotrf, lapack.spotrf, lapack.strtrs, nk._panels_of_rows, nk.GN_MIXED = real
    for m in mixed:
        rest = sum(seconds[m]) - sum(spent[m].values())
        label = "" if m is None else f" GN_MIXED={m}:"
        print(f"{nk.__file__}:{label} {n} factorisations, median {np.median(seconds[m]):.2f} s, best "
              f"{min(seconds[m]):.2f} s; mean per factorisation: "
              + ", ".join(f"{k} {t / n:.2f} s" for k, t in spent[m].items())
              + f", the rest (filling G, damping, W's Schur complement) {rest / n:.2f} s", flush=True)
    if len(mixed) == 2:
        a, b = (np.median(seconds[m]) for m in mixed)
        print(f"  median {a:.2f} s / {b:.2f} s = {a / b:.2f}×")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8070)
    ap.add_argument("--blocks", action="store_true", help="only layer 1's Gauss–Newton blocks, by syrk against XLA products")
    ap.add_argument("--factorise", type=int, metavar="N", help="only N factorisations of the Fig. 3 problem")
    ap.add_argument("--mixed", choices=("default", "both"), default="default",
                    help="--factorise: GN_MIXED as in the library, or off and on alternately")
    a = ap.parse_args()
    if a.factorise is not None:
        if a.factorise < 1:
            ap.error("--factorise: must be a positive number of factorisations")
        factorisations(a.factorise, (None,) if a.mixed == "default" else (False, True))
        return
    if a.blocks:
        gram_blocks(5)
        return
    n = a.n
    import time  # noqa: PLC0415

    import scipy.linalg  # noqa: PLC0415

    A = np.random.default_rng(0).standard_normal((n, n))
    M = A @ A.T / n + np.eye(n)
    t = time.perf_counter()
    L = np.asfortranarray(scipy.linalg.cholesky(M, lower=True, check_finite=False))
    t_potrf = time.perf_counter() - t
    t = time.perf_counter()
    L_inv = np.asfortranarray(scipy.linalg.lapack.dtrtri(L, lower=1)[0])
    t_trtri = time.perf_counter() - t
    print(f"n = {n}: potrf {t_potrf:.1f} s, trtri {t_trtri:.1f} s; best of 5:")
    r = np.random.default_rng(1).standard_normal(n)
    Lj, rj = jnp.asarray(L), jnp.asarray(r)
    xla = {"L r": jax.jit(lambda L, r: L @ r), "Lᵀ r": jax.jit(lambda L, r: L.T @ r),
           "rᵀL (= Lᵀr)": jax.jit(lambda L, r: r @ L)}
    L32, r32 = np.asfortranarray(L, dtype=np.float32), r.astype(np.float32)
    print(f"  numpy (float64 gemv) L r {best_ms(lambda: L @ r):.1f} ms, Lᵀ r {best_ms(lambda: L.T @ r):.1f} ms")
    for name, f, a, v in (("dtrmv", blas.dtrmv, L, r), ("strmv", blas.strmv, L32, r32),
                          ("dtrsv", blas.dtrsv, L, r), ("strsv", blas.strsv, L32, r32)):
        print(f"  {name} L r {best_ms(lambda: f(a, v, lower=1)):.1f} ms, "
              f"Lᵀ r {best_ms(lambda: f(a, v, lower=1, trans=1)):.1f} ms")
    from threadpoolctl import ThreadpoolController  # noqa: PLC0415

    with ThreadpoolController().limit(limits=1, user_api="blas"):  # as the library's apply runs them
        one = {name: best_ms(lambda f=f, a=a, v=v: f(a, f(a, v, lower=1), lower=1, trans=1))
               for name, f, a, v in (("strmv", blas.strmv, L32, r32), ("strsv", blas.strsv, L32, r32))}
    print("  one BLAS thread, L r then Lᵀ(·): " + ", ".join(f"{k} {t:.1f} ms" for k, t in one.items()))
    print("  XLA (float64) " + ", ".join(f"{k} {best_ms(lambda f=f: jax.block_until_ready(f(Lj, rj))):.1f} ms"
                                       for k, f in xla.items()))
    # the library's apply (gauss_newton_preconditioner), with this L and the identity order; inputs of
    # full rank, so that its projection off input directions without energy is the identity (with
    # np.ones((3, 2)), as until commit 22955be, two of three directions are dark and the projection
    # changes r: "relative error 2.2e-01")
    x_full = np.random.default_rng(2).standard_normal((10, 2))
    _, apply = gauss_newton_preconditioner(s.MLP((2, 2, 1), "softplus"), 1, "mse", x_full, np.eye(3))
    want = np.linalg.solve(M, r)
    F32, F64 = cholesky_panels(L, dtype=np.float32), cholesky_panels(L)
    err = np.max(np.abs(apply(F32, r) - want)) / np.max(np.abs(want))
    lib = lambda F: jax.block_until_ready(apply(F, r))
    print(f"  apply M̃⁻¹r (cholesky_panel_solve, panels of {GN_PANEL} rows): float32 (default) "
          f"{best_ms(lambda: lib(F32)):.1f} ms, relative error {err:.1e}; float64 {best_ms(lambda: lib(F64)):.1f} ms; "
          f"numpy L⁻ᵀ(L⁻¹r) {best_ms(lambda: L_inv.T @ (L_inv @ r)):.1f} ms")
    panels = {b: cholesky_panels(L, dtype=np.float32, panel=b) for b in (512, 1024, 2048)}
    r32j = jnp.asarray(r32)
    print("  float32 panels of " + ", ".join(
        f"{b} rows {best_ms(lambda F=F: jax.block_until_ready(cholesky_panel_solve(F, r32j))):.1f} ms"
        for b, F in panels.items()))
    if n == 8070:
        hvp_then_apply(L32, F32, r)


def hvp_then_apply(L32, F32, r, pairs=20):
    """One CG iteration's HVP (linearised, as the solver's) + M̃⁻¹r: the library's `apply` against two
    BLAS `strsv` on one thread, as the library applied it until the panels."""
    import time  # noqa: PLC0415

    from jax.flatten_util import ravel_pytree  # noqa: PLC0415

    x = jnp.asarray(s.load_image_data("fashion-mnist", n_samples=10_000)[0])
    model = s.MLP((784, 10, 10, 10), "softplus")
    p = model.init(jax.random.PRNGKey(0))
    y = model.apply(p, x) + 0.1
    prob = path_problem(model, 2, "nmse", x, preconditioner="gauss-newton")
    sv, args = prob.to_s(ravel_pytree(p)[0]), (1.0, 2, 6, x, y)
    from threadpoolctl import ThreadpoolController  # noqa: PLC0415

    H = prob.hvp_at(sv, *args)
    hvp = lambda: np.asarray(H(jnp.asarray(r)))
    panels = lambda: np.asarray(prob.apply_preconditioner(F32, r))
    r32 = r.astype(np.float32)

    def strsv():
        with ThreadpoolController().limit(limits=1, user_api="blas"):
            return blas.strsv(L32, blas.strsv(L32, r32, lower=1), lower=1, trans=1)

    def mean_ms(fn):
        fn()
        t = time.perf_counter()
        for _ in range(pairs):
            fn()
        return 1e3 * (time.perf_counter() - t) / pairs

    print(f"  HVP alone {mean_ms(hvp):.1f} ms; HVP + apply: panels (library) "
          f"{mean_ms(lambda: (hvp(), panels())):.1f} ms, two strsv on one BLAS thread "
          f"{mean_ms(lambda: (hvp(), strsv())):.1f} ms")
    v = ravel_pytree(p)[0]
    P, _ = input_whitening(x)
    xt = jnp.asarray(np.concatenate([np.asarray(x), np.ones((x.shape[0], 1))], axis=1) @ np.asarray(P))
    for single in (True, False):  # True: the default at this size
        factorise, _ = gauss_newton_preconditioner(model, 2, "nmse", x, P, single=single)
        blocks = _gauss_newton_blocks(model, 2, "nmse", single)[1]
        factorise(v, *args)  # compiles the blocks
        t = time.perf_counter()
        factorise(v, *args)
        t_factorise = time.perf_counter() - t
        jax.block_until_ready(blocks(v, *args, xt, P))  # a new jitted function: compiles
        t = time.perf_counter()
        jax.block_until_ready(blocks(v, *args, xt, P))
        print(f"  one factorisation of the same problem, layer-1 blocks in {'float32' if single else 'float64'}: "
              f"{t_factorise:.1f} s; the Gauss–Newton blocks alone, a separate call, "
              f"{time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
