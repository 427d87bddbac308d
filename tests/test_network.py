import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import symland as s
from symland import MLP


@pytest.mark.parametrize("activation", sorted(s.ACTIVATIONS))
def test_apply_shapes_and_float64(activation):
    model = s.MLP((3, 4, 5, 2), activation=activation)
    params = model.init(jax.random.PRNGKey(0))
    assert [W.shape for W, _ in params] == [(4, 3), (5, 4), (2, 5)]
    y = model.apply(params, jnp.ones((7, 3)))
    assert y.shape == (7, 2) and y.dtype == jnp.float64
    assert model.n_params == sum(W.size + b.size for W, b in params)


def test_activation_values():
    x = jnp.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(s.ACTIVATIONS["erf"](x), jax.scipy.special.erf(x / np.sqrt(2)))
    np.testing.assert_allclose(s.ACTIVATIONS["g"](x), jax.nn.sigmoid(4 * x) + jax.nn.softplus(x))
    np.testing.assert_allclose(s.ACTIVATIONS["relu"](x), [0.0, 0.0, 2.0])


def test_apply_matches_eq1_by_hand():
    model = s.MLP((2, 3, 1), activation="tanh")
    params = model.init(jax.random.PRNGKey(1))
    x = jax.random.normal(jax.random.PRNGKey(2), (5, 2))
    (W1, b1), (W2, b2) = params
    expected = (W2 @ jnp.tanh(W1 @ x.T + b1[:, None]) + b2[:, None]).T
    np.testing.assert_allclose(model.apply(params, x), expected, rtol=1e-14)


def test_no_bias():
    model = s.MLP((2, 3, 1), activation="relu", bias=False)
    params = model.init(jax.random.PRNGKey(0))
    assert all(b is None for _, b in params)
    assert model.apply(params, jnp.ones((2, 2))).shape == (2, 1)


