import jax
import jax.numpy as jnp
import numpy as np

import symland as s


def rosenbrock(x):
    return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def test_minimise_rosenbrock_to_machine_precision():
    r = s.minimise(rosenbrock, jnp.array([-1.2, 1.0]), gtol=1e-12)
    assert r.status_name == "converged" and r.converged
    np.testing.assert_allclose(r.value, [1.0, 1.0], atol=1e-10)
    assert r.grad_norm <= 1e-12


def test_minimise_escapes_saddle():
    f = lambda x: x[0] ** 4 / 4 - x[0] ** 2 / 2 + x[1] ** 2
    r = s.minimise(f, jnp.array([1e-9, 0.3]), gtol=1e-12)
    assert r.converged and abs(abs(float(r.value[0])) - 1.0) < 1e-10


def test_minimise_reports_max_steps():
    r = s.minimise(rosenbrock, jnp.array([-1.2, 1.0]), gtol=1e-12, max_steps=2)
    assert r.status_name == "max_steps" and not r.converged


def test_minimise_flat_with_traced_tolerance_and_budget_is_the_static_solver():
    """One compiled program for every gtol and max_steps (the dense path's `advance`): traced, with a
    one-entry history, the step counts and statuses are those of the static solver, and the end points
    agree to round-off (XLA fuses the two programs differently: 1 ulp here)."""
    from symland._results import result_code
    from symland._solver import minimise_flat

    x0 = jnp.array([-1.2, 1.0])
    traces = []  # appended to at trace time only: one entry per compiled program

    def solve(x, g, n):
        traces.append(1)
        return minimise_flat(rosenbrock, x, gtol=g, max_steps=n, history_length=1)

    traced = jax.jit(solve)
    for gtol, steps in ((1e-12, 200), (1e-12, 2), (1e-3, 200)):
        want = jax.jit(lambda x: minimise_flat(rosenbrock, x, gtol=gtol, max_steps=steps))(x0)
        got = traced(x0, gtol, steps)
        np.testing.assert_allclose(got.x, want.x, rtol=1e-14, atol=0)
        assert int(got.steps) == int(want.steps)
        assert int(result_code(got.status)) == int(result_code(want.status))
        assert got.history.shape == (1,) and float(got.history[0]) == float(want.history[0])
    assert len(traces) == 1
    full = int(traced(x0, 1e-12, 200).steps)
    assert int(traced(x0, 1e-12, 2).steps) == 2 < int(traced(x0, 1e-3, 200).steps) < full


def test_refine_converges_to_saddle():
    f = lambda x: x[0] ** 4 / 4 - x[0] ** 2 / 2 + x[1] ** 2 + 0.1 * x[0] * x[1] ** 2
    r = s.refine_critical_point(f, jnp.array([1e-3, -2e-3]))
    assert r.converged and r.grad_norm <= 1e-13 and r.steps <= 10
    rep = s.classify_critical_point(f, r.value)
    assert rep.kind == "strict saddle" and rep.index == 1


def test_refine_on_pytrees_and_history():
    model = s.MLP((2, 3, 1), activation="tanh")
    teacher = model.init(jax.random.PRNGKey(0))
    x, y = s.gaussian_teacher_data(model, teacher, 200)
    L = s.loss_function(model, x, y)
    start = jax.tree_util.tree_map(lambda a: a + 1e-6, teacher)
    r = s.refine_critical_point(L, start)
    assert r.converged and r.steps <= 20
    h = np.asarray(r.grad_norm_history)
    assert h[0] > 1e-8 and h[r.steps] == r.grad_norm


def test_bad_arguments():
    import pytest

    with pytest.raises(ValueError, match="gtol"):
        s.minimise(rosenbrock, jnp.zeros(2), gtol=-1.0)
    with pytest.raises(ValueError, match="max_steps"):
        s.refine_critical_point(rosenbrock, jnp.zeros(2), max_steps=0)


def test_final_spectrum_is_the_hessian_spectrum_at_the_end_point():
    """`final_spectrum`: the eigenvalues at the returned x (minimise_flat and refine_flat, under jit and
    vmap), from a start that needs steps and from one already converged; the iterates and the Hessian
    count are those of the loop without it."""
    from symland._solver import minimise_flat, refine_flat

    f = lambda x: jnp.sum((x - 1.0) ** 2) + jnp.sum(x**4) + x[0] * x[1] ** 3 - jnp.sum(jnp.cos(x))
    x0s = jnp.array([[0.3, -2.0, 1.5], [0.4, 0.1, -0.7]])
    for solve, kw in ((minimise_flat, {"gtol": 1e-12}), (refine_flat, {"gtol": 1e-13})):
        plain = jax.jit(jax.vmap(lambda x: solve(f, x, max_steps=60, **kw)))(x0s)
        got = jax.jit(jax.vmap(lambda x: solve(f, x, max_steps=60, final_spectrum=True, **kw)))(x0s)
        assert plain.eigenvalues is None
        np.testing.assert_array_equal(got.x, plain.x)
        np.testing.assert_array_equal(got.hessians, plain.hessians)
        assert np.all(np.asarray(plain.hessians) >= 1)
        for x, lam in zip(got.x, got.eigenvalues):
            np.testing.assert_allclose(lam, np.linalg.eigvalsh(np.asarray(jax.hessian(f)(x))), rtol=1e-12, atol=1e-12)
        again = jax.jit(jax.vmap(lambda x: solve(f, x, max_steps=60, final_spectrum=True, **kw)))(got.x)
        np.testing.assert_array_equal(again.x, got.x)  # converged at its start: the first Hessian is the end's
        np.testing.assert_allclose(again.eigenvalues, got.eigenvalues, rtol=1e-12, atol=1e-12)
