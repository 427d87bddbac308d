"""Applying the Gauss–Newton preconditioner's factor (issue 10): BLAS (NumPy) against XLA on this CPU.

Run: PYTHONPATH=src python benchmarks/bench_gn_apply.py [--n 8070]
`gauss_newton_preconditioner` applies M̃⁻¹r = L⁻ᵀ(L⁻¹r) with a dense triangular L⁻¹ of n × n
(n = 8,070 for 784-10-10-10). Prints the best of 5 times for each product, in one run.
"""

from __future__ import annotations

import argparse

import numpy as np
import jax
import jax.numpy as jnp

from bench_mnist import best_of  # benchmarks/ is on sys.path when this script runs

jax.config.update("jax_enable_x64", True)


def best_ms(fn, repeat=5):
    return 1e3 * best_of(fn, repeat)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8070)
    n = ap.parse_args().n
    L = np.tril(np.random.default_rng(0).standard_normal((n, n)))
    r = np.random.default_rng(1).standard_normal(n)
    Lj, rj = jnp.asarray(L), jnp.asarray(r)
    xla = {"L r": jax.jit(lambda L, r: L @ r), "Lᵀ r": jax.jit(lambda L, r: L.T @ r),
           "rᵀL (= Lᵀr)": jax.jit(lambda L, r: r @ L)}
    print(f"n = {n}, float64, best of 5:")
    print(f"  numpy L r {best_ms(lambda: L @ r):.1f} ms, Lᵀ r {best_ms(lambda: L.T @ r):.1f} ms")
    print("  XLA   " + ", ".join(f"{k} {best_ms(lambda f=f: jax.block_until_ready(f(Lj, rj))):.1f} ms"
                             for k, f in xla.items()))


if __name__ == "__main__":
    main()
