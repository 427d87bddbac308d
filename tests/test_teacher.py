import jax
import numpy as np
import pytest

import symland as s
from symland._teacher import (accuracy, cosine_similarities, most_similar_pair,
                              negative_log_likelihood, relabel, train_teacher)


@pytest.fixture(scope="module")
def digits():
    return s.load_digits(400)


def test_teacher_learns_and_is_reproducible(digits):
    x, labels = digits
    a = train_teacher(x, labels, 6, seed=3, epochs=40, batch_size=32)
    b = train_teacher(x, labels, 6, seed=3, epochs=40, batch_size=32)
    assert a.model.widths == (64, 6, 6, 10) and a.model.activation == "softplus"
    assert a.accuracy > 0.5  # chance is 0.1
    assert a.accuracy == pytest.approx(accuracy(a.model, a.params, x, labels))
    for u, v in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_array_equal(u, v)
    untrained = a.model.init(jax.random.PRNGKey(0))
    assert a.nll < float(negative_log_likelihood(a.model, untrained, x, labels))
    assert a.to_dict()["widths"] == [64, 6, 6, 10]


def test_nll_by_hand():
    model = s.MLP((2, 2, 2, 10), "tanh")
    p = model.init(jax.random.PRNGKey(1))
    x = np.array([[0.3, -0.2], [1.0, 0.5]])
    labels = np.array([3, 7])
    logits = np.asarray(model.apply(p, x))
    expected = -np.mean([logits[i, k] - np.log(np.sum(np.exp(logits[i]))) for i, k in enumerate(labels)])
    assert float(negative_log_likelihood(model, p, x, labels)) == pytest.approx(expected, rel=1e-12)


def test_relabelled_student_starts_at_a_global_minimum(digits):
    x, labels = digits
    t = train_teacher(x, labels, 4, epochs=2)
    y = relabel(t.model, t.params, x)
    assert y.shape == (400, 10)
    assert float(s.nmse(t.model, t.params, x, y)) == 0.0


def test_most_similar_pair_by_brute_force():
    model = s.MLP((3, 5, 4, 10), "softplus")
    p = model.init(jax.random.PRNGKey(4))
    for layer in (1, 2):
        V = np.asarray(s.neuron_vectors(p, layer))
        best = max(((i, j) for i in range(len(V)) for j in range(i + 1, len(V))),
                   key=lambda ij: V[ij[0]] @ V[ij[1]] / np.linalg.norm(V[ij[0]]) / np.linalg.norm(V[ij[1]]))
        l, m, c = most_similar_pair(p, layer)
        assert (l, m) == best
        assert c == pytest.approx(cosine_similarities(p, layer)[l, m])
    with pytest.raises(ValueError, match="layer"):
        most_similar_pair(p, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(hidden=1), "hidden: H must be an integer ≥ 2"),
    (dict(hidden=4, epochs=0), "epochs"),
    (dict(hidden=4, learning_rate=-1.0), "learning_rate"),
])
def test_bad_teacher_arguments(digits, kwargs, match):
    x, labels = digits
    with pytest.raises(ValueError, match=match):
        train_teacher(x, labels, **kwargs)


def test_bad_labels(digits):
    x, labels = digits
    with pytest.raises(ValueError, match="labels"):
        train_teacher(x, labels[:-1], 4)
    with pytest.raises(ValueError, match="labels"):
        train_teacher(x, labels + 10, 4)
