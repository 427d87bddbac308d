"""Data sets: Gaussian teacher–student data, the Fig. 1 toy, and IDX image files.

Nothing is downloaded: teacher data is generated, image data is read from IDX
files (MNIST format) at a path the user gives, from Debian's
`dataset-fashion-mnist` package, or from scikit-learn's bundled digits.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from pathlib import Path

import numpy as np
import jax
import jax.numpy as jnp

from ._network import MLP, Params


def gaussian_teacher_data(model: MLP, teacher_params: Params, n_samples: int, *, seed: int = 0):
    """Inputs x^μ ~ N(0, I_{n_0}) and labels y^μ = f(x^μ; θ*) of a teacher network.

    **Returns:** `(x, y)` of shapes (T, n_0) and (T, n_d).
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples: must be a positive integer, got {n_samples!r}")
    model.check_params(teacher_params)
    x = jax.random.normal(jax.random.PRNGKey(seed), (n_samples, model.widths[0]))
    return x, model.apply(teacher_params, x)


@dataclasses.dataclass(frozen=True)
class ToyProblem:
    """The Fig. 1 toy of Brea et al. 2019: 2-D Gaussian inputs, 5 hidden neurons, 1 output.

    The student starts at the teacher θ*, so θ* is a global minimum with L = 0.
    """

    model: MLP
    teacher: Params
    x: jnp.ndarray
    y: jnp.ndarray
    seed: int


def toy_problem(activation: str = "relu", *, seed: int = 1, n_samples: int = 1000,
                n_hidden: int = 5) -> ToyProblem:
    """Build the Fig. 1 toy (Brea et al. 2019, §1, Fig. 1 caption).

    The teacher has `n_hidden` neurons with W^(1)_{i,:} ~ N(0, 4 I),
    b^(1)_i ~ N(0, 1) and output weights ±U[0.5, 1.5] (output bias 0), so
    every neuron's hyperplane crosses the data and carries weight; inputs are
    `n_samples` = 1000 samples of N(0, I_2).
    """
    model = MLP((2, n_hidden, 1), activation=activation)
    k_w, k_b, k_a, k_s = jax.random.split(jax.random.PRNGKey(seed), 4)
    sign = jnp.where(jax.random.bernoulli(k_s, 0.5, (1, n_hidden)), 1.0, -1.0)
    teacher = [
        (2.0 * jax.random.normal(k_w, (n_hidden, 2)), jax.random.normal(k_b, (n_hidden,))),
        (sign * jax.random.uniform(k_a, (1, n_hidden), minval=0.5, maxval=1.5), jnp.zeros(1)),
    ]
    x, y = gaussian_teacher_data(model, teacher, n_samples, seed=seed + 1)
    return ToyProblem(model, teacher, x, y, seed)


# --- IDX files (MNIST format) -------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a NumPy array.

    Format: two zero bytes, a type byte, a byte with the number of dimensions,
    then big-endian 32-bit sizes and the data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no IDX file at {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"path: {path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    offset = 4 + 4 * ndim
    count = int(np.prod(dims)) if dims else 1
    if len(raw) - offset < count * dtype.itemsize:
        raise ValueError(f"path: {path} is truncated: header promises {dims}")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(dims)


FASHION_MNIST_DIRS = ("/usr/share/dataset-fashion-mnist", "/usr/share/fashion-mnist")


def find_fashion_mnist() -> Path | None:
    """The folder with Debian's `dataset-fashion-mnist` IDX files, or None if absent.

    `SYMLAND_FASHION_MNIST` overrides the search.
    """
    candidates = [os.environ.get("SYMLAND_FASHION_MNIST")] + list(FASHION_MNIST_DIRS)
    for c in candidates:
        if c and Path(c).is_dir() and any(Path(c).rglob("train-images-idx3-ubyte*")):
            return Path(c)
    return None


def load_idx_dataset(directory, *, split: str = "train", n_samples: int | None = None):
    """Images and labels from `{split}-images-idx3-ubyte[.gz]` / `{split}-labels-idx1-ubyte[.gz]`.

    **Returns:** `(x, labels)`: x of shape (T, rows·cols) scaled to [0, 1], labels (T,) ints.
    """
    directory = Path(directory)
    if split not in ("train", "t10k"):
        raise ValueError(f"split: must be 'train' or 't10k', got {split!r}")

    def find(stem):
        hits = sorted(directory.rglob(stem + "*"))
        if not hits:
            raise FileNotFoundError(f"directory: no {stem} file under {directory}")
        return hits[0]

    images = read_idx(find(f"{split}-images-idx3-ubyte"))
    labels = read_idx(find(f"{split}-labels-idx1-ubyte"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError("directory: image and label files disagree in length")
    if n_samples is not None:
        images, labels = images[:n_samples], labels[:n_samples]
    x = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
    return x, labels.astype(np.int64)


def load_digits(n_samples: int | None = None):
    """scikit-learn's bundled 8×8 digits (1797 samples), scaled to [0, 1]."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    x, labels = d.data / 16.0, d.target.astype(np.int64)
    if n_samples is not None:
        x, labels = x[:n_samples], labels[:n_samples]
    return x, labels
