"""`even_block_spectrum` (LOBPCG on the σ-even block) on a small σ-fixed point, for one or two source trees.

Run: PYTHONPATH=src python benchmarks/bench_even_block.py [--src A [--src B]] [--rounds 3]

Each round runs, for each source tree in turn (alternating, so a machine that drifts affects both), a
fresh process with JAX's persistent compilation cache off, and times two calls on the 3-4-3-2 softplus
point of `tests/test_plateau.py` (noise 0.0003, pair 0 & 2 of layer 2, k = 4): the first call (its
compilation included, as in a test) and the second (the same work compiled anew: the function builds
its programs per call). It prints each round's seconds and the medians, and the largest relative
difference of the eigenvalues between the trees, so a faster run is the same computation.
"""

from __future__ import annotations

import statistics

from _trees import compare

CALL = r"""
import json, time, jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_enable_compilation_cache", False)
import symland as s
model = s.MLP((3, 4, 3, 2), "softplus")
(W1, b1), (W2, b2), (W3, b3) = model.init(jax.random.PRNGKey(3))
a = 0.5 * (W3[:, 0] + W3[:, 2])
p = [(W1, b1), (W2.at[2].set(W2[0]), b2.at[2].set(b2[0])), (W3.at[:, 0].set(a).at[:, 2].set(a), b3)]
x = jax.random.normal(jax.random.PRNGKey(0), (60, 3))
y = model.apply(p, x) + 0.0003 * jnp.sin(x[:, :2])
times, vals = [], None
for _ in range(2):
    t = time.perf_counter()
    r = s.even_block_spectrum(model, p, x, y, 2, 0, 2, k=4, max_iter=300)
    times.append(time.perf_counter() - t)
    vals = r.eigenvalues.tolist()
print(json.dumps({"times": times, "eigenvalues": vals, "hvps": r.hvps, "status": r.status}))
"""


def main(argv=None):
    def report(r, src, got):
        print(f"round {r} {src}: first {got['times'][0]:.2f} s, second {got['times'][1]:.2f} s, "
              f"{got['hvps']} HVPs, {got['status']}", flush=True)

    srcs, runs = compare(CALL, __doc__.splitlines()[0], report, argv)
    for src in srcs:
        first = statistics.median(g["times"][0] for g in runs[src])
        second = statistics.median(g["times"][1] for g in runs[src])
        print(f"{src}: median first call {first:.2f} s, second call {second:.2f} s")
    if len(srcs) == 2:
        a, b = (runs[src][0]["eigenvalues"] for src in srcs)
        diff = max(abs(u - v) / max(abs(u), 1e-300) for u, v in zip(a, b))
        print(f"largest relative difference of the eigenvalues: {diff:.1e}")


if __name__ == "__main__":
    main()
