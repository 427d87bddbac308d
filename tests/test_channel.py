import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import symland as s
from symland._channel import channel_limit, channel_of, glu_apply, glu_network


def test_glu_limit_is_the_first_order_expansion():
    """a_m g(ϑ_m·x̃) + a_j g(ϑ_j·x̃) → c g(w·x̃) + (v·x̃) g′(w·x̃) as ϑ_m − ϑ_j → 0 with
    v = a_m(ϑ_m − ϑ_j) fixed: the error of the limit network shrinks like ε."""
    toy = s.toy_problem("softplus", seed=1)
    (W, b), (A, c) = toy.teacher
    l, m, j = 0, 1, 3
    d = jnp.array([0.3, -0.2, 0.1])
    errors = []
    for eps in (1e-2, 1e-3):
        a_m = 0.7 / eps
        tm = jnp.concatenate([W[j], b[j][None]]) + eps * d
        Wn = W.at[m].set(tm[:2])
        bn = b.at[m].set(tm[2])
        An = A.at[0, m].set(a_m).at[0, j].set(-a_m + 0.4)
        theta = [(Wn, bn), (An, c)]
        ch = channel_of(toy.model, theta, l, m)
        assert ch.j == j
        np.testing.assert_allclose(ch.v[0], 0.7 * np.asarray(d), rtol=1e-12)
        assert ch.c[0] == pytest.approx(0.4)
        glu = glu_network(toy.model, theta, ch)
        f_lim = glu_apply(toy.model, glu, m, toy.x)  # j = 3 > m: m keeps its index
        errors.append(float(jnp.max(jnp.abs(f_lim - toy.model.apply(theta, toy.x)))))
    assert errors[1] < 0.2 * errors[0]


@pytest.mark.slow
def test_escape_approaches_the_channel_limit():
    """softplus seed 1, pair 0 & 1, first escaping δ step (README): the loss along the
    escape decreases towards the limit network's constrained minimum."""
    from symland._path import _effective, _rescale_direction, _to_free, delta_schedule
    from symland._solver import minimise_flat

    prob = s.toy_problem("softplus", seed=1)
    layer, l, m = 1, 0, 1
    deltas = delta_schedule(float(s.neuron_distance(prob.teacher, layer, l, m)), 200, 1e-4)
    unravel = ravel_pytree(_to_free(prob.teacher, layer, l, m))[1]

    @jax.jit
    def solve(v, delta):
        f = lambda w: s.mse(prob.model, _effective(unravel(w), layer, l, m, delta), prob.x, prob.y)
        return minimise_flat(f, v, gtol=1e-10, max_steps=2000)

    theta = prob.teacher
    for delta in deltas[1:]:
        z = _rescale_direction(_to_free(theta, layer, l, m), layer, m, delta)
        out = solve(ravel_pytree(z)[0], delta)
        if s.result_name(out.status) != "converged":
            break
        theta = _effective(unravel(out.x), layer, l, m, delta)
    losses, limits = [], []
    v = out.x
    for _ in range(3):
        theta = _effective(unravel(v), layer, l, m, delta)
        limits.append(channel_limit(prob.model, theta, prob.x, prob.y, l, m, float(delta)))
        losses.append(float(out.loss))
        out = solve(v, delta)
        v = out.x
    lim = limits[-1]
    assert lim.channel.j not in (l, m)
    assert lim.status == "converged"
    gaps = [L - lim.loss for L in losses]
    assert all(g > 0 for g in gaps)  # the escape stays above its limit
    assert gaps[-1] < gaps[0]  # and approaches it
    assert gaps[-1] < 1e-2 * lim.loss
