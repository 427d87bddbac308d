"""First-call time of code run op by op against the same code jitted whole (persistent cache off).

    JAX_ENABLE_COMPILATION_CACHE=false PYTHONPATH=src python benchmarks/jit_vs_eager.py grad
        `loss_and_gradient_norm` (jitted, one program) against `jax.value_and_grad` run op by op, on
        784-10-10-10 with 10,000 random samples (Fig. 3's size): the first call and a second one.
    JAX_ENABLE_COMPILATION_CACHE=false PYTHONPATH=src python benchmarks/jit_vs_eager.py init-eager
    JAX_ENABLE_COMPILATION_CACHE=false PYTHONPATH=src python benchmarks/jit_vs_eager.py init-jit
        `MLP.init` for three models (3-4-3-2, 2-5-1, 784-10-10-10) op by op or jitted whole, each in its
        own process; the second of the two also prints the largest difference of the parameters.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import symland as s  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from symland._critical import loss_and_gradient_norm  # noqa: E402

_INIT_FILE = "/tmp/symland-jit-vs-eager-init-{}.npy"


def grad() -> None:
    model = s.MLP((784, 10, 10, 10), "softplus")
    x = jnp.asarray(np.random.default_rng(0).standard_normal((10_000, 784)))
    p = model.init(jax.random.PRNGKey(0))
    y = model.apply(p, x)
    jitted = lambda q: s.mse(model, q, x, y)
    eager = lambda q: s.mse(model, q, x, y)
    for label in ("first", "again"):
        t = time.perf_counter()
        loss_and_gradient_norm(jitted, p)
        print(f"jitted {label}: {time.perf_counter() - t:.2f} s")
    for label in ("first", "again"):
        t = time.perf_counter()
        loss, g = jax.value_and_grad(eager)(p)
        float(loss), float(jnp.max(jnp.abs(ravel_pytree(g)[0])))
        print(f"op by op {label}: {time.perf_counter() - t:.2f} s")


def init(mode: str) -> None:
    models = [s.MLP((3, 4, 3, 2), "softplus"), s.MLP((2, 5, 1), "tanh"), s.MLP((784, 10, 10, 10), "softplus")]
    t = time.perf_counter()
    leaves = []
    for m in models:
        p = m.init(jax.random.PRNGKey(1)) if mode == "eager" else jax.jit(m.init)(jax.random.PRNGKey(1))
        leaves += [np.ravel(a) for a in jax.tree_util.tree_leaves(p)]
    print(f"init {mode}: {time.perf_counter() - t:.2f} s")
    flat = np.concatenate(leaves)
    np.save(_INIT_FILE.format(mode), flat)
    other = "jit" if mode == "eager" else "eager"
    try:
        ref = np.load(_INIT_FILE.format(other))
    except FileNotFoundError:
        return
    print(f"largest difference from {other}: {np.max(np.abs(flat - ref)):.3g}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "grad"
    if what == "grad":
        grad()
    elif what in ("init-eager", "init-jit"):
        init(what.split("-")[1])
    else:
        raise SystemExit(f"usage: {sys.argv[0]} grad | init-eager | init-jit")
