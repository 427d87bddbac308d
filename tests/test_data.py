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
