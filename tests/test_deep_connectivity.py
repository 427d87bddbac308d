import numpy as np
import jax
import pytest

from symland import (MLP, ZERO_TYPE, add_zero_type_neurons, connect_permuted_minima, overparameterised_minimum,
                     permuted_embedding)
from symland._deep_connectivity import check_widths
from symland.cli import main


def test_all_permuted_minima_connected_small():
    r = connect_permuted_minima((2, 2, 3, 1), n_samples=60, samples_per_move=4)
    assert r.n_expected == 2 * 6 and r.n_reached == 12
    assert len(set(r.reached)) == 12 and len(r.edges) == 11
    assert r.all_connected and r.max_relative_loss <= 1e-12 and r.max_endpoint_error == 0.0
    assert all(e.max_output_deviation <= 1e-12 for e in r.edges)


def test_zero_type_embedding_matches_two_layer_construction():
    teacher = MLP((3, 2, 1), "tanh", bias=False).init(jax.random.PRNGKey(0))
    student = add_zero_type_neurons(teacher, seed=4)
    z = np.asarray(student[0][0])[-1:]
    ref = overparameterised_minimum(teacher, [0, 1, ZERO_TYPE], zero_vectors=z)
    for (a, _), (b, _) in zip(student, ref):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_embedding_is_the_teacher_function_and_zero_columns():
    model = MLP((2, 3, 2, 1), "softplus")
    teacher = model.init(jax.random.PRNGKey(1))
    student = add_zero_type_neurons(teacher, seed=2)
    x = np.random.default_rng(0).normal(size=(20, 2))
    big = MLP((2, 4, 3, 1), "softplus")
    assert np.allclose(big.apply(student, x), model.apply(teacher, x), atol=1e-14)
    assert np.all(np.asarray(student[1][0])[:, -1] == 0) and np.all(np.asarray(student[2][0])[:, -1] == 0)
    moved = permuted_embedding(student, [(2, 0, 1), (1, 0)])
    assert np.allclose(big.apply(moved, x), model.apply(teacher, x), atol=1e-14)


@pytest.mark.parametrize("bad", [(2, 1), (2, 0, 1), (2, 2.5, 1), "abc", (2,)])
def test_bad_widths(bad):
    with pytest.raises(ValueError, match="widths:"):
        check_widths(bad)


def test_cli(tmp_path, capsys):
    assert main(["deep-connectivity", "--widths", "2-2-2-1", "--samples-per-move", "2",
                 "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "deep_connectivity.json").exists()
    assert main(["deep-connectivity", "--widths", "2-x-1", "--out", str(tmp_path / "p")]) == 2
    assert "widths: expected hyphen" in capsys.readouterr().err and not (tmp_path / "p").exists()
