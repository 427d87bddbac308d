import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symland as s
from symland import MLP
from symland._symmetry import neuron_distance, neuron_vector, permute_layer, rescale_neurons, swap_neurons

MODEL = s.MLP((3, 5, 4, 2), activation="tanh")
PARAMS = MODEL.init(jax.random.PRNGKey(0))
X = jax.random.normal(jax.random.PRNGKey(1), (11, 3))


@settings(max_examples=25, deadline=None)
@given(st.permutations(range(5)), st.permutations(range(4)))
def test_network_function_invariant_under_permutations(p1, p2):
    q = s.permute_layer(s.permute_layer(PARAMS, 1, p1), 2, p2)
    np.testing.assert_allclose(MODEL.apply(q, X), MODEL.apply(PARAMS, X), rtol=1e-13, atol=1e-13)
    perms = s.permutation_between(PARAMS, q)
    assert perms is not None
    np.testing.assert_array_equal(perms[0], p1)
    np.testing.assert_array_equal(perms[1], p2)
    assert s.are_permutation_equivalent(s.canonical_order(q), s.canonical_order(PARAMS), atol=1e-14)
    for a, b in zip(jax.tree_util.tree_leaves(s.canonical_order(q)),
                    jax.tree_util.tree_leaves(s.canonical_order(PARAMS))):
        np.testing.assert_allclose(a, b, atol=1e-14)


def test_swap_and_vectors():
    q = s.swap_neurons(PARAMS, 1, 0, 3)
    np.testing.assert_allclose(s.neuron_vector(q, 1, 0), s.neuron_vector(PARAMS, 1, 3))
    np.testing.assert_allclose(q[1][0][:, 0], PARAMS[1][0][:, 3])
    W, b = PARAMS[0]
    np.testing.assert_allclose(s.neuron_vector(PARAMS, 1, 2), np.concatenate([W[2], b[2:3]]))
    d = s.neuron_distance(PARAMS, 1, 0, 3)
    np.testing.assert_allclose(d, np.linalg.norm(s.neuron_vector(PARAMS, 1, 0) - s.neuron_vector(PARAMS, 1, 3)))
    # a swap is its own inverse
    back = s.swap_neurons(q, 1, 0, 3)
    for a, c in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(PARAMS)):
        np.testing.assert_array_equal(a, c)


def test_not_equivalent_when_perturbed():
    q = s.swap_neurons(PARAMS, 2, 1, 2)
    q[0] = (q[0][0].at[0, 0].add(1e-3), q[0][1])
    assert not s.are_permutation_equivalent(PARAMS, q, atol=1e-8)


def test_bad_input():
    with pytest.raises(ValueError, match="layer"):
        s.swap_neurons(PARAMS, 3, 0, 1)  # output layer
    with pytest.raises(ValueError, match="layer"):
        s.swap_neurons(PARAMS, 0, 0, 1)
    with pytest.raises(ValueError, match="l, m"):
        s.swap_neurons(PARAMS, 1, 2, 2)
    with pytest.raises(ValueError, match="out of range"):
        s.neuron_distance(PARAMS, 1, 0, 5)
    with pytest.raises(ValueError, match="perm"):
        s.permute_layer(PARAMS, 1, [0, 1, 2, 3, 3])


def test_rescale_neurons_is_a_symmetry_of_relu_only():
    x = jax.random.normal(jax.random.PRNGKey(3), (30, 3))
    for activation, invariant in (("relu", True), ("softplus", False), ("tanh", False)):
        model = s.MLP((3, 4, 2), activation=activation)
        params = model.init(jax.random.PRNGKey(1))
        q = s.rescale_neurons(params, 1, [0, 2], 2.5)
        diff = float(jnp.max(jnp.abs(model.apply(q, x) - model.apply(params, x))))
        assert (diff < 1e-13) == invariant
        np.testing.assert_allclose(s.neuron_vector(q, 1, 0), 2.5 * s.neuron_vector(params, 1, 0))
        np.testing.assert_allclose(s.neuron_vector(q, 1, 1), s.neuron_vector(params, 1, 1))


def test_rescale_neurons_bad_input():
    model = s.MLP((3, 4, 2))
    params = model.init(jax.random.PRNGKey(1))
    with pytest.raises(ValueError, match="c:"):
        s.rescale_neurons(params, 1, [0], 0.0)
    with pytest.raises(ValueError, match="neurons"):
        s.rescale_neurons(params, 1, [4], 2.0)
    with pytest.raises(ValueError, match="layer"):
        s.rescale_neurons(params, 2, [0], 2.0)


@pytest.mark.parametrize("call, word", [
    (lambda p: rescale_neurons(p, 1, [1.5], 2.0), "neurons"),
    (lambda p: rescale_neurons(p, 1, [1.0], 2.0), "neurons"),
    (lambda p: rescale_neurons(p, 1, [True], 2.0), "neurons"),
    (lambda p: permute_layer(p, 1, [0.0, 1.0, 2.0]), "perm"),
    (lambda p: swap_neurons(p, 1, 0.0, 1), "l"),
    (lambda p: neuron_vector(p, 1, 1.5), "m"),
    (lambda p: neuron_distance(p, 1, 0, np.float64(2)), "m"),
    (lambda p: s.split_neuron(p, 1, 1.0, 0.5), "m"),
    (lambda p: s.split_neuron(p, 1, "1", 0.5), "m"),
])
def test_non_integer_neuron_index_is_refused(call, word):
    model = MLP((2, 3, 1), "tanh")
    p = model.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=rf"^{word}: .*must be .*integer"):  # not "out of range"
        call(p)


def test_neuron_log_scales_straighten_rescaling_orbits():
    """(θ̂, σ) round-trips exactly, with every neuron of the chosen layers at unit norm; rescaling a
    neuron by c moves only its σ, by log c (the orbit is a straight line); a zero neuron has σ = −∞."""
    from symland._symmetry import from_neuron_log_scales, neuron_log_scales

    for layers in (None, [1], [2]):
        hat, sigma = neuron_log_scales(PARAMS, layers)
        back = from_neuron_log_scales(hat, sigma, layers)
        for a, b in zip(jax.tree_util.tree_leaves(PARAMS), jax.tree_util.tree_leaves(back)):
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)
        for k, sig in zip([1, 2] if layers is None else layers, sigma):
            W, b = hat[k - 1]
            np.testing.assert_allclose(jnp.sum(W * W, axis=1) + b * b, 1.0, rtol=1e-14)
            if k == 1 or layers == [2]:  # layer 2's σ with layer 1 normalised first is another number
                norms = jnp.linalg.norm(s.neuron_vectors(PARAMS, k), axis=1)
                np.testing.assert_allclose(sig, jnp.log(norms), rtol=1e-14)
    hat, sigma = neuron_log_scales(PARAMS, [1])
    hat2, sigma2 = neuron_log_scales(rescale_neurons(PARAMS, 1, [3], 7.0), [1])
    np.testing.assert_allclose(sigma2[0] - sigma[0], np.log(7.0) * (np.arange(5) == 3), atol=1e-13)
    for a, b in zip(jax.tree_util.tree_leaves(hat), jax.tree_util.tree_leaves(hat2)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
    (W, b), *rest = PARAMS
    dead = [(W.at[0].set(0.0), b.at[0].set(0.0)), *rest]
    assert neuron_log_scales(dead, [1])[1][0][0] == -np.inf
