import numpy as np
import pytest
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from symland import MLP, loss_function, permute_layer
from symland._embedding import embed_in_wider
from symland._valley import equal_loss_permutation, silent_neuron_permutation, _parking_moves

from microscope_points import narrow_critical_point, toy_narrow_critical_point


@pytest.fixture(scope="module")
def toy_point():
    toy, model4, p4, r = toy_narrow_critical_point("tanh", 0)
    assert r.converged
    return embed_in_wider(p4, 1, [0, 1, 2, 3, 2]), loss_function(toy.model, toy.x, toy.y)


@pytest.fixture(scope="module")
def deep_point():
    model, p, x, y, r = narrow_critical_point((2, 4, 3, 1), (2, 5, 3, 1), seed=0, start="teacher")
    assert r.converged
    big = embed_in_wider(p, 1, [0, 1, 3, 2, 0])
    return big, loss_function(MLP((2, 5, 3, 1), "tanh"), x, y)


def _assert_valley(path, point, layer, perm, n_min=1000):
    assert path.n_samples >= n_min
    assert path.max_rel_loss_change <= 1e-12
    target = ravel_pytree(permute_layer(point, layer, perm))[0]
    np.testing.assert_allclose(path.points[-1], target, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(path.points[0], ravel_pytree(point)[0])
    labels = [lab[0] for lab, *_ in path.moves]
    assert labels[0] == "1" and labels[-3:] == ["4", "5", "6"]
    # while an incoming vector moves (moves 2, 4, 5) its outgoing weights are exactly 0.0
    V = path.incoming_vectors()
    A = np.asarray(jax.vmap(path.unravel)(jnp.asarray(path.points))[layer][0])  # (S, N, n)
    for lab, a, b in path.moves:
        moving = np.flatnonzero(np.any(V[a] != V[b], axis=-1))
        if lab[0] in "245":
            assert moving.size <= 1
            assert np.all(A[a:b + 1][:, :, moving] == 0.0)
        else:
            assert moving.size == 0
    # consecutive samples are close: the path is continuous at this resolution
    assert np.max(np.linalg.norm(np.diff(path.points, axis=0), axis=1)) < 0.2


@pytest.mark.parametrize("seed", [0, 1])
def test_toy_valley_random_permutation(toy_point, seed):
    point, L = toy_point
    perm = np.random.default_rng(seed).permutation(5)
    path = equal_loss_permutation(point, 1, perm, loss_fn=L, samples_per_move=120, gtol=1e-12)
    _assert_valley(path, point, 1, perm)
    assert path.incoming_vectors().shape == (path.n_samples, 5, 3)


def test_deep_valley_with_three_outgoing_weights(deep_point):
    point, L = deep_point
    perm = np.array([3, 4, 0, 2, 1])
    path = equal_loss_permutation(point, 1, perm, loss_fn=L, samples_per_move=100, gtol=1e-12)
    _assert_valley(path, point, 1, perm)
    d = path.to_dict()
    assert d["max_rel_loss_change"] <= 1e-12 and d["perm"] == perm.tolist()


def test_the_silent_neuron_must_be_exactly_silent(toy_point):
    """Only outgoing weights exactly 0.0 make a neuron silent (1e-17 is refused)."""
    point, L = toy_point
    (W1, b1), (W2, b2) = point
    W2 = W2.at[0, 2].add(W2[0, 4]).at[0, 4].set(1e-17)
    W1 = W1.at[4].set(jnp.array([40.0, -40.0])).at[4].set(jnp.array([40.0, -40.0]))
    b1 = b1.at[4].set(50.0)
    almost = [(W1, b1), (W2, b2)]
    exact = [(W1, b1), (W2.at[0, 4].set(0.0), b2)]
    with pytest.raises(ValueError, match="silent: neuron 4 .*not silent"):
        silent_neuron_permutation(almost, 1, [1, 0, 2, 3, 4], silent=4)
    path = silent_neuron_permutation(exact, 1, [4, 0, 1, 3, 2], loss_fn=L, samples_per_move=50)
    assert path.max_rel_loss_change <= 1e-12
    np.testing.assert_array_equal(path.points[-1],
                                  ravel_pytree(permute_layer(exact, 1, [4, 0, 1, 3, 2]))[0])


def test_parking_moves_realise_any_arrangement():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = rng.integers(2, 8)
        content = [None] + list(range(1, n))
        target = [int(c) if c else None for c in rng.permutation(n)]
        target = [None if c == 0 else c for c in [0 if t is None else t for t in target]]
        state = list(content)
        for s, b in _parking_moves(content, target):
            assert state[b] is None
            state[b], state[s] = state[s], None
        assert state == target


def test_bad_input(toy_point):
    point, L = toy_point
    with pytest.raises(ValueError, match="perm: .*not a permutation"):
        equal_loss_permutation(point, 1, [0, 1, 2, 3, 3])
    with pytest.raises(ValueError, match="perm"):
        equal_loss_permutation(point, 1, [0, 1, 2, 3])
    (W1, b1), (W2, b2) = point
    with pytest.raises(ValueError, match="incoming vectors differ"):
        equal_loss_permutation([(W1.at[4, 0].add(0.1), b1), (W2, b2)], 1, [1, 0, 2, 3, 4])
    with pytest.raises(ValueError, match="outgoing weights of neurons 2 and 4 differ"):
        equal_loss_permutation([(W1, b1), (W2.at[0, 4].add(0.1), b2)], 1, [1, 0, 2, 3, 4])
    moved = [(W1.at[2, 0].add(1e-3).at[4, 0].add(1e-3), b1), (W2, b2)]
    with pytest.raises(ValueError, match="gradient not zero"):
        equal_loss_permutation(moved, 1, [1, 0, 2, 3, 4], loss_fn=L)
    with pytest.raises(ValueError, match="samples_per_move"):
        equal_loss_permutation(point, 1, [1, 0, 2, 3, 4], samples_per_move=0)
    with pytest.raises(ValueError, match="no neuron of layer 1 has outgoing weights exactly 0"):
        silent_neuron_permutation(point, 1, [1, 0, 2, 3, 4])
