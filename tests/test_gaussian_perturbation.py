"""Tests for symland.gaussian._perturbation: V = I + εE continuation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from symland.gaussian import check_perturbation_size, expected_loss, follow_perturbed_minimum, perturbation_direction
from symland.gaussian._perturbation import _derivatives


def test_direction_is_unit_and_reproducible():
    E = perturbation_direction(5, seed=3)
    assert abs(np.linalg.norm(E) - 1) < 1e-14
    np.testing.assert_array_equal(E, perturbation_direction(5, seed=3))


def test_mixed_derivative_by_finite_differences():
    # the tangent predictor uses ∂(∇_W L)/∂ε; compare with central differences in ε
    k = 4
    rng = np.random.default_rng(1)
    W = jnp.asarray(np.eye(k) + 0.1 * rng.standard_normal((k, k)))
    E = jnp.asarray(perturbation_direction(k, 2))
    mixed = np.asarray(_derivatives(W, jnp.eye(k), E)[3])
    g = lambda e: np.asarray(jax.grad(lambda X: expected_loss(X, jnp.eye(k) + e * E))(W))
    h = 1e-5
    np.testing.assert_allclose(mixed, (g(h) - g(-h)) / (2 * h), atol=1e-8)


def test_global_minimum_follows_the_target():
    k = 4
    E = perturbation_direction(k)
    br = follow_perturbed_minimum(np.eye(k), E, 0.2, n_steps=2)
    assert br.end == "eps_max" and abs(br.eps_end - 0.2) < 1e-15
    np.testing.assert_allclose(br.W, np.eye(k) + 0.2 * E, atol=1e-9)
    assert all(kd == "minimum" for kd in br.kinds) and br.w1[0] == 0.0


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.3", 1j, None, True])
def test_bad_perturbation_size(bad):
    with pytest.raises(ValueError, match="eps_max"):
        check_perturbation_size(bad)
