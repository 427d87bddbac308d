"""Benchmarks of the critical-point microscope (issue 3). Not timing tests.

Run: `PYTHONPATH=src python benchmarks/bench_microscope.py [--quick]`.
Prints one JSON line per benchmark. Times are wall-clock seconds; "first"
includes JIT compilation, "warm" is a second identical call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from symland import (MLP, embed_in_wider, find_fashion_mnist, hessian_spectrum, load_idx_dataset,
                     loss_function, refine_critical_point)


CPU = {}


def timed(fn):
    """(result, wall seconds); the process CPU seconds of the call go to CPU["last"]."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    CPU["last"] = time.process_time() - c
    return out, time.perf_counter() - t


def bench_refine():
    """Toy permutation point θ_{1⇔4} (tanh), perturbed to ‖∇L‖∞ ≈ 1e−6, refined."""
    from microscope_points import toy_narrow_critical_point
    toy, model4, p4, _ = toy_narrow_critical_point("tanh", 0)
    L = loss_function(toy.model, toy.x, toy.y)
    point = embed_in_wider(p4, 1, [0, 1, 2, 3, 1])
    x0, unravel = ravel_pytree(point)
    u = jax.random.normal(jax.random.PRNGKey(0), x0.shape)
    gn = lambda z: float(jnp.max(jnp.abs(jax.grad(lambda y: L(unravel(y)))(z))))
    eps = 1e-6 / gn(x0 + 1e-4 * u) * 1e-4
    start = unravel(x0 + eps * u)
    r, t1 = timed(lambda: refine_critical_point(L, start))
    r, t2 = timed(lambda: refine_critical_point(L, start))
    return {"bench": "refine toy permutation point", "n_params": int(x0.size),
            "grad_norm_start": gn(x0 + eps * u), "grad_norm_end": float(r.grad_norm),
            "loss": float(r.loss), "status": r.status_name, "steps": int(r.steps),
            "first_s": t1, "warm_s": t2, "warm_cpu_s": CPU["last"]}


def bench_dense(n_samples=1000):
    model = MLP((20, 90, 2), "tanh")                      # 2,072 parameters
    p = model.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (n_samples, 20))
    y = jax.random.normal(jax.random.PRNGKey(2), (n_samples, 2))
    L = loss_function(model, x, y)
    e, t1 = timed(lambda: hessian_spectrum(L, p, method="dense"))
    e, t2 = timed(lambda: hessian_spectrum(L, p, method="dense"))
    return {"bench": "dense Hessian spectrum", "n_params": model.n_params, "n_samples": n_samples,
            "first_s": t1, "warm_s": t2, "warm_cpu_s": CPU["last"]}


def bench_lanczos(n_samples=10_000, k=20):
    model = MLP((784, 25, 25, 10), "tanh")
    d = find_fashion_mnist()
    if d is not None:
        x, labels = load_idx_dataset(d, split="train", n_samples=n_samples)
        y = np.eye(10)[np.asarray(labels)]
        data = f"Fashion-MNIST train[:{n_samples}] from {d}, one-hot targets"
    else:
        x = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (n_samples, 784)))
        y = np.eye(10)[np.asarray(jax.random.randint(jax.random.PRNGKey(2), (n_samples,), 0, 10))]
        data = f"random uniform inputs, random one-hot labels (T = {n_samples})"
    L = loss_function(model, x, y)
    p = model.init(jax.random.PRNGKey(0))
    e, t = timed(lambda: hessian_spectrum(L, p, method="lanczos", k=k, which="smallest"))
    return {"bench": f"Lanczos {k} smallest eigenvalues", "n_params": model.n_params,
            "data": data, "point": "random initialisation (MLP.init, seed 0)", "s": t, "cpu_s": CPU["last"],
            "smallest": [float(v) for v in e[:3]], "largest_of_k": float(e[-1])}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="Lanczos on 1,000 samples only")
    args = ap.parse_args()
    import os
    print(json.dumps({"load_average": os.getloadavg(), "cpus": os.cpu_count(),
                      "jax": jax.__version__}), flush=True)
    print(json.dumps(bench_refine()), flush=True)
    print(json.dumps(bench_dense(1000)), flush=True)
    print(json.dumps(bench_dense(200)), flush=True)
    print(json.dumps(bench_lanczos(1000 if args.quick else 10_000)), flush=True)
