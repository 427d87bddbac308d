import numpy as np
import pytest
import jax

from symland import MLP
from symland._io import load_data, load_params, save_params


@pytest.mark.parametrize("bias", [True, False])
def test_round_trip(tmp_path, bias):
    model = MLP((3, 4, 5, 2), "softplus", bias=bias)
    p = model.init(jax.random.PRNGKey(0))
    path = save_params(tmp_path / "p.npz", model, p)
    with np.load(path) as z:
        assert set(z.files) == ({"activation", "W1", "W2", "W3"} | ({"b1", "b2", "b3"} if bias else set()))
        assert z["W2"].shape == (5, 4)
    m2, p2 = load_params(path)
    assert m2 == model
    for (W, b), (W2, b2) in zip(p, p2):
        np.testing.assert_array_equal(W, W2)
        assert (b is None and b2 is None) or np.array_equal(b, b2)


def test_bad_files(tmp_path):
    np.savez(tmp_path / "a.npz", W1=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="activation"):
        load_params(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", W1=np.zeros((2, 3)), W2=np.zeros((1, 4)), activation=np.array("tanh"))
    with pytest.raises(ValueError, match="W2 has shape"):
        load_params(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", W1=np.zeros((2, 3)), b1=np.zeros(2), W2=np.zeros((1, 2)),
             activation=np.array("tanh"))
    with pytest.raises(ValueError, match="b2 missing"):
        load_params(tmp_path / "c.npz")
    with pytest.raises(FileNotFoundError):
        load_params(tmp_path / "nope.npz")
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="'x' and 'y'"):
        load_data(tmp_path / "d.npz")
