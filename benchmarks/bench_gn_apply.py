"""Applying the Gauss–Newton preconditioner's factor (issue 10): BLAS (NumPy, trmv) against XLA on this CPU.

Run: PYTHONPATH=src python benchmarks/bench_gn_apply.py [--n 8070]
`gauss_newton_preconditioner` applies M̃⁻¹r = L⁻ᵀ(L⁻¹r) with a dense triangular L⁻¹ of n × n
(n = 8,070 for 784-10-10-10). Prints the best of 5 times for each product, and for the library's
`apply` (float32 `strmv`, the default, and float64 `dtrmv`), in one run.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.linalg.blas as blas
import jax
import jax.numpy as jnp

import symland as s
from symland._newton_krylov import gauss_newton_preconditioner
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

if __name__ == "__main__":
    main()
