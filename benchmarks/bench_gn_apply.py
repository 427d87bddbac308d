"""Applying the Gauss–Newton preconditioner's factor (issue 10): BLAS (NumPy, trmv) against XLA on this CPU.

Run: PYTHONPATH=src python benchmarks/bench_gn_apply.py [--n 8070]
`gauss_newton_preconditioner` applies M̃⁻¹r = L⁻ᵀ(L⁻¹r) with a dense triangular L⁻¹ of n × n
(n = 8,070 for 784-10-10-10). Prints the best of 5 times for each product, and for the library's
`apply` (float32 `strmv`, the default, and float64 `dtrmv`), in one run. Then the cost of one
preconditioned CG iteration, an HVP of the 784-10-10-10 fixed-δ problem (10,000 Fashion-MNIST
samples, random network) followed by `apply`, with `apply`'s BLAS limited to one thread (the library)
and with OpenBLAS's default threads (mean of 20 pairs each).
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.linalg.blas as blas
import jax
import jax.numpy as jnp

import symland as s
from symland._newton_krylov import gauss_newton_preconditioner, path_problem
from bench_mnist import best_of  # benchmarks/ is on sys.path when this script runs

jax.config.update("jax_enable_x64", True)


def best_ms(fn, repeat=5):
    return 1e3 * best_of(fn, repeat)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8070)
    n = ap.parse_args().n
    L = np.asfortranarray(np.tril(np.random.default_rng(0).standard_normal((n, n))))
    r = np.random.default_rng(1).standard_normal(n)
    Lj, rj = jnp.asarray(L), jnp.asarray(r)
    xla = {"L r": jax.jit(lambda L, r: L @ r), "Lᵀ r": jax.jit(lambda L, r: L.T @ r),
           "rᵀL (= Lᵀr)": jax.jit(lambda L, r: r @ L)}
    L32, r32 = np.asfortranarray(L, dtype=np.float32), r.astype(np.float32)
    print(f"n = {n}, best of 5:")
    print(f"  numpy (float64 gemv) L r {best_ms(lambda: L @ r):.1f} ms, Lᵀ r {best_ms(lambda: L.T @ r):.1f} ms")
    print(f"  dtrmv L r {best_ms(lambda: blas.dtrmv(L, r, lower=1)):.1f} ms, "
          f"Lᵀ r {best_ms(lambda: blas.dtrmv(L, r, lower=1, trans=1)):.1f} ms")
    print(f"  strmv L r {best_ms(lambda: blas.strmv(L32, r32, lower=1)):.1f} ms, "
          f"Lᵀ r {best_ms(lambda: blas.strmv(L32, r32, lower=1, trans=1)):.1f} ms")
    print("  XLA (float64) " + ", ".join(f"{k} {best_ms(lambda f=f: jax.block_until_ready(f(Lj, rj))):.1f} ms"
                                       for k, f in xla.items()))
    # the library's apply (gauss_newton_preconditioner), with these matrices as L⁻¹ and the identity order
    _, apply = gauss_newton_preconditioner(s.MLP((2, 2, 1), "softplus"), 1, "mse", np.ones((3, 2)), np.eye(3))
    order = np.arange(n)
    want = L.T @ (L @ r)
    err = np.max(np.abs(apply((L32, order), r) - want)) / np.max(np.abs(want))
    print(f"  apply M̃⁻¹r: float32 (default) {best_ms(lambda: apply((L32, order), r)):.1f} ms, "
          f"relative error {err:.1e}; float64 {best_ms(lambda: apply((L, order), r)):.1f} ms; "
          f"numpy L⁻ᵀ(L⁻¹r) {best_ms(lambda: L.T @ (L @ r)):.1f} ms")
    if n == 8070:
        hvp_then_apply(L32, r)


def hvp_then_apply(L32, r, pairs=20):
    """One CG iteration's HVP + M̃⁻¹r, with apply's BLAS on one thread against OpenBLAS's default."""
    import time  # noqa: PLC0415

    from jax.flatten_util import ravel_pytree  # noqa: PLC0415

    x = jnp.asarray(s.load_image_data("fashion-mnist", n_samples=10_000)[0])
    model = s.MLP((784, 10, 10, 10), "softplus")
    p = model.init(jax.random.PRNGKey(0))
    y = model.apply(p, x) + 0.1
    prob = path_problem(model, 2, "nmse", x, preconditioner="gauss-newton")
    sv, args = prob.to_s(ravel_pytree(p)[0]), (1.0, 2, 6, x, y)
    factors = (L32, np.arange(r.size))
    hvp = lambda: np.asarray(prob.hvp(sv, jnp.asarray(r), *args))
    limited = lambda: prob.apply_preconditioner(factors, r)
    r32 = r.astype(np.float32)
    default = lambda: blas.strmv(L32, blas.strmv(L32, r32, lower=1), lower=1, trans=1)

    def mean_ms(fn):
        fn()
        t = time.perf_counter()
        for _ in range(pairs):
            fn()
        return 1e3 * (time.perf_counter() - t) / pairs

    print(f"  HVP alone {mean_ms(hvp):.1f} ms; HVP + apply: BLAS on one thread (library) "
          f"{mean_ms(lambda: (hvp(), limited())):.1f} ms, OpenBLAS's default threads "
          f"{mean_ms(lambda: (hvp(), default())):.1f} ms")

if __name__ == "__main__":
    main()
