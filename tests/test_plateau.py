import json

import numpy as np
import pytest
import jax

from symland import MLP, loss_function, zero_tolerance
from symland._embedding import embed_in_wider
from symland._plateau import (check_permutation_point, identical_neuron_groups,
                              is_permutation_point, plateau_directions, verify_plateau)

from microscope_points import narrow_critical_point


@pytest.fixture(scope="module")
def scalar_point():
    model, p, x, y, r = narrow_critical_point((2, 3, 1), (2, 4, 1), seed=3)
    assert r.converged
    big = embed_in_wider(p, 1, [0, 1, 2, 1])
    return big, loss_function(MLP((2, 4, 1), "tanh"), x, y)


def test_scalar_output_plateau_is_a_line_of_critical_points(scalar_point):
    """§4.2 (i) with n_{k+1} = 1: a line of critical points, ≥ 1 zero eigenvalue."""
    big, L = scalar_point
    rep = verify_plateau(L, big, 1)
    assert rep.groups == [[1, 3]]
    assert rep.plane_dimension == rep.plateau_dimension == rep.critical_dimension == 1
    assert rep.max_rel_loss_change <= 1e-12
    assert rep.plane_grad_norm <= 1e-13
    assert rep.hessian_nullity >= 1
    assert rep.point.is_critical and rep.point.nullity == rep.hessian_nullity
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["point"]["nullity"] == rep.hessian_nullity and d["groups"] == [[1, 3]]


def test_multi_output_plane_is_equal_loss_but_not_critical():
    """§4.2 (i) claims n_{k+1} critical dimensions; only the loss is constant on the plane."""
    model, p, x, y, r = narrow_critical_point((2, 3, 3), (2, 4, 3), seed=0)
    big = embed_in_wider(p, 1, [0, 1, 2, 2])
    L = loss_function(MLP((2, 4, 3), "tanh"), x, y)
    rep = verify_plateau(L, big, 1, [[2, 3]])
    assert rep.plane_dimension == rep.plateau_dimension == 3
    assert rep.max_rel_loss_change <= 1e-12
    assert rep.grad_norm <= 1e-13
    assert rep.plane_grad_norm > 1e-6          # off the critical line the gradient is not zero
    assert rep.critical_dimension == 1
    assert rep.critical_grad_norm <= 1e-13
    assert rep.hessian_nullity >= 1
    assert rep.hessian_nullity + rep.hessian_index >= 3


def test_plateau_directions_shape_and_sum_rule():
    p = MLP((2, 4, 3)).init(jax.random.PRNGKey(0))
    D = plateau_directions(p, 1, [[0, 2, 3]])
    assert D.shape == (2 * 3, 4 * 2 + 4 + 3 * 4 + 3)
    np.testing.assert_array_equal(D.sum(axis=1), 0.0)
    assert np.linalg.matrix_rank(D) == 6


def test_permutation_point_checks(scalar_point):
    big, L = scalar_point
    check_permutation_point(big, 1, 1, 3, loss_fn=L, gtol=1e-12)
    assert is_permutation_point(big, 1, 3, 1, loss_fn=L)
    assert identical_neuron_groups(big, 1) == [[1, 3]]
    with pytest.raises(ValueError, match="incoming vectors of neurons 0 and 3 differ"):
        check_permutation_point(big, 1, 0, 3)
    assert not is_permutation_point(big, 1, 0, 3)
    (W1, b1), (W2, b2) = big
    uneven = [(W1, b1), (W2.at[0, 1].add(0.1).at[0, 3].add(-0.1), b2)]
    with pytest.raises(ValueError, match="outgoing weights of neurons 1 and 3 differ"):
        check_permutation_point(uneven, 1, 1, 3)
    moved = [(W1.at[1, 0].add(1e-3).at[3, 0].add(1e-3), b1), (W2, b2)]
    with pytest.raises(ValueError, match="gradient not zero"):
        check_permutation_point(moved, 1, 1, 3, loss_fn=L)
    with pytest.raises(ValueError, match="l, m"):
        check_permutation_point(big, 1, 1, 1)
    with pytest.raises(ValueError, match="no two neurons share"):
        verify_plateau(L, [(W1.at[3].add(1.0), b1), (W2, b2)], 1)


def _swap_fixed(model, layer, l, m, seed=0):
    """A random θ that σ^(k)_{l⇔m} fixes: ϑ_m := ϑ_l, both outgoing columns := their mean."""
    p = list(model.init(jax.random.PRNGKey(seed)))
    (W, b), (W2, b2) = p[layer - 1], p[layer]
    mean = 0.5 * (W2[:, l] + W2[:, m])
    p[layer - 1] = (W.at[m].set(W[l]), None if b is None else b.at[m].set(b[l]))
    p[layer] = (W2.at[:, l].set(mean).at[:, m].set(mean), b2)
    return p


