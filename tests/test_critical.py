import numpy as np
import pytest
import jax.numpy as jnp

from symland import classify_critical_point, count_signs, hessian_spectrum, zero_tolerance


def _quad(c):
    return lambda p: c[0] * p["a"][0] ** 2 + c[1] * p["a"][1] ** 2 + c[2] * p["b"] ** 4


P0 = {"a": jnp.zeros(2), "b": jnp.asarray(0.0)}


@pytest.mark.parametrize("coeffs, kind, index, nullity", [
    ((1.0, 2.0, 0.0), "degenerate", 0, 1),          # flat in b (quartic-free)
    ((1.0, 2.0, 1.0), "degenerate", 0, 1),          # x² + 2y² + z⁴: a second-order test cannot decide
    ((1.0, -2.0, 1.0), "strict saddle", 1, 1),
])
def test_classify_toy_functions(coeffs, kind, index, nullity):
    rep = classify_critical_point(_quad(coeffs), P0)
    assert (rep.kind, rep.index, rep.nullity) == (kind, index, nullity)
    assert rep.is_critical


def test_classify_minimum_and_not_critical():
    f = lambda p: jnp.sum((p["a"] - 1.0) ** 2) + (p["b"] + 2.0) ** 2 * 3.0
    rep = classify_critical_point(f, {"a": jnp.ones(2), "b": jnp.asarray(-2.0)})
    assert rep.kind == "minimum" and rep.index == 0 and rep.nullity == 0 and rep.n_positive == 3
    rep = classify_critical_point(f, P0)
    assert rep.kind == "not critical" and not rep.is_critical
    d = rep.to_dict()
    assert d["min_eigenvalue"] == pytest.approx(2.0) and d["max_eigenvalue"] == pytest.approx(6.0)


def test_classify_network_points():
    """A narrow minimum, and its embedding (a toy permutation point) which is a strict saddle."""
    from symland import MLP, loss_function
    from symland._embedding import embed_in_wider
    from microscope_points import toy_narrow_critical_point
    toy, model4, p4, r = toy_narrow_critical_point("tanh", 0)
    rep = classify_critical_point(loss_function(model4, toy.x, toy.y), p4, gtol=1e-12)
    assert rep.kind == "minimum"
    big = embed_in_wider(p4, 1, [0, 1, 2, 3, 0])
    rep = classify_critical_point(loss_function(toy.model, toy.x, toy.y), big, gtol=1e-12)
    # Brea et al. 2019 §4.2 claim at most one negative eigenvalue; here there are two.
    assert rep.kind == "strict saddle" and rep.nullity >= 1 and rep.index == 2


def test_count_signs_and_tolerance():
    eig = np.array([-1.0, -1e-20, 0.0, 1e-20, 2.0])
    tol = zero_tolerance(eig)
    assert count_signs(eig, tol) == (1, 3, 1)


def test_dense_threshold():
    f = lambda x: jnp.sum(x ** 2)
    with pytest.raises(ValueError, match="method"):
        hessian_spectrum(f, jnp.zeros(3), method="nope")
