import itertools

import numpy as np
import pytest
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from symland import MLP, gaussian_teacher_data, hessian_spectrum, loss_function, permute_layer, zero_tolerance
from symland._overparameterised import minimum_subspace_directions, overparameterised_minimum
from symland.counting import ZERO_TYPE, subspace_dimension
from symland._valley import silent_neuron_permutation
from brute_force import stirling2

D_IN = 2


def _teacher(r, seed=0):
    tm = MLP((D_IN, r, 1), "tanh", bias=False)
    tp = tm.init(jax.random.PRNGKey(seed))
    x, y = gaussian_teacher_data(tm, tp, 200, seed=seed + 1)
    return tp, x, y


def _types(r, m):
    for a in itertools.product(range(-1, r), repeat=m):
        if set(range(r)) <= set(a) and list(a) == sorted(a, key=lambda v: (v == -1, v)):
            yield a


@pytest.mark.parametrize("r, m", [(2, 3), (2, 4)])
def test_every_subspace_type_has_zero_loss_and_its_dimension(r, m):
    tp, x, y = _teacher(r)
    L = loss_function(MLP((D_IN, m, 1), "tanh", bias=False), x, y)
    rng = np.random.default_rng(0)
    seen = 0
    for a in _types(r, m):
        seen += 1
        split = rng.uniform(-0.5, 1.5, m)
        for i in range(r):  # normalise per teacher neuron
            g = [j for j in range(m) if a[j] == i]
            split[g] = split[g] / split[g].sum()
        p = overparameterised_minimum(tp, a, output_split=split, seed=seen)
        assert float(L(p)) <= 1e-20
        S = minimum_subspace_directions(p, a)
        dim = subspace_dimension(a, d=D_IN)
        assert S.shape[0] == dim == np.linalg.matrix_rank(S)
        x0, unravel = ravel_pytree(p)
        for c in rng.uniform(-1, 1, (5, dim)):          # the subspace at finite distance
            assert float(L(unravel(x0 + c @ S))) <= 1e-20
        eig = hessian_spectrum(L, p, method="dense")
        j = a.count(ZERO_TYPE)
        s = np.bincount([v for v in a if v != ZERO_TYPE])
        nullity = int(np.sum(np.abs(eig) <= zero_tolerance(eig)))
        assert nullity == j * D_IN + int(np.sum(s - 1)) * (1 + D_IN) >= dim
    assert seen == {(2, 3): 3, (2, 4): 6}[(r, m)]   # types up to permutation




@pytest.mark.parametrize("r, m", [(1, 3), (2, 3), (2, 5), (3, 5), (3, 6)])
def test_number_of_subspaces_math_md(r, m):
    """math.md §5: T(r*, m) = Σ_j C(m, j)·r*!·S(m−j, r*) = r*!·S(m+1, r*+1), by enumeration."""
    from math import comb, factorial
    count = sum(1 for a in itertools.product(range(-1, r), repeat=m) if set(range(r)) <= set(a))
    assert count == sum(comb(m, j) * factorial(r) * stirling2(m - j, r) for j in range(m - r + 1))
    assert count == factorial(r) * stirling2(m + 1, r + 1)


def test_null_directions_off_the_subspace_raise_the_loss():
    tp, x, y = _teacher(2)
    a = (0, 0, 1)
    L = loss_function(MLP((D_IN, 3, 1), "tanh", bias=False), x, y)
    p = overparameterised_minimum(tp, a, output_split=[0.3, 0.7, 1.0])
    x0, unravel = ravel_pytree(p)
    # moving the two copies apart with 0.3·δw_0 + 0.7·δw_1 = 0: J v = 0, but L grows like t⁴
    v = jnp.zeros_like(x0).at[0].set(0.7).at[2].set(-0.3)
    hv = jax.jvp(jax.grad(lambda z: L(unravel(z))), (x0,), (v,))[1]
    assert float(jnp.max(jnp.abs(hv))) <= 1e-12
    l1, l2 = float(L(unravel(x0 + 0.1 * v))), float(L(unravel(x0 + 0.2 * v)))
    assert l1 > 1e-12 and 12 < l2 / l1 < 20                   # ≈ 2⁴


def test_one_extra_neuron_connects_permuted_minima():
    """r* = 3, m = 4: a zero-loss path from a minimum to every permuted copy (math.md §5)."""
    tp, x, y = _teacher(3, seed=2)
    L = loss_function(MLP((D_IN, 4, 1), "tanh", bias=False), x, y)
    p = overparameterised_minimum(tp, (0, 1, 2, ZERO_TYPE))
    for perm in ([1, 2, 0, 3], [2, 1, 0, 3], [3, 0, 2, 1]):
        path = silent_neuron_permutation(p, 1, perm, loss_fn=L, samples_per_move=100)
        assert path.n_samples >= 500
        assert float(np.max(path.loss)) <= 1e-20
        np.testing.assert_array_equal(path.points[-1], ravel_pytree(permute_layer(p, 1, perm))[0])


def test_bad_input():
    tp, _, _ = _teacher(2)
    with pytest.raises(ValueError, match="not a surjection"):
        overparameterised_minimum(tp, (0, 0, ZERO_TYPE))
    with pytest.raises(ValueError, match="output_split"):
        overparameterised_minimum(tp, (0, 0, 1), output_split=[0.5, 0.6, 1.0])
    with pytest.raises(ValueError, match="without biases"):
        overparameterised_minimum(MLP((2, 2, 1)).init(jax.random.PRNGKey(0)), (0, 1))
