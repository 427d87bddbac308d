import json

import numpy as np
import pytest
import jax

from symland import MLP, loss_function
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
