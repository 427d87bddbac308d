import numpy as np
import pytest
import jax.numpy as jnp

from symland import (CriticalPointReport, SpectrumNotConverged, classify_critical_point,
                     classify_spectrum, hessian_spectrum, zero_tolerance)
from symland._results import count_signs


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
    big = embed_in_wider(p4, 1, [0, 1, 2, 3, 2])  # duplicate neuron 2: index 2
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


def _small_net_point():
    from symland import MLP, loss_function
    from symland._embedding import embed_in_wider
    from microscope_points import narrow_critical_point
    m, p, x, y, r = narrow_critical_point((2, 3, 3), (2, 4, 3), seed=0)
    return loss_function(MLP((2, 4, 3), "tanh"), x, y), embed_in_wider(p, 1, [0, 1, 2, 0])


def test_lanczos_matches_dense():
    L, point = _small_net_point()
    dense = hessian_spectrum(L, point, method="dense")
    scale = np.max(np.abs(dense))
    lo = hessian_spectrum(L, point, method="lanczos", k=6, which="smallest")
    np.testing.assert_allclose(lo, dense[:6], rtol=0, atol=1e-10 * scale)
    hi = hessian_spectrum(L, point, method="lanczos", k=4, which="largest")
    np.testing.assert_allclose(hi, dense[-4:], rtol=1e-10)
    nz = hessian_spectrum(L, point, method="lanczos", k=5, which="nearest_zero")
    np.testing.assert_allclose(nz, dense[np.argsort(np.abs(dense))][:5], rtol=0, atol=1e-10 * scale)
    assert np.sum(lo < -zero_tolerance(dense)) == 3   # index 3 at this permutation point


def test_lanczos_bad_arguments():
    f = lambda x: jnp.sum(x ** 2)
    with pytest.raises(ValueError, match="k: Lanczos can return at most 4 of the 5"):
        hessian_spectrum(f, jnp.zeros(5), method="lanczos", k=5)
    with pytest.raises(ValueError, match="k: must be a positive"):
        hessian_spectrum(f, jnp.zeros(5), method="lanczos", k=0)
    with pytest.raises(ValueError, match="which"):
        hessian_spectrum(f, jnp.zeros(5), method="lanczos", k=2, which="middle")


def _clustered_quadratic(n=400, negative=2):
    """½xᵀDx with a cluster of tiny eigenvalues: ARPACK's SA needs many restarts to resolve it."""
    rng = np.random.default_rng(1)
    d = np.concatenate([-1.0 - rng.random(negative), 1e-2 * rng.random(40),
                        1.0 + 100.0 * rng.random(n - negative - 40)])
    D = jnp.asarray(d)
    return (lambda p: 0.5 * jnp.sum(D * p ** 2)), np.sort(d)


def test_lanczos_budget_reports_what_converged():
    f, eig = _clustered_quadratic()
    x0 = jnp.zeros(eig.size)
    with pytest.raises(SpectrumNotConverged) as info:
        hessian_spectrum(f, x0, method="lanczos", k=30, max_hvps=300)
    err = info.value
    assert err.k == 30 and 0 < err.eigenvalues.size < 30
    assert err.hvps <= 300 + 61  # the budget is approximate: ARPACK finishes the restart it is in
    for lam in err.eigenvalues:  # what converged is an eigenvalue
        assert np.min(np.abs(eig - lam)) <= 1e-8 * np.max(np.abs(eig))
    # Without a budget the same call converges.
    full = hessian_spectrum(f, x0, method="lanczos", k=30)
    np.testing.assert_allclose(full, eig[:30], rtol=0, atol=1e-8 * np.max(np.abs(eig)))


def test_classify_with_lanczos_budget_is_partial():
    f, eig = _clustered_quadratic()
    x0 = jnp.zeros(eig.size)
    rep = classify_critical_point(f, x0, method="lanczos", k=30, max_hvps=300)
    assert rep.part == "partial" and not rep.complete
    converged_negative = np.sum(rep.eigenvalues < -rep.zero_tol)
    assert str(rep.kind) == ("strict saddle" if converged_negative else "undecided")
    assert rep.to_dict()["n_eigenvalues"] == rep.eigenvalues.size < 30
    ample = classify_critical_point(f, x0, method="lanczos", k=30, max_hvps=20_000)
    assert ample.part == "smallest" and ample.index == 2 and str(ample.kind) == "strict saddle"


