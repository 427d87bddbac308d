import numpy as np
import pytest
import jax
import jax.numpy as jnp

from symland import MLP, loss_function
from symland._embedding import embed_in_wider, equal_output_split
from symland._plateau import verify_plateau

from microscope_points import narrow_critical_point


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
