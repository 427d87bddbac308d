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

    **Raises:** `FileNotFoundError` for a missing file; `ValueError` naming the
    file for a wrong magic number, a truncated header or truncated data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no IDX file at {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:  # a damaged or truncated gzip stream
        raise ValueError(f"path: cannot read {path}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise ValueError(f"path: {path} is not an IDX file (bad magic number "
                         f"{raw[:4].hex() or 'none'}; expected 0000 + type byte + dimension count)")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise ValueError(f"path: {path} is truncated: its header declares {ndim} dimensions "
                         f"but the file has {len(raw)} bytes")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 1
    if len(raw) - offset < count * dtype.itemsize:
        raise ValueError(f"path: {path} is truncated: header promises {dims} "
                         f"({count * dtype.itemsize} bytes of data), found {len(raw) - offset}")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(dims)


FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist", "/usr/share/dataset-fashion-mnist",
                      "/usr/share/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def find_fashion_mnist() -> Path | None:
    """The folder with Debian's `dataset-fashion-mnist` IDX files, or None if absent.

    `SYMLAND_FASHION_MNIST` overrides the search.
    """
    candidates = [os.environ.get("SYMLAND_FASHION_MNIST")] + list(FASHION_MNIST_DIRS)
    for c in candidates:
        if c and Path(c).is_dir() and any(Path(c).rglob("train-images-idx3-ubyte*")):
            return Path(c)
    return None


def idx_files(directory) -> dict:
    """The four MNIST-layout IDX files under `directory` (plain or .gz), by stem.

    **Raises:** `FileNotFoundError` for a missing folder, `ValueError` naming
    the first of `IDX_FILES` that is missing.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"directory: no folder at {directory}")
    found = {}
    for stem in IDX_FILES:
        hits = sorted(h for h in directory.rglob(stem + "*") if h.name in (stem, stem + ".gz"))
        if not hits:
            raise ValueError(f"directory: {directory} lacks {stem} (or {stem}.gz); an MNIST-layout "
                             f"folder holds all of {', '.join(IDX_FILES)}")
        found[stem] = hits[0]
    return found


def check_n_samples(n_samples, available: int, name: str = "n_samples"):
    """`ValueError` unless `n_samples` is None or an integer in 1…`available`."""
    if n_samples is None:
        return
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"{name}: must be a positive integer, got {n_samples!r}")
    if n_samples > available:
        raise ValueError(f"{name}: asked for {n_samples} samples, the data set has {available}")


def load_idx_dataset(directory, *, split: str = "train", n_samples: int | None = None):
    """Images and labels from `{split}-images-idx3-ubyte[.gz]` / `{split}-labels-idx1-ubyte[.gz]`.

    The folder must hold all four files of the MNIST layout (`IDX_FILES`).

    **Returns:** `(x, labels)`: x of shape (T, rows·cols) scaled to [0, 1], labels (T,) ints.
    """
    if split not in ("train", "t10k"):
        raise ValueError(f"split: must be 'train' or 't10k', got {split!r}")
    files = idx_files(directory)
    images = read_idx(files[f"{split}-images-idx3-ubyte"])
    labels = read_idx(files[f"{split}-labels-idx1-ubyte"])
    if images.ndim < 2 or labels.ndim != 1:
        raise ValueError(f"directory: expected images (T, rows, cols) and labels (T,), "
                         f"got shapes {images.shape} and {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"directory: image and label files disagree in length "
                         f"({images.shape[0]} images, {labels.shape[0]} labels)")
    check_n_samples(n_samples, images.shape[0])
    if n_samples is not None:
        images, labels = images[:n_samples], labels[:n_samples]
    x = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
    return x, labels.astype(np.int64)


def load_digits(n_samples: int | None = None):
    """scikit-learn's bundled 8×8 digits (1797 samples), scaled to [0, 1]."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    x, labels = d.data / 16.0, d.target.astype(np.int64)
    check_n_samples(n_samples, x.shape[0])
    if n_samples is not None:
        x, labels = x[:n_samples], labels[:n_samples]
    return x, labels


IMAGE_SOURCES = ("fashion-mnist", "digits")


def load_image_data(source: str = "fashion-mnist", *, n_samples: int | None = None):
    """Training images and labels for §5: `fashion-mnist`, `digits`, or a folder of IDX files.

    - `fashion-mnist`: Debian's `dataset-fashion-mnist` (`find_fashion_mnist`).
    - `digits`: scikit-learn's bundled 8×8 digits (1,797 samples).
    - any other string: a folder with the four MNIST-layout IDX files
      (e.g. MNIST itself).

    **Returns:** `(x, labels, name)` with `name` saying which data set was read.
    """
    if source == "digits":
        x, labels = load_digits(n_samples)
        return x, labels, "scikit-learn digits (8×8)"
    if source == "fashion-mnist":
        found = find_fashion_mnist()
        if found is None:
            raise FileNotFoundError(
                "data: Fashion-MNIST not found in " + ", ".join(FASHION_MNIST_DIRS)
                + "; install it with `apt-get install dataset-fashion-mnist`, set "
                  "SYMLAND_FASHION_MNIST, or pass --data DIR / digits")
        x, labels = load_idx_dataset(found, n_samples=n_samples)
        return x, labels, f"Fashion-MNIST ({found})"
    x, labels = load_idx_dataset(source, n_samples=n_samples)
    return x, labels, f"IDX files in {source}"


# Inputs of `run_mnist` are projected off the directions whose singular value is below INPUT_RTOL of the
# largest. On 10,000 Fashion-MNIST images these are 21 directions (mostly pixels near the edges, which few
# images light up) carrying 5.4e-6 of the energy; along them the fixed-δ loss of §4.1 is nearly
# flat, and 99 % of the first layer's move between consecutive constrained minima lay in them (‖Δθ‖ 14–34
# a step against 1.0–1.4 after the projection). Converged δ steps 1–5 then cost 2–12× more HVPs, and
# steps 0–5 1.67× the time (BENCHMARKS.md, issue 10).
INPUT_RTOL = 1e-3


@dataclasses.dataclass(frozen=True)
class InputProjection:
    """Inputs projected onto their principal subspace (`project_inputs`).

    **Fields:** `x` (the projected inputs, same shape), `rtol`, `dropped`
    (how many right singular directions were removed), `energy` (their
    share of ‖x‖²_F, i.e. of Σσ²).
    """

    x: np.ndarray
    rtol: float
    dropped: int
    energy: float

    def to_dict(self) -> dict:
        return {"input_rtol": self.rtol, "dropped_directions": self.dropped, "dropped_energy": self.energy}


def input_matrix(x) -> np.ndarray:
    """x as a float64 (T, d) array; `ValueError` naming `x` unless it is 2-D, non-empty and finite."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"x: expected non-empty inputs of shape (T, d), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x: contains NaN or inf")
    return x


def check_rtol(rtol, name: str = "rtol") -> None:
    """`ValueError` naming `name` unless `rtol` is a real number in [0, 1)."""
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float, np.floating)) or not 0 <= rtol < 1:  # NaN fails
        raise ValueError(f"{name}: must be a number in [0, 1), got {rtol!r}")


def project_inputs(x, rtol: float = INPUT_RTOL) -> InputProjection:
    """Remove the input directions in which the data has (almost) no energy.

    With x = U diag(σ) Vᵀ, the rows v of Vᵀ with σ < `rtol`·σ_max are
    projected out: x ↦ x − (x v)vᵀ. A first-layer weight component along
    such a v then changes no pre-activation, so the loss is exactly flat
    along it, its gradient is zero and Krylov solvers never move along it;
    on the raw data these directions are nearly flat instead, and the
    fixed-δ minima of Brea et al. 2019, §4.1 wander far out along them
    (`INPUT_RTOL`). The kept directions are unchanged. `rtol` = 0 returns
    the data as it is.

    **Arguments:** `x` (T, d) inputs; `rtol` in [0, 1).
    **Returns:** an `InputProjection`.

    Example:
        >>> import numpy as np
        >>> x = np.array([[1.0, 0.0, 1e-5], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0]])
        >>> p = project_inputs(x, 1e-3)
        >>> sv = np.linalg.svd(p.x, compute_uv=False)  # the weakest direction is gone, the rest kept
        >>> p.dropped, bool(sv[-1] < 1e-15), bool(np.allclose(p.x, x, atol=1e-4))
        (1, True, True)
    """
    check_rtol(rtol)
    x = input_matrix(x)
    if rtol == 0:
        return InputProjection(x=x, rtol=0.0, dropped=0, energy=0.0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    low = sv < rtol * max(sv[0], 1e-300) if sv.size else np.zeros(0, bool)
    # the directions missing from a (T < d) thin SVD are already null in x
    v = vt[low]
    energy = float(np.sum(sv[low] ** 2) / max(np.sum(sv ** 2), 1e-300))
    return InputProjection(x=x - (x @ v.T) @ v, rtol=float(rtol), dropped=int(low.sum()), energy=energy)


# Input directions with σ ≤ NULL_RTOL·σ_max count as carrying no energy: a first-layer weight along one
# changes the loss at second order by ≲ (NULL_RTOL)² = 1e-16 of the largest curvature, below
# `zero_tolerance`'s floor, so the Hessian has a (near-)zero eigenvalue there.
NULL_RTOL = 1e-8


def input_null_dimension(x, rtol: float = NULL_RTOL) -> int:
    """How many independent input directions carry no energy: the nullity of x̃ = (x, 1).

    A first-layer row ϑ_j = (W_j, b_j) sees the data only through x̃ϑ_jᵀ,
    so each such direction v (x̃v = 0) gives, for each of the n₁ neurons,
    one direction of the parameters along which the loss is exactly flat:
    n₁·`input_null_dimension(x)` zero eigenvalues of the Hessian at every
    point, whatever the symmetry. They are not the plateau directions of
    Brea et al. 2019, §4.2, and `fig3_path` reports them beside the
    near-zero count. Counted as singular values of x̃ at most
    `rtol`·σ_max, plus the d + 1 − T missing ones when T < d + 1.

    Example:
        >>> import numpy as np
        >>> x = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0], [3.0, 1.0, 0.0]])
        >>> input_null_dimension(x)  # the third pixel is always dark
        1
        >>> x[:, 2] = 1e-6 * np.array([1.0, -1.0, 2.0, 0.0])  # dim, not dark: no exact null direction
        >>> input_null_dimension(x), input_null_dimension(project_inputs(x, 1e-3).x)
        (0, 1)
    """
    check_rtol(rtol)
    x = input_matrix(x)
    xt = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    sv = np.linalg.svd(xt, compute_uv=False)
    return int(np.sum(sv <= rtol * sv[0]) + max(0, xt.shape[1] - xt.shape[0]))
