import numpy as np
import pytest
import jax
import jax.numpy as jnp

from symland import MLP, loss_function
from symland._embedding import embed_in_wider, equal_output_split
from symland._plateau import verify_plateau

from microscope_points import narrow_critical_point
from brute_force import stirling2


def _grad_norm(L, p):
    g = jax.grad(L)(p)
    return max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree_util.tree_leaves(g))


def test_embedding_preserves_the_network_function():
    small = MLP((3, 3, 4, 2), "tanh")
    p = small.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (50, 3))
    # layer 2, K = 2, unequal split (negative fractions allowed)
    assignment = [3, 0, 1, 0, 2, 0]
    split = [1.0, 0.7, 1.0, -0.2, 1.0, 0.5]
    big = embed_in_wider(p, 2, assignment, split)
    assert big[1][0].shape == (6, 3) and big[2][0].shape == (2, 6)
    wide = MLP((3, 3, 6, 2), "tanh")
    np.testing.assert_allclose(wide.apply(big, x), small.apply(p, x), rtol=0, atol=1e-13)
    np.testing.assert_array_equal(big[1][0][1], p[1][0][0])
    np.testing.assert_allclose(big[2][0][:, 3], -0.2 * p[2][0][:, 0])


def test_equal_split():
    np.testing.assert_allclose(equal_output_split([0, 1, 0, 0, 1]), [1 / 3, 1 / 2, 1 / 3, 1 / 3, 1 / 2])


def test_bad_assignment_and_split():
    p = MLP((2, 3, 1)).init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="assignment: .*not a surjection.*\\[2\\]"):
        embed_in_wider(p, 1, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="assignment: values must lie"):
        embed_in_wider(p, 1, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="assignment"):
        embed_in_wider(p, 1, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="output_split: .*narrow neuron 0.*does not sum|output_split: .*not 1"):
        embed_in_wider(p, 1, [0, 1, 2, 0], [0.5, 1.0, 1.0, 0.6])
    with pytest.raises(ValueError, match="output_split: expected 4"):
        embed_in_wider(p, 1, [0, 1, 2, 0], [0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="layer"):
        embed_in_wider(p, 2, [0, 1, 2, 0])


@pytest.mark.parametrize("K", [1, 2])
def test_embedded_critical_point_lies_on_equal_loss_plane(K):
    """Prop. 2: a K-th order point is critical and lies on a K·n_{k+1} plane of equal loss."""
    model, p, x, y, r = narrow_critical_point((2, 3, 3), (2, 4, 3), seed=0)
    assert r.converged
    assignment = [0, 1, 2] + [0, 1][:K]
    big = embed_in_wider(p, 1, assignment)
    L = loss_function(MLP((2, 3 + K, 3), "tanh"), x, y)
    assert _grad_norm(L, big) <= 1e-13
    rep = verify_plateau(L, big, 1)
    assert rep.order == K and rep.plane_dimension == K * 3 == rep.plateau_dimension
    assert rep.max_rel_loss_change <= 1e-12
    # The critical points of the plane: generically one line per group (see `_plateau`).
    assert rep.critical_dimension == K
    assert rep.critical_grad_norm <= 1e-13
    assert rep.hessian_nullity >= rep.critical_dimension
    # The quadratic form vanishes on the plane: nullity + min(index, n_pos) ≥ K·n_{k+1}.
    assert rep.hessian_nullity + rep.hessian_index >= rep.plane_dimension


def _surjections(n, r):
    import itertools
    return [a for a in itertools.product(range(r), repeat=n) if len(set(a)) == r]




def _T_brute(K, n):
    """T(K, n) = #(K-th order permutation points at a layer of width n) / n!, by enumeration."""
    from fractions import Fraction
    from math import factorial
    return Fraction(len(_surjections(n, n - K)), factorial(n))


def test_T_brute_force_against_closed_forms():
    from fractions import Fraction as Fr
    from math import comb, factorial
    for n in range(2, 8):
        for K in range(1, n):
            T = _T_brute(K, n)
            assert T == Fr(factorial(n - K) * stirling2(n, n - K), factorial(n))
            if K == 1:
                assert T == Fr(comb(n - 1, 1), 2)                       # Prop. 1 (i)
            if K == 2:
                assert T == Fr(comb(n - 2, 1), 6) + Fr(comb(n - 2, 2), 4)
            if K == 3:
                assert T == Fr(comb(n - 3, 1), 24) + Fr(comb(n - 3, 2), 6) + Fr(comb(n - 3, 3), 8)
            if 2 * K <= n:
                assert T >= Fr(comb(n - K, K), 2 ** K)                  # Prop. 1 (ii)


def _count_points(p_small, layer, n, other_layers):
    """Distinct K-th order points (equal split) of one narrow point, with all permutations
    of the other hidden layers."""
    import itertools
    from jax.flatten_util import ravel_pytree
    from symland import permute_layer
    r = int(p_small[layer - 1][0].shape[0])
    seen = set()
    for a in _surjections(n, r):
        big = embed_in_wider(p_small, layer, a)
        variants = [big]
        for k, width in other_layers:
            variants = [permute_layer(v, k, perm) for v in variants
                        for perm in itertools.permutations(range(width))]
        for v in variants:
            seen.add(tuple(np.round(np.asarray(ravel_pytree(v)[0]), 9)))
    return len(seen)


@pytest.mark.parametrize("K, n", [(1, 4), (2, 5), (3, 6)])
def test_number_of_permutation_points_one_hidden_layer(K, n):
    from math import factorial
    model, p, x, y, r = narrow_critical_point((2, 3, 1), (2, 4, 1), seed=3)
    assert r.converged and n - K == 3
    assert _count_points(p, 1, n, []) == _T_brute(K, n) * factorial(n)


def test_number_of_permutation_points_two_hidden_layers():
    """T(1, 5) · 5! · 3! first-order points at layer 1 of a 2-5-3-1 network."""
    from math import factorial
    model, p, x, y, r = narrow_critical_point((2, 4, 3, 1), (2, 5, 3, 1), seed=0, start="teacher")
    assert r.converged
    assert _count_points(p, 1, 5, [(2, 3)]) == _T_brute(1, 5) * factorial(5) * factorial(3)
