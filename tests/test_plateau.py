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
    """A σ_{0⇔2}-fixed point of a 3-4-3-2 softplus network (layer 2), its data, the dense spectrum of
    ∇²L, its odd block, and its even block (dense, on an orthonormal basis of the even subspace)."""
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    import symland as s
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
    H = np.asarray(jax.jit(jax.hessian(lambda t: loss(unravel(t))))(theta))
    odd = s.odd_block_spectrum(loss, p, 2, l, m)
    il, im = neuron_blocks(unravel, theta.size, 2)[[l, m]]
    Q = np.zeros((theta.size, il.size))  # the odd directions, by hand
    Q[il, np.arange(il.size)], Q[im, np.arange(il.size)] = 2 ** -0.5, -2 ** -0.5
    E = np.linalg.svd(np.eye(theta.size) - Q @ Q.T)[0][:, :theta.size - il.size]
    return model, p, x, y, (np.linalg.eigvalsh(H), odd), np.linalg.eigvalsh(E.T @ H @ E)


@pytest.mark.parametrize("noise", [0.0003, 0.003])
def test_even_block_spectrum_is_the_dense_even_block(noise):
    """Its eigenvalues are the even block's smallest, computed densely (here all negative: the point
    is σ-fixed but no minimum of the merged network), and the two blocks' spectra make up ∇²L's; two
    iterations are not enough, and the status says so."""
    import symland as s

    model, p, x, y, (full, odd), even = _even_toy(noise)
    np.testing.assert_allclose(np.sort(np.concatenate([odd, even])), full, rtol=0, atol=1e-12 * np.abs(full).max())
    r = s.even_block_spectrum(model, p, x, y, 2, 0, 2, k=4, max_iter=300)
    assert r.hvps > 0 and r.n_flat == 0 and r.converged
    np.testing.assert_allclose(r.eigenvalues, even[:4], rtol=1e-5, atol=1e-12)
    # Kato–Temple: a Ritz value lies within ‖r‖²/gap of its eigenvalue (gap: to the nearest other one).
    # At noise 0.003 the smallest is off by 1.1e−9 (1.5e−6 of it; 3.6e−11 with the layer-1 blocks by
    # direct products, before `polarised_grams` changed the preconditioner's rounding), its residual
    # 3.0e−6 and its gap 4.2e−4, so the bound is 2.1e−8
    gaps = np.array([np.min(np.abs(np.delete(even, i) - even[i])) for i in range(4)])
    assert np.all(np.abs(r.eigenvalues - even[:4]) <= np.asarray(r.residuals) ** 2 / gaps + 1e-12)
    assert np.all(r.eigenvalues >= even[:4] - 1e-12)  # Ritz values bound the eigenvalues from above
    few = s.even_block_spectrum(model, p, x, y, 2, 0, 2, k=4, max_iter=2)  # stopped short: says so
    assert few.status == "max_steps" and few.hvps < r.hvps


@pytest.mark.parametrize("k, decided", [(8, True), (4, False)])
def test_permutation_point_report_joins_the_even_block_spectrum(k, decided):
    """`classify_permutation_point(even=EvenBlockSpectrum)`: the odd block exactly and the even block's
    k smallest (here the dense ones, so that only the joining is tested) make one report; with a
    positive among them it is `smallest` and its index and nullity are the dense Hessian's; without,
    lower bounds; an unconverged solve makes it `partial`."""
    import symland as s
    from symland._plateau import classify_permutation_point

    model, p, x, y, (full, odd), even = _even_toy(0.0003)
    loss = lambda q: s.mse(model, q, x, y)
    spectrum = s.EvenBlockSpectrum(even[:k], np.zeros(k), "converged", 0, 0)
    r = classify_permutation_point(loss, p, 2, 0, 2, even=spectrum, gtol=1.0)  # σ-fixed, not critical
    assert r.part == "smallest" and r.decided == decided and str(r.kind) == "strict saddle"
    dense = (int(np.sum(full < -r.zero_tol)), int(np.sum(np.abs(full) <= r.zero_tol)))
    if decided:
        assert (r.index, r.nullity) == dense
        assert r.zero_tol == pytest.approx(s.zero_tolerance(full), rel=1e-10)
    else:
        assert r.index <= dense[0] and r.nullity <= dense[1]
        assert np.all(r.eigenvalues <= even[k - 1])  # odd values above the k-th even one are cut
    short = classify_permutation_point(loss, p, 2, 0, 2, even=s.EvenBlockSpectrum(even[:k], np.zeros(k),
                                                                                 "max_steps", 0, 0))
    assert short.part == "partial" and not short.decided


def test_joined_report_is_partial_when_the_scale_of_its_zero_tolerance_is_unknown(monkeypatch):
    """As in `classify_critical_point`: when Lanczos does not converge ∇²L's largest eigenvalue, the
    zero tolerance is only bounded below, so the joined report is `partial` even with a converged
    even block."""
    import symland as s
    import symland._critical as critical
    from symland._plateau import classify_permutation_point

    model, p, x, y, _, even = _even_toy(0.0003)
    loss = lambda q: s.mse(model, q, x, y)
    spectrum = s.EvenBlockSpectrum(even[:8], np.zeros(8), "converged", 0, 0)
    assert classify_permutation_point(loss, p, 2, 0, 2, even=spectrum).part == "smallest"

    def unconverged(loss_fn, params, **kw):
        raise critical.SpectrumNotConverged(np.array([]), 1, 7)

    monkeypatch.setattr(critical, "hessian_spectrum", unconverged)
    r = classify_permutation_point(loss, p, 2, 0, 2, even=spectrum)
    assert r.part == "partial" and not r.decided


