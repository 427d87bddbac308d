import gzip

import numpy as np
import pytest

import symland as s
from symland._data import IDX_FILES, load_image_data, read_idx


def write_idx(path, array, type_byte=0x08):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, type_byte, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())
    return path


def make_idx_dir(tmp_path, n_train=6, n_labels=None, skip=None):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", 3)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 4, 4)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte",
                  rng.integers(0, 10, (n_labels if split == "train" and n_labels else n,)))
    if skip:
        (tmp_path / skip).unlink()
    return tmp_path


def test_round_trip(tmp_path):
    d = make_idx_dir(tmp_path)
    x, labels = s.load_idx_dataset(d)
    assert x.shape == (6, 16) and labels.shape == (6,) and 0 <= x.min() and x.max() <= 1
    x2, _ = s.load_idx_dataset(d, n_samples=4)
    np.testing.assert_array_equal(x2, x[:4])
    gz = tmp_path / "g.gz"
    gz.write_bytes(gzip.compress((tmp_path / "train-images-idx3-ubyte").read_bytes()))
    np.testing.assert_array_equal(read_idx(gz), read_idx(tmp_path / "train-images-idx3-ubyte"))


def test_wrong_magic(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="not an IDX file .*bad magic number 12340801"):
        read_idx(p)


def test_truncated_files(tmp_path):
    p = write_idx(tmp_path / "t", np.zeros((5, 4, 4)))
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated: header promises \\[5, 4, 4\\]"):
        read_idx(p)
    p.write_bytes(bytes([0, 0, 8, 3]) + (5).to_bytes(4, "big"))
    with pytest.raises(ValueError, match="truncated: its header declares 3 dimensions"):
        read_idx(p)
    g = tmp_path / "t.gz"
    g.write_bytes(gzip.compress(write_idx(tmp_path / "u", np.zeros((5, 4))).read_bytes())[:-8])
    with pytest.raises(ValueError, match="cannot read"):
        read_idx(g)


def test_images_and_labels_of_different_lengths(tmp_path):
    d = make_idx_dir(tmp_path, n_train=6, n_labels=5)
    with pytest.raises(ValueError, match="6 images, 5 labels"):
        s.load_idx_dataset(d)


@pytest.mark.parametrize("missing", IDX_FILES)
def test_directory_missing_a_file_names_it(tmp_path, missing):
    d = make_idx_dir(tmp_path, skip=missing)
    with pytest.raises(ValueError, match=f"lacks {missing}"):
        s.load_idx_dataset(d)


def test_more_samples_than_data(tmp_path):
    with pytest.raises(ValueError, match="n_samples: asked for 7 samples, the data set has 6"):
        s.load_idx_dataset(make_idx_dir(tmp_path), n_samples=7)
    with pytest.raises(ValueError, match="the data set has 1797"):
        s.load_digits(2000)
    with pytest.raises(FileNotFoundError, match="directory"):
        load_image_data(str(tmp_path / "nope"))
    x, labels, name = load_image_data("digits", n_samples=10)
    assert x.shape == (10, 64) and "digits" in name


def test_project_inputs_removes_only_the_low_energy_directions():
    """The dropped directions are those with σ < rtol·σ_max; the projection is exact on the kept ones."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    sv = np.array([10.0, 5.0, 3.0, 1.0, 0.5, 2e-3, 5e-4, 1e-6])  # two below 1e-4·σ_max = 1e-3
    u, _ = np.linalg.qr(rng.standard_normal((40, 8)))
    x = (u * sv) @ q.T
    p = s.project_inputs(x, 1e-4)
    assert p.dropped == 2
    assert p.energy == pytest.approx((5e-4 ** 2 + 1e-6 ** 2) / np.sum(sv ** 2), rel=1e-8)
    np.testing.assert_allclose(p.x @ q[:, :6], x @ q[:, :6], atol=1e-13)  # kept directions unchanged
    assert np.abs(p.x @ q[:, 6:]).max() < 1e-13                           # dropped ones are gone
    assert p.to_dict() == {"input_rtol": 1e-4, "dropped_directions": 2, "dropped_energy": p.energy}
    assert s.project_inputs(x, 1e-2).dropped == 3
    same = s.project_inputs(x, 0)
    assert same.dropped == 0 and np.array_equal(same.x, x)


def test_project_inputs_makes_the_first_layer_exactly_flat_along_dropped_directions():
    """Along a dropped input direction v, moving any first-layer row changes no output, so the
    loss gradient has no component there (what keeps Krylov solvers from wandering along it)."""
    import jax
    import jax.numpy as jnp

    x, _ = s.load_digits(200)
    x = x + 1e-6 * np.random.default_rng(1).standard_normal(x.shape)  # near-null, not null, pixels
    p = s.project_inputs(x, 1e-3)
    assert p.dropped >= 1
    v = np.linalg.svd(x, full_matrices=False)[2][-1]  # the weakest direction, among the dropped
    model = s.MLP((64, 5, 3), "softplus")
    params = model.init(jax.random.PRNGKey(0))
    y = model.apply(params, jnp.asarray(x)) + 0.1
    for xs, flat in ((p.x, True), (x, False)):
        g = jax.grad(lambda q: s.nmse(model, q, jnp.asarray(xs), y))(params)
        along = float(jnp.max(jnp.abs(g[0][0] @ v)))
        assert (along < 1e-14) == flat, along


@pytest.mark.parametrize("rtol", [-0.1, 1.0, "1e-3", True, float("nan")])
def test_project_inputs_rejects_bad_rtol(rtol):
    with pytest.raises(ValueError, match="rtol"):
        s.project_inputs(np.ones((3, 2)), rtol)


@pytest.mark.parametrize("x", [np.ones(4), np.ones((0, 3)), np.array([[1.0, np.nan]])])
@pytest.mark.parametrize("fn", [s.project_inputs, s.input_null_dimension])
def test_input_functions_reject_bad_inputs(fn, x):
    with pytest.raises(ValueError, match="^x: "):
        fn(x)


def test_input_null_dimension_counts_the_exactly_flat_hessian_directions():
    """n₁ · input_null_dimension(x) zero eigenvalues of a dense Hessian at a random point (brute force):
    one dark pixel and one pixel that copies another give 2 null directions of (x, 1)."""
    import jax

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5))
    x[:, 3] = 0.0            # a pixel that is always dark
    x[:, 4] = x[:, 0]        # a pixel that repeats another: x̃(e₀ − e₄) = 0
    assert s.input_null_dimension(x) == 2
    assert s.input_null_dimension(x[:, :3]) == 0
    assert s.input_null_dimension(x[:3]) == 3  # T = 3 samples, d + 1 = 6 columns: at least 3 missing
    model = s.MLP((5, 3, 2), "softplus")
    params = model.init(jax.random.PRNGKey(1))
    y = rng.standard_normal((60, 2))
    lam = s.hessian_spectrum(lambda p: s.mse(model, p, x, y), params, method="dense")
    zeros = int(np.sum(np.abs(lam) <= 1e-10 * np.abs(lam).max()))
    assert zeros == model.widths[1] * 2, lam[np.argsort(np.abs(lam))[:8]]


def test_input_null_dimension_after_projection():
    x, _ = s.load_digits(300)
    p = s.project_inputs(x, 1e-3)
    raw = s.input_null_dimension(x)
    assert raw >= 1  # digits: border pixels that stay dark in all 300 images
    assert s.input_null_dimension(p.x) == p.dropped >= raw
    with pytest.raises(ValueError, match="rtol"):
        s.input_null_dimension(x, 2.0)
