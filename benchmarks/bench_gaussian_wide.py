"""Full-space Hessian of dk parameters at d = 4k = 80 (issue 12 target: each <= 5 s); not a timing test.

    PYTHONPATH=src python benchmarks/bench_gaussian_wide.py [--k 20]

Times, in one run, warm (second call) and cold: the closed-form assembly
`wide_hessian` (H_k ⊕ I ⊗ H_⊥), the blocked per-pair forward-over-reverse
`loss_hessian` on the k × d problem, and the dk spectrum from the blocks
(`wide_spectrum`) against `numpy.linalg.eigvalsh` of the dense matrix.
"""

import argparse
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--k", type=int, default=20)
    args = p.parse_args()
    import jax.numpy as jnp
    from symland.gaussian import loss_hessian, wide_hessian, wide_point, wide_spectrum, wide_teacher

    k = args.k
    d = 4 * k
    rng = np.random.default_rng(0)
    Wk = np.eye(k) + 0.05 * rng.standard_normal((k, k))
    W, V = jnp.asarray(wide_point(Wk, d)), jnp.asarray(wide_teacher(k, d))
    for label, fn in [("closed-form blocks (wide_hessian)", lambda: wide_hessian(Wk, d)),
                      ("per-pair forward-over-reverse (loss_hessian)", lambda: np.asarray(loss_hessian(W, V)))]:
        t = time.perf_counter()
        H = fn()
        cold = time.perf_counter() - t
        t = time.perf_counter()
        H = fn()
        warm = time.perf_counter() - t
        print(f"k={k} d={d} ({k * d} parameters) {label}: cold {cold:.2f} s, warm {warm:.2f} s")
    t = time.perf_counter()
    e_blocks = wide_spectrum(Wk, d, gtol=np.inf).eigenvalues
    tb = time.perf_counter() - t
    t = time.perf_counter()
    e_dense = np.linalg.eigvalsh(H)
    td = time.perf_counter() - t
    print(f"spectrum from blocks (wide_spectrum, incl. loss and gradient): {tb:.2f} s; dense eigvalsh: {td:.2f} s; "
          f"max difference {np.max(np.abs(e_blocks - e_dense)):.1e}")


if __name__ == "__main__":
    main()
