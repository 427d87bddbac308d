"""Tests for symland.gaussian._wide: inputs wider than the network (d >= k)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from symland.gaussian import (
    expected_loss,
    global_minimum_spectrum,
    loss_hessian,
    orthogonal_hessian_block,
    spectral_distance,
    wide_hessian,
    wide_point,
    wide_spectrum,
    wide_teacher,
    power_law_exponent,
)
from symland.gaussian._families import SAFRAN_SHAMIR_K7, fixed_point_subspace, solve_on_subspace


def _k7_point():
    sp = fixed_point_subspace(7, "S_{k-1}")
    z, _ = solve_on_subspace(sp, np.asarray(SAFRAN_SHAMIR_K7)[None])
    return np.asarray(sp.to_full(z[0]))


def test_wide_hessian_matches_dense_autodiff_hessian():
    # the closed-form blocks H_k ⊕ (I ⊗ H_⊥) against loss_hessian and jax.hessian on the k × d problem
    W7 = _k7_point()
    k, d = 7, 9
    W, V = jnp.asarray(wide_point(W7, d)), jnp.asarray(wide_teacher(k, d))
    dense = np.asarray(loss_hessian(W, V))
    H = wide_hessian(W7, d)
    assert np.max(np.abs(H - dense)) < 1e-10
    auto = np.asarray(jax.jit(jax.hessian(lambda X: expected_loss(X.reshape(k, d), V)))(W.ravel()))
    assert np.max(np.abs(H - auto)) < 1e-9


def test_orthogonal_block_by_finite_differences():
    # H_⊥ = second derivative along one extra input column, by central differences of the loss
    W7 = _k7_point()
    k, d = 7, 8
    V = jnp.asarray(wide_teacher(k, d))
    Hp = orthogonal_hessian_block(W7)
    rng = np.random.default_rng(0)
    u = rng.standard_normal(k)
    W = wide_point(W7, d)
    h = 1e-4
    f = lambda t: float(expected_loss(jnp.asarray(W + t * np.outer(u, np.eye(d)[d - 1])), V))
    fd = (f(h) - 2 * f(0.0) + f(-h)) / h**2
    assert abs(fd - u @ Hp @ u) < 1e-5 * (1 + abs(fd))


def test_global_minimum_orthogonal_block_closed_form():
    # at [I_k | 0]: H_⊥ = (I + J)/4, eigenvalues 1/4 (k − 1 times) and (k + 1)/4
    for k in (3, 6, 11):
        np.testing.assert_allclose(orthogonal_hessian_block(np.eye(k)), (np.eye(k) + 1) / 4, atol=1e-14)


def test_wide_spectrum_global_minimum_and_family_point():
    k, d = 6, 10
    s = wide_spectrum(np.eye(k), d)
    assert s.eigenvalues.size == d * k and s.loss < 1e-14 and s.grad_norm < 1e-14
    expect = sorted([v for v, m in global_minimum_spectrum(k) for _ in range(m)] + [0.25] * (d - k) * (k - 1)
                    + [(k + 1) / 4] * (d - k))
    np.testing.assert_allclose(s.eigenvalues, expect, atol=1e-12)
    p = wide_spectrum(_k7_point(), 12)
    assert str(p.report.kind) == "minimum" and p.grad_norm < 1e-12
    assert sum(m for _, m in p.multiplicities()) == 7 * 12


def test_wide_bad_input():
    with pytest.raises(ValueError, match="d: .*d=5 < k=6"):
        wide_point(np.eye(6), 5)
    with pytest.raises(ValueError, match="d:"):
        wide_teacher(4, 2.5)
    with pytest.raises(ValueError, match="eig_b"):
        spectral_distance([1.0], [1.0, 2.0])


def test_power_law_exponent_recovers_slope():
    x = np.array([6.0, 10, 14, 20])
    p, se = power_law_exponent(x, 3 * x**-0.5)
    assert abs(p + 0.5) < 1e-12
