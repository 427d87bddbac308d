"""XLA compilation time of the library's Newton loops, cold, for one or two source trees.

Run: PYTHONPATH=src python benchmarks/bench_compile_time.py [--src A [--src B]] [--rounds 3]

Each round runs, for each source tree in turn (alternating, so a machine that drifts affects both),
a fresh process with JAX's persistent compilation cache off, and sums JAX's
`backend_compile_duration` events (XLA's own compilation, not tracing) over four workloads:
- `find_permutation_path` on the tanh toy (seed 2, pair 2 & 3; dense `minimise_flat` in a scan);
- `find_permutation_path` on a 3-4-3-2 softplus network (layer 2, `nmse`, 3 steps; `jax.hessian`);
- `solve_on_subspace` for Fix(S_6) of the Gaussian ReLU problem (vmapped Levenberg–Marquardt);
- `least_symmetry_breaking` (Gaussian erf, k = 3, 4 runs: Adam, then `refine_flat` and a spectrum).
It prints each round's seconds and the medians, and checks that the trees give the same losses
(their largest relative difference), so a faster compilation is the same computation.
The test suite compiles these programs cold on CI (tests/conftest.py keeps a cache within one run).
"""

from __future__ import annotations

import statistics

from _trees import compare

CALL = r"""
import json, time, jax, numpy as np
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_enable_compilation_cache", False)
from jax._src import monitoring
tot = {}
monitoring.register_event_duration_secs_listener(lambda n, d, **k: tot.__setitem__(n, tot.get(n, 0.0) + d))
import symland as s
from symland.gaussian import fixed_point_subspace
from symland.gaussian._families import solve_on_subspace
key = "/jax/core/compile/backend_compile_duration"
out, losses = {}, []
def timed(name, fn):
    before, t = tot.get(key, 0.0), time.perf_counter()
    losses.extend(np.ravel(fn()).tolist())
    out[name] = (time.perf_counter() - t, tot.get(key, 0.0) - before)
toy = s.toy_problem("tanh", seed=2)
timed("toy path", lambda: s.find_permutation_path(toy.model, toy.teacher, toy.x, toy.y, 1, 2, 3).loss)
model = s.MLP((3, 4, 3, 2), "softplus")
teacher = model.init(jax.random.PRNGKey(5))
x = jax.random.normal(jax.random.PRNGKey(6), (60, 3))
y = model.apply(teacher, x)
timed("3-4-3-2 path", lambda: s.find_permutation_path(model, teacher, x, y, 2, 0, 1, steps=3, loss="nmse",
                                                      max_newton_steps=10).loss)
sub = fixed_point_subspace(6, "S_k")
z0 = np.random.default_rng(0).normal(size=(5, sub.dim)) * 0.5 + 1.0
timed("Fix(S_6) LM", lambda: solve_on_subspace(sub, z0, activation="relu", steps=50)[0])
timed("symmetry breaking", lambda: s.least_symmetry_breaking("gaussian-erf", 3, n_runs=4, steps=300,
                                                             n_samples=500).reports[0].loss)
print(json.dumps({"times": out, "losses": losses}))
"""


def main(argv=None):
    def report(r, src, got):
        line = ", ".join(f"{k} {w:.1f} s (XLA {c:.1f} s)" for k, (w, c) in got["times"].items())
        print(f"round {r}, {src}: {line}", flush=True)

    srcs, runs = compare(CALL, __doc__.splitlines()[0], report, argv)
    print("\nmedian XLA compilation (s) | " + " | ".join(srcs))
    names = list(runs[srcs[0]][0]["times"])
    for name in names + ["all"]:
        med = []
        for src in srcs:
            per = [sum(c for _, c in g["times"].values()) if name == "all" else g["times"][name][1]
                   for g in runs[src]]
            med.append(statistics.median(per))
        ratio = f" ({med[0] / med[1]:.2f}×)" if len(med) == 2 and med[1] > 0 else ""
        print(f"{name} | " + " | ".join(f"{m:.1f}" for m in med) + ratio)
    if len(srcs) == 2:
        import numpy as np

        a, b = (np.asarray(runs[src][0]["losses"]) for src in srcs)
        print(f"largest relative difference of the losses: {np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300)):.1e}")


if __name__ == "__main__":
    main()