def test_partial_spectrum_verdicts():
    assert str(classify_spectrum([], grad_norm=0.0, gtol=1e-8, part="partial")) == "undecided"
    assert str(classify_spectrum([], grad_norm=1.0, gtol=1e-8, part="partial")) == "not critical"
    assert str(classify_spectrum([1.0], grad_norm=0.0, gtol=1e-8, part="partial")) == "undecided"
    assert str(classify_spectrum([-1.0, 1.0], grad_norm=0.0, gtol=1e-8, part="partial")) == "strict saddle"
    with pytest.raises(ValueError, match="eigenvalues"):
        classify_spectrum([], grad_norm=0.0, gtol=1e-8, part="smallest")
    rep = CriticalPointReport.from_spectrum(1.0, 0.0, [], gtol=1e-8, part="partial", n=5)
    assert rep.to_dict()["min_eigenvalue"] is None and rep.index == 0


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_lanczos_budget_bad(bad):
    with pytest.raises(ValueError, match="max_hvps"):
        hessian_spectrum(lambda x: jnp.sum(x ** 2), jnp.zeros(5), method="lanczos", k=2, max_hvps=bad)


@pytest.mark.parametrize("activation", ["relu", "softplus", "tanh", "sigmoid", "erf", "gelu", "g"])
@pytest.mark.parametrize("widths,bias", [((2, 5, 1), True), ((3, 4, 2), True), ((3, 4, 2), False)])
def test_two_layer_mse_hessian_matches_autodiff(activation, widths, bias):
    import jax
    from jax.flatten_util import ravel_pytree

    from symland import MLP, mse
    from symland._critical import two_layer_mse_hessian

    model = MLP(widths, activation=activation, bias=bias)
    params = model.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (40, widths[0]))
    y = jax.random.normal(jax.random.PRNGKey(2), (40, widths[-1]))
    flat, unravel = ravel_pytree(params)
    # Both sides jitted: op by op, the 21 cases compiled 791 primitives (51 s of a cold run).
    ref = jax.jit(jax.hessian(lambda t: mse(model, unravel(t), x, y)))(flat)
    H = jax.jit(lambda p: two_layer_mse_hessian(model, p, x, y))(params)
    assert H.shape == ref.shape
    np.testing.assert_allclose(H, ref, rtol=0, atol=1e-12 * max(1.0, float(jnp.max(jnp.abs(ref)))))


def test_two_layer_mse_hessian_rejects_deeper_networks():
    import jax

    from symland import MLP
    from symland._critical import two_layer_mse_hessian

    model = MLP((2, 3, 3, 1))
    params = model.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="model"):
        two_layer_mse_hessian(model, params, jnp.zeros((4, 2)), jnp.zeros((4, 1)))


def test_hessian_vector_product_linearised_above_the_dense_threshold(monkeypatch):
    """Above LINEARISE_THRESHOLD (= DENSE_THRESHOLD) the gradient is linearised once (`jax.linearize`);
    the product is the same as forward-over-reverse's, here forced at a small size, vmapped too (as
    `_plateau` uses it)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.flatten_util import ravel_pytree

    import symland as s
    import symland._critical as critical

    model = s.MLP((3, 4, 2), "tanh")
    params = model.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (30, 3))
    y = jnp.sin(x[:, :2])
    loss_fn = lambda p: s.mse(model, p, x, y)
    theta, unravel = ravel_pytree(params)
    H = jax.jit(jax.hessian(lambda th: loss_fn(unravel(th))))(theta)
    T = jax.random.normal(jax.random.PRNGKey(2), (3, theta.size))
    plain = s.hessian_vector_product(loss_fn, params)
    monkeypatch.setattr(critical, "LINEARISE_THRESHOLD", 0)
    linear = s.hessian_vector_product(loss_fn, params)
    for hvp in (plain, linear):
        np.testing.assert_allclose(jax.vmap(hvp)(T), T @ H, rtol=1e-10, atol=1e-12)