def test_gradients_against_finite_differences():
    model = s.MLP((2, 3, 2), activation="softplus")
    params = model.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (20, 2))
    y = jax.random.normal(jax.random.PRNGKey(2), (20, 2))
    L = s.loss_function(model, x, y)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    g = jax.flatten_util.ravel_pytree(jax.grad(L)(params))[0]
    h = 1e-6
    fd = np.array([(L(unravel(flat.at[i].add(h))) - L(unravel(flat.at[i].add(-h)))) / (2 * h)
                   for i in range(flat.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_jit_vmap_grad_compose():
    model = s.MLP((2, 3, 1), activation="gelu")
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    batch = jax.vmap(model.init)(keys)
    x = jnp.ones((5, 2))
    out = jax.jit(jax.vmap(lambda p: model.apply(p, x)))(batch)
    assert out.shape == (4, 5, 1)


def test_bad_input():
    with pytest.raises(ValueError, match="activation"):
        s.MLP((2, 3, 1), activation="swish")
    with pytest.raises(ValueError, match="widths"):
        s.MLP((2,))
    with pytest.raises(ValueError, match="widths"):
        s.MLP((2, 0, 1))
    model = s.MLP((2, 3, 1))
    params = model.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="x"):
        s.loss_function(model, jnp.ones((5, 3)), jnp.ones((5, 1)))
    with pytest.raises(ValueError, match="y"):
        s.loss_function(model, jnp.ones((5, 2)), jnp.ones((4, 1)))
    with pytest.raises(ValueError, match="NaN"):
        s.loss_function(model, jnp.ones((5, 2)).at[0, 0].set(jnp.nan), jnp.ones((5, 1)))
    with pytest.raises(ValueError, match="inf"):
        s.loss_function(model, jnp.ones((5, 2)), jnp.ones((5, 1)).at[1, 0].set(jnp.inf))
    with pytest.raises(ValueError, match="params"):
        model.check_params(params[:1])


@pytest.mark.parametrize("mutate, word", [
    (lambda p: p[:1], "expected a list of 2"),                      # too few layers
    (lambda p: p + p[:1], "expected a list of 2"),                  # too many
    (lambda p: [(p[0][0].T, p[0][1]), p[1]], "W^(1) has shape"),    # transposed
    (lambda p: [(p[0][0], p[0][1][:2]), p[1]], "b^(1)"),            # short bias
    (lambda p: [p[0], (p[1][0][:, :2], p[1][1])], "W^(2) has shape"),
    (lambda p: [p[0][0], p[1]], "pair"),                            # not a pair
])
def test_apply_refuses_params_that_do_not_match(mutate, word):
    model = MLP((2, 3, 1), "tanh")
    p = model.init(jax.random.PRNGKey(0))
    x = jnp.ones((4, 2))
    assert model.apply(p, x).shape == (4, 1)
    with pytest.raises(ValueError, match="params: .*" + re.escape(word)):
        model.apply(mutate(p), x)
    with pytest.raises(ValueError, match="x: expected shape"):
        model.apply(p, jnp.ones((4, 3)))


def test_apply_checks_hold_under_jit():
    model = MLP((2, 3, 1), "tanh")
    p = model.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="params"):
        jax.jit(lambda q: model.apply(q, jnp.ones((4, 2))))(p[:1])


CHUNK = 2048  # symland._network.CHUNK_MIN_SAMPLES


@pytest.mark.parametrize("T", [7, CHUNK, CHUNK + 5, 3 * CHUNK])
def test_layer_product_is_the_plain_product_with_its_derivatives(T):
    # by blocks from CHUNK_MIN_SAMPLES samples on (with a remainder at CHUNK + 5), plain below: values, the
    # gradient with respect to both factors and a forward-over-reverse HVP all agree with h @ W.T
    from symland._network import CHUNK_MIN_SAMPLES, SAMPLE_CHUNKS, layer_product
    assert CHUNK_MIN_SAMPLES == CHUNK and SAMPLE_CHUNKS > 1
    h = jax.random.normal(jax.random.PRNGKey(0), (T, 6))
    W = jax.random.normal(jax.random.PRNGKey(1), (3, 6))
    np.testing.assert_allclose(jax.jit(layer_product)(h, W), h @ W.T, rtol=1e-12, atol=1e-12)
    plain = lambda h, W: h @ W.T
    f = lambda h, W, fn: jnp.sum(jnp.tanh(fn(h, W)) ** 2)
    # each side jitted whole: op by op the four cases compiled 112 primitives
    for argnums in (0, 1):
        grad = lambda fn: jax.jit(jax.grad(lambda h, W: f(h, W, fn), argnums))(h, W)
        np.testing.assert_allclose(grad(layer_product), grad(plain), rtol=1e-11, atol=1e-12)
    hvp = lambda fn: jax.jit(lambda h, W: jax.jvp(lambda W: jax.grad(f, 1)(h, W, fn), (W,),
                                                  (jnp.ones_like(W),))[1])(h, W)
    np.testing.assert_allclose(hvp(layer_product), hvp(plain), rtol=1e-11, atol=1e-12)
    chunked = "reshape" in str(jax.make_jaxpr(layer_product)(h, W))
    assert chunked == (T >= CHUNK_MIN_SAMPLES)
    assert ("concatenate" in str(jax.make_jaxpr(layer_product)(h, W))) == (T == CHUNK + 5)


def test_layer_product_of_one_sample_and_under_vmap(monkeypatch):
    from symland import _network
    from symland._network import layer_product
    W = jax.random.normal(jax.random.PRNGKey(1), (3, 6))
    x = jax.random.normal(jax.random.PRNGKey(0), (6,))
    np.testing.assert_allclose(layer_product(x, W), W @ x, rtol=1e-14)
    monkeypatch.setattr(_network, "CHUNK_MIN_SAMPLES", 8)  # vmap over batches of chunked products
    h = jax.random.normal(jax.random.PRNGKey(2), (4, 20, 6))
    out = jax.vmap(lambda h: layer_product(h, W))(h)
    np.testing.assert_allclose(out, h @ W.T, rtol=1e-12, atol=1e-12)
    model = s.MLP((6, 5, 2), "softplus")
    p = model.init(jax.random.PRNGKey(3))
    (W1, b1), (W2, b2) = p
    expected = s.ACTIVATIONS["softplus"](h[0] @ W1.T + b1) @ W2.T + b2
    np.testing.assert_allclose(model.apply(p, h[0]), expected, rtol=1e-12, atol=1e-12)