def test_even_block_spectrum_counts_the_flat_directions_of_dark_inputs():
    """An input that is always zero makes every first-layer row exactly flat along it: n₁ = 4 zero
    eigenvalues of the even block that LOBPCG leaves out and `n_flat` counts. Its values are the
    smallest of the even block off those directions (dense), and the joined report holds the zeros."""
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    import symland as s
    from symland._plateau import classify_permutation_point
    from symland._transition_network import neuron_blocks

    model, p, _, _, _, _ = _even_toy(0.0003)
    x = jax.random.normal(jax.random.PRNGKey(0), (60, 3)).at[:, 2].set(0.0)
    y = model.apply(p, x) + 0.0003 * jnp.sin(x[:, :2])
    loss = lambda q: s.mse(model, q, x, y)
    theta, unravel = ravel_pytree(p)
    H = np.asarray(jax.jit(jax.hessian(lambda t: loss(unravel(t))))(theta))
    il, im = neuron_blocks(unravel, theta.size, 2)[[0, 2]]
    Q = np.zeros((theta.size, il.size + 4))  # the odd directions and the 4 dark ones, W₁[j, 2]
    Q[il, np.arange(il.size)], Q[im, np.arange(il.size)] = 2 ** -0.5, -2 ** -0.5
    Q[[3 * j + 2 for j in range(4)], il.size + np.arange(4)] = 1.0
    assert np.abs(H @ Q[:, il.size:]).max() == 0.0  # exactly flat
    E = np.linalg.svd(np.eye(theta.size) - Q @ Q.T)[0][:, :theta.size - Q.shape[1]]
    rest = np.linalg.eigvalsh(E.T @ H @ E)
    r = s.even_block_spectrum(model, p, x, y, 2, 0, 2, k=5, max_iter=300)
    assert r.converged and r.n_flat == 4
    np.testing.assert_allclose(r.eigenvalues, rest[:5], rtol=1e-6, atol=1e-12)
    rep = classify_permutation_point(loss, p, 2, 0, 2, even=r, gtol=1.0)  # σ-fixed, not critical
    assert np.all(rest[:5] < 0) and rep.nullity == 0 and not rep.decided  # zeros above the 5 found: cut
    assert r.n_flat_joined == 0
    k = int(np.argmax(rest > 1e-9)) + 1  # up to the first positive one, the flat zeros join the report
    full = np.linalg.eigvalsh(H)
    rep = classify_permutation_point(loss, p, 2, 0, 2, even=s.EvenBlockSpectrum(rest[:k], np.zeros(k), "converged",
                                                                               0, 4), gtol=1.0)
    assert rep.decided and np.sum(rep.eigenvalues == 0.0) == 4
    assert (rep.index, rep.nullity) == (int(np.sum(full < -rep.zero_tol)), int(np.sum(np.abs(full) <= rep.zero_tol)))


@pytest.mark.parametrize("kw, name", [({"layer": 1}, "layer"), ({"k": 7}, "k"), ({"k": 0}, "k"),
                                      ({"loss": "l1"}, "loss"), ({"k": 3, "max_iter": 0}, "max_iter"),
                                      ({"m": 1}, "params")])
def test_even_block_spectrum_refuses_bad_arguments(kw, name):
    import symland as s

    model, p, x, y, _, _ = _even_toy(0.003)
    args = {"layer": 2, "l": 0, "m": 2}
    args.update({k: v for k, v in kw.items() if k in args})
    rest = {k: v for k, v in kw.items() if k not in args}
    with pytest.raises(ValueError, match=f"^{name}:"):
        s.even_block_spectrum(model, p, x, y, args["layer"], args["l"], args["m"], **rest)


def test_even_block_spectrum_reuses_a_given_problem(monkeypatch):
    """With the caller's fixed-δ problem it builds none of its own (so compiles nothing again), and
    factorises that problem once, at the point (δ = 0): the eigenvalues are the dense even block's."""
    import symland as s
    import symland._newton_krylov as nk

    model, p, x, y, _, even = _even_toy(0.003)
    problem = nk.path_problem(model, 2, "mse", x, preconditioner="gauss-newton")
    real, calls, built = problem.factorise, [], []
    problem.factorise = lambda *a, **kw: calls.append(a[1]) or real(*a, **kw)
    original = nk.path_problem
    monkeypatch.setattr(nk, "path_problem", lambda *a, **kw: built.append(a) or original(*a, **kw))
    r = s.even_block_spectrum(model, p, x, y, 2, 0, 2, k=4, max_iter=300, problem=problem)
    assert not built and calls == [0.0] and r.converged
    s.even_block_spectrum(model, p, x, y, 2, 0, 2, k=1, max_iter=1)
    assert len(built) == 1  # without it, its own
    np.testing.assert_allclose(r.eigenvalues, even[:4], rtol=1e-5, atol=1e-12)


def test_even_block_spectrum_refuses_a_problem_without_factors():
    import symland as s
    from symland._newton_krylov import path_problem

    model, p, x, y, _, _ = _even_toy(0.003)
    ekfac = path_problem(model, 2, "mse", x, preconditioner="ekfac")
    with pytest.raises(ValueError, match="^problem:"):
        s.even_block_spectrum(model, p, x, y, 2, 0, 2, k=3, problem=ekfac)


def test_even_block_spectrum_refuses_bad_data():
    import symland as s

    model, p, x, y, _, _ = _even_toy(0.003)
    with pytest.raises(ValueError, match="^x:"):
        s.even_block_spectrum(model, p, x[:, :2], y, 2, 0, 2, k=3)
    with pytest.raises(ValueError, match="^y:"):
        s.even_block_spectrum(model, p, x, y[:-1], 2, 0, 2, k=3)