@pytest.mark.parametrize("widths, layer, l, m, bias", [((2, 4, 3), 1, 2, 3, True), ((3, 4, 5, 2), 2, 3, 1, True),
                                                       ((3, 4, 5, 2), 1, 0, 2, True), ((3, 4, 5, 2), 2, 0, 4, False)])
def test_permutation_point_spectrum_is_the_odd_and_even_blocks(widths, layer, l, m, bias):
    """At a σ-fixed θ the σ-odd block's p = n_{k−1} + 1 + n_{k+1} eigenvalues (p HVPs; no 1 without
    biases) are eigenvalues of ∇²L, and with the even block's they are its whole dense spectrum,
    whatever the layer."""
    from symland import classify_critical_point, hessian_spectrum
    from symland._plateau import classify_permutation_point, odd_block_spectrum

    model = MLP(widths, "tanh", bias=bias)
    p = _swap_fixed(model, layer, l, m)
    x = jax.random.normal(jax.random.PRNGKey(1), (30, widths[0]))
    y = jax.random.normal(jax.random.PRNGKey(2), (30, widths[-1]))
    L = loss_function(model, x, y)
    full = hessian_spectrum(L, p, method="dense")
    scale = np.max(np.abs(full))
    odd = odd_block_spectrum(L, p, layer, l, m)
    assert odd.size == widths[layer - 1] + bias + widths[layer + 1]
    assert np.max(np.min(np.abs(full[None, :] - odd[:, None]), axis=1)) <= 1e-12 * scale
    r = classify_permutation_point(L, p, layer, l, m)
    assert r.part == "all" and r.n == full.size
    np.testing.assert_allclose(r.eigenvalues, full, rtol=0, atol=1e-12 * scale)
    ref = classify_critical_point(L, p)
    assert (r.kind, r.index, r.nullity) == (ref.kind, ref.index, ref.nullity)
    assert r.grad_norm == pytest.approx(ref.grad_norm, rel=1e-12)
    # even=False: the odd block alone, its zero tolerance still scaled by ‖H‖₂ (the largest eigenvalue)
    o = classify_permutation_point(L, p, layer, l, m, even=False)
    assert o.part == "partial" and o.n == full.size and o.grad_norm == r.grad_norm
    np.testing.assert_allclose(o.eigenvalues, odd, rtol=0, atol=1e-12 * scale)
    assert o.zero_tol == pytest.approx(zero_tolerance(full), rel=1e-10)
    with pytest.raises(ValueError, match="^even:"):
        classify_permutation_point(L, p, layer, l, m, even="no")


def test_permutation_point_lanczos_keeps_the_exact_odd_block(monkeypatch):
    """With Lanczos on the even block the report's eigenvalues are still eigenvalues of ∇²L; the
    multi-output permutation point of §4.2 (i) is a strict saddle (its odd block has a negative
    eigenvalue) even when Lanczos converges nothing (as on Fig. 3), and `smallest` cuts the odd
    values above the k-th."""
    import symland._critical as critical
    from symland import hessian_spectrum
    from symland._plateau import classify_permutation_point, odd_block_spectrum

    real = critical.hessian_spectrum

    def nothing_smallest(loss_fn, params, **kw):  # Lanczos that converged none of the smallest
        if kw.get("which", "smallest") == "smallest":
            raise critical.SpectrumNotConverged([], kw["k"], 0)
        return real(loss_fn, params, **kw)

    model, p, x, y, r = narrow_critical_point((2, 3, 3), (2, 4, 3), seed=0)
    big = embed_in_wider(p, 1, [0, 1, 2, 2])
    L = loss_function(MLP((2, 4, 3), "tanh"), x, y)
    full = hessian_spectrum(L, big, method="dense")
    odd = odd_block_spectrum(L, big, 1, 2, 3)
    assert odd[0] < -1e-6  # the saddle direction lies in the odd block
    smallest = classify_permutation_point(L, big, 1, 2, 3, method="lanczos", k=3)
    assert smallest.part == "smallest" and smallest.kind == "strict saddle"
    assert 3 <= smallest.eigenvalues.size < full.size
    np.testing.assert_allclose(smallest.eigenvalues, full[:smallest.eigenvalues.size], atol=1e-8 * np.max(np.abs(full)))
    monkeypatch.setattr(critical, "hessian_spectrum", nothing_smallest)
    partial = classify_permutation_point(L, big, 1, 2, 3, method="lanczos", k=3)
    assert partial.part == "partial" and partial.kind == "strict saddle"
    np.testing.assert_array_equal(partial.eigenvalues, odd)  # the exact odd block, and nothing else
    assert partial.index == np.sum(odd < -partial.zero_tol) >= 1


def test_permutation_point_spectrum_refuses_a_point_that_is_not_one(scalar_point):
    from symland._plateau import classify_permutation_point, odd_block_spectrum

    big, L = scalar_point
    with pytest.raises(ValueError, match="params: not a permutation point"):
        odd_block_spectrum(L, big, 1, 0, 3)
    with pytest.raises(ValueError, match="params: not a permutation point"):
        classify_permutation_point(L, big, 1, 0, 3)


