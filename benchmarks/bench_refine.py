"""`refine_matrix_free` with its forcing term against exact (rtol 1e−12) MINRES solves, in one process.

Run: PYTHONPATH=src python benchmarks/bench_refine.py

Problems: the merged points of the three 3-4-3-2 softplus paths of
`tests/test_newton_krylov.py::test_matrix_free_paths_predicts_in_rescaling_coordinates_where_asked`
(unconverged paths: the refinement starts away from a critical point), and the saddle of
`test_refine_solves_its_newton_systems_inexactly` (converges). For each, both variants run twice and the
second (compiled) run is timed; printed: status, Newton steps, HVPs, gradients, final ‖∇L‖∞ and seconds.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import symland as s  # noqa: E402
import symland._newton_krylov as nk  # noqa: E402
from symland._path import delta_schedule  # noqa: E402


def merged_starts():
    """(problem, start, args) at the merged point of each path, captured from `matrix_free_paths`."""
    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3))
    teacher = model.init(jax.random.PRNGKey(1))
    y = model.apply(teacher, x)
    deltas = float(s.pair_distance(teacher, 2, 1, 2)) * delta_schedule(1.0, 4, 1e-4)
    seen, real = [], nk.refine_matrix_free

    def capture(problem, v0, args=(), **kw):
        seen.append((problem, v0, args))
        return real(problem, v0, args, **kw)

    nk.refine_matrix_free = capture
    try:
        for predictor, solver in (("theta", "trust-gn"), ("auto", "trust-gn"), ("auto", "trust-ncg")):
            nk.matrix_free_paths(model, teacher, x, y, 2, [(1, 2)], deltas[None, :], loss="mse", max_steps=40,
                                 solver=solver, predictor=predictor)
    finally:
        nk.refine_matrix_free = real
    return seen


def main():
    saddle = nk.FlatProblem(lambda v: v[0] ** 2 - v[1] ** 2 + 0.3 * v[0] * v[1] ** 2 + v[2] ** 4 + 0.1 * v[0] ** 3)
    cases = [(f"3-4-3-2 merged point {i}", *c) for i, c in enumerate(merged_starts())]
    cases.append(("saddle (3 parameters)", saddle, jnp.array([0.5, -0.4, 0.0]), ()))
    forcing = nk.REFINE_FORCING
    print(f"{'case':26s} {'variant':8s} {'status':10s} steps  HVPs  grads  ‖∇L‖∞     seconds")
    for name, problem, v0, args in cases:
        for label, value in (("exact", nk.REFINE_RTOL), ("forcing", forcing)):
            nk.REFINE_FORCING = value
            for _ in range(2):
                t = time.perf_counter()
                r = nk.refine_matrix_free(problem, v0, args, gtol=1e-12 if not args else nk.NK_GTOL)
                sec = time.perf_counter() - t
            print(f"{name:26s} {label:8s} {r.status:10s} {r.steps:5d} {r.hvps:5d} {r.gradients:6d}  "
                  f"{r.grad_norm:.2e}  {sec:.2f}")
    nk.REFINE_FORCING = forcing


if __name__ == "__main__":
    main()
