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


@pytest.mark.parametrize("widths, bias", [((1, 1), True), ((1, 1), False), ((3, 1), True),
                                          ((1, 1, 1), True), ((2, 5, 3, 1), False)])
def test_round_trip_every_shape(tmp_path, widths, bias):
    model = MLP(widths, "tanh", bias=bias)
    p = model.init(jax.random.PRNGKey(1))
    m2, p2 = load_params(save_params(tmp_path / "p.npz", model, p))
    assert m2 == model
    for (W, b), (W2, b2) in zip(p, p2):
        np.testing.assert_array_equal(W, W2)
        assert (b is None and b2 is None) or np.array_equal(b, b2)


@pytest.mark.parametrize("value", [np.nan, np.inf, 1j])
def test_save_params_refuses_non_finite(tmp_path, value):
    model = MLP((2, 3, 1), "tanh")
    p = model.init(jax.random.PRNGKey(0))
    W = np.array(p[0][0], dtype=complex if isinstance(value, complex) else float)
    W[0, 0] = value
    with pytest.raises(ValueError, match="params"):
        save_params(tmp_path / "p.npz", model, [(W, p[0][1]), p[1]])
    assert list(tmp_path.iterdir()) == []


def _bad_files(d):
    good = dict(W1=np.ones((3, 2)), b1=np.zeros(3), W2=np.ones((1, 3)), b2=np.zeros(1),
                activation=np.array("tanh"))
    np.savez(d / "good.npz", **good)
    raw = (d / "good.npz").read_bytes()
    (d / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (d / "empty.npz").write_bytes(b"")
    (d / "text.npz").write_text("not a zip")
    np.savez(d / "nan.npz", **{**good, "W1": np.full((3, 2), np.nan)})
    np.savez(d / "cplx.npz", **{**good, "W2": np.ones((1, 3)) * 1j})
    np.savez(d / "obj.npz", **{**good, "W1": np.array([None, 1], dtype=object)})
    np.savez(d / "stray.npz", **{**good, "b3": np.zeros(1)})


@pytest.mark.parametrize("name, word", [("trunc", "not a readable .npz"), ("empty", "not a readable .npz"),
                                        ("text", "not a readable .npz"), ("nan", "NaN or inf"),
                                        ("cplx", "complex"), ("obj", "Python objects"),
                                        ("stray", "unexpected arrays b3")])
def test_unreadable_or_bad_npz(tmp_path, name, word):
    _bad_files(tmp_path)
    with pytest.raises(ValueError, match=word) as info:
        load_params(tmp_path / f"{name}.npz")
    assert str(info.value).startswith("params:") and "allow_pickle" not in str(info.value)
    with pytest.raises(ValueError, match="data:"):
        load_data(tmp_path / f"{name}.npz")