def _even_toy(noise):
    """A σ_{0⇔2}-fixed point of a 3-4-3-2 softplus network (layer 2), its data and the dense inertia and
    deflated δ = 0 free Hessian (solver coordinates) that `even_block_inertia` works with."""
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    import symland as s
    from symland._newton_krylov import path_problem
    from symland._path import effective_params
    from symland._transition_network import neuron_blocks

    model = s.MLP((3, 4, 3, 2), "softplus")
    (W1, b1), (W2, b2), (W3, b3) = model.init(jax.random.PRNGKey(3))
    l, m = 0, 2
    a = 0.5 * (W3[:, l] + W3[:, m])
    p = [(W1, b1), (W2.at[m].set(W2[l]), b2.at[m].set(b2[l])), (W3.at[:, l].set(a).at[:, m].set(a), b3)]
    x = jax.random.normal(jax.random.PRNGKey(0), (60, 3))
    y = model.apply(p, x) + noise * jnp.sin(x[:, :2])
    loss = lambda q: s.mse(model, q, x, y)
    theta, unravel = ravel_pytree(p)
    full = np.linalg.eigvalsh(np.asarray(jax.hessian(lambda t: loss(unravel(t)))(theta)))
    odd = s.odd_block_spectrum(loss, p, 2, l, m)
    # the deflated free Hessian, independently: dense, u = e_0 (any direction), B by hand
    free = [p[0], (W2.at[m].set(jnp.eye(4)[0]), b2.at[m].set(0.0)), p[2]]
    v, unv = ravel_pytree(free)
    problem = path_problem(model, 2, "mse", x, preconditioner="gauss-newton")
    Hs = np.asarray(jax.hessian(lambda sv: s.mse(model, effective_params(
        unv(problem.to_v(sv)), 2, l, m, 0.0, None), x, y))(problem.to_s(v)))
    il, im = neuron_blocks(unravel, theta.size, 2)[[l, m]]
    B = np.zeros((theta.size, 7))
    B[im[:5], np.arange(5)] = 1.0
    B[il[5:], [5, 6]], B[im[5:], [5, 6]] = 2 ** -0.5, -2 ** -0.5
    Q = np.linalg.svd(np.eye(theta.size) - B @ B.T)[0][:, :theta.size - 7]
    return model, p, x, y, (full, odd), np.linalg.eigvalsh(Q.T @ Hs @ Q)


def test_even_block_inertia_is_the_congruent_spectrum_and_the_even_index():
    """Near a fit (small residuals), its Ritz values are the smallest eigenvalues of the deflated δ = 0
    free Hessian, computed densely, and their count of negatives with the odd block's is the index of
    ∇²L (Sylvester); two iterations are not enough, and the status says so."""
    import symland as s

    model, p, x, y, (full, odd), deflated = _even_toy(0.003)
    tol = 1e-10
    assert int(np.sum(full < -tol)) == int(np.sum(odd < -tol)) + int(np.sum(deflated < -tol))
    r = s.even_block_inertia(model, p, x, y, 2, 0, 2, k=4, max_iter=300)
    assert r.converged and r.hvps > 0
    np.testing.assert_allclose(r.eigenvalues, deflated[:4], rtol=1e-6)
    assert np.all(r.eigenvalues >= deflated[:4] - 1e-12)  # Ritz values bound the eigenvalues from above
    assert r.n_negative == int(np.sum(deflated[:4] < 0)) == 4
    few = s.even_block_inertia(model, p, x, y, 2, 0, 2, k=4, max_iter=2)  # stopped short: says so
    assert few.status == "max_steps" and few.hvps < r.hvps


@pytest.mark.parametrize("kw, name", [({"layer": 1}, "layer"), ({"k": 7}, "k"), ({"k": 0}, "k"),
                                      ({"loss": "l1"}, "loss"), ({"k": 3, "max_iter": 0}, "max_iter"),
                                      ({"m": 1}, "params")])
def test_even_block_inertia_refuses_bad_arguments(kw, name):
    import symland as s

    model, p, x, y, _, _ = _even_toy(0.003)
    args = {"layer": 2, "l": 0, "m": 2}
    args.update({k: v for k, v in kw.items() if k in args})
    rest = {k: v for k, v in kw.items() if k not in args}
    with pytest.raises(ValueError, match=f"^{name}:"):
        s.even_block_inertia(model, p, x, y, args["layer"], args["l"], args["m"], **rest)


def test_even_block_inertia_refuses_bad_data():
    import symland as s

    model, p, x, y, _, _ = _even_toy(0.003)
    with pytest.raises(ValueError, match="^x:"):
        s.even_block_inertia(model, p, x[:, :2], y, 2, 0, 2, k=3)
    with pytest.raises(ValueError, match="^y:"):
        s.even_block_inertia(model, p, x, y[:-1], 2, 0, 2, k=3)
