"""Multilayer perceptrons in the layout of Brea et al. 2019, eq. 1.

f(x; θ) = W^(d) g(… g(W^(1) x + b^(1)) …) + b^(d), with W^(k) of shape
n_k × n_{k−1}. Parameters are a plain list of `(W, b)` pairs (a pytree), so
`jax.jit`, `jax.grad` and `jax.vmap` apply unchanged. With `bias=False` every
`b` is `None`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Params = list  # list of (W, b) pairs, W^(k) of shape n_k × n_{k-1}


def _erf_unit(x):
    return jax.scipy.special.erf(x / math.sqrt(2.0))


def _g(x):
    return jax.nn.sigmoid(4.0 * x) + jax.nn.softplus(x)


ACTIVATIONS: dict[str, Callable] = {
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "erf": _erf_unit,  # erf(x/√2)
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "g": _g,  # sigmoid(4x) + softplus(x)
}
ODD_ACTIVATIONS = ("tanh", "erf")  # g(−z) = −g(z): flipping the signs of (ϑ_m, a_m) leaves f unchanged


def activation_function(name: str) -> Callable:
    """The activation called `name`; `ValueError` listing the known ones otherwise."""
    if name not in ACTIVATIONS:
        raise ValueError(
            f"activation: unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]


# `layer_product`: above CHUNK_MIN_SAMPLES samples, h·Wᵀ is one batched product over SAMPLE_CHUNKS row
# blocks of h (the rows that do not divide evenly go through a plain product of their own).
SAMPLE_CHUNKS = 8
CHUNK_MIN_SAMPLES = 2048


def layer_product(h, W):
    """h Wᵀ for a batch h of shape (T, n_{k−1}) and W^(k) of shape (n_k, n_{k−1}) (eq. 1's W^(k) h).

    The same product, written so that XLA on a CPU differentiates it well.
    With T ≥ `CHUNK_MIN_SAMPLES`, h's rows are cut into `SAMPLE_CHUNKS`
    blocks and multiplied as one batched product. Reverse mode then forms
    the first layer's gradient Dᵀh as a batched product plus a sum over
    the blocks, instead of one product that contracts over all T samples,
    which XLA's CPU backend runs slowly (x·W₁ᵀ with Dᵀx for 784-25-25-10 on
    10,000 samples: 23.4 ms, against 16.2 ms with Dᵀx by blocks, on an Intel
    Xeon with 2 cores; `benchmarks/bench_mnist.py --only grad`). For the 784-10-10-10 fixed-δ
    problem on 10,000 samples an HVP (`FlatProblem.hvp_at`) then takes 19.3 ms
    against 22.3 ms, and the loss and gradient 18.9 ms against 22.4 ms
    (1.18× each; `benchmarks/bench_mnist.py --only hvp`, BENCHMARKS.md). The
    sums are ordered differently, so the result can differ from h @ W.T by
    rounding. A 1-D h, or fewer samples, takes the plain product.

    Example:
        >>> import numpy as np
        >>> h = np.random.default_rng(0).standard_normal((5000, 7)); W = np.ones((3, 7))
        >>> bool(np.allclose(layer_product(h, W), h @ W.T, rtol=1e-13))
        True
    """
    T = h.shape[0] if jnp.ndim(h) == 2 else 0
    c = SAMPLE_CHUNKS
    if c < 2 or T < max(CHUNK_MIN_SAMPLES, c):
        return h @ W.T
    q = T // c
    z = jnp.einsum("cti,ji->ctj", h[:c * q].reshape(c, q, h.shape[1]), W).reshape(c * q, W.shape[0])
    return z if c * q == T else jnp.concatenate([z, h[c * q:] @ W.T])


@dataclasses.dataclass(frozen=True)
class MLP:
    """A fully connected network with linear output layer (Brea et al. 2019, eq. 1).

    **Arguments:**
    - `widths`: `(n_0, n_1, …, n_d)`; layers k = 1…d−1 are hidden.
    - `activation`: one of `relu`, `softplus`, `tanh`, `sigmoid`, `erf`
      (erf(x/√2)), `gelu`, `g` (sigmoid(4x) + softplus(x)).
    - `bias`: whether every layer has a bias vector.
    """

    widths: tuple[int, ...]
    activation: str = "relu"
    bias: bool = True

    def __post_init__(self):
        widths = tuple(self.widths)
        if len(widths) < 2:
            raise ValueError(f"widths: need at least input and output widths, got {widths}")
        for w in widths:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ValueError(f"widths: every width must be a positive integer, got {widths}")
        object.__setattr__(self, "widths", widths)
        activation_function(self.activation)

    @property
    def depth(self) -> int:
        """d, the number of weight layers."""
        return len(self.widths) - 1

    @property
    def hidden_layers(self) -> range:
        """The hidden layer numbers k = 1…d−1 (paper numbering)."""
        return range(1, self.depth)

    @property
    def n_params(self) -> int:
        n = 0
        for k in range(1, self.depth + 1):
            n += self.widths[k] * self.widths[k - 1] + (self.widths[k] if self.bias else 0)
        return n

    def init(self, key, *, scale: float = 1.0) -> Params:
        """Random parameters: W^(k) ~ N(0, scale²/n_{k−1}), b^(k) ~ N(0, scale²)."""
        params = []
        keys = jax.random.split(key, 2 * self.depth)
        for k in range(1, self.depth + 1):
            n_out, n_in = self.widths[k], self.widths[k - 1]
            W = scale * jax.random.normal(keys[2 * k - 2], (n_out, n_in)) / math.sqrt(n_in)
            b = scale * jax.random.normal(keys[2 * k - 1], (n_out,)) if self.bias else None
            params.append((W, b))
        return params

    def apply(self, params: Params, x, *, offset=None):
        """f(x; θ) for a batch `x` of shape (T, n_0); returns (T, n_d).

        `offset=(j, E)` adds E (shape (T, n_j)) to the pre-activation of
        layer j, e.g. to differentiate the loss with respect to it.

        `ValueError` naming `params` when the parameters do not match the
        widths (a list with too few layers included), naming `x` when its
        last axis is not n_0, and naming `offset` for a layer outside 1…d.
        Shapes are static, so the checks also hold under `jit` and `vmap`.
        """
        self.check_params(params)
        if jnp.ndim(x) not in (1, 2) or jnp.shape(x)[-1] != self.widths[0]:
            raise ValueError(f"x: expected shape (T, {self.widths[0]}), got {tuple(jnp.shape(x))}")
        if offset is not None:
            j = offset[0]
            if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 1 <= j <= self.depth:
                raise ValueError(f"offset: layer {j!r} must be one of 1…{self.depth}")
        g = ACTIVATIONS[self.activation]
        h = x
        for k, (W, b) in enumerate(params, start=1):
            h = layer_product(h, W)
            if b is not None:
                h = h + b
            if offset is not None and k == offset[0]:
                h = h + offset[1]
            if k < len(params):
                h = g(h)
        return h

    def hidden(self, params: Params, x, layer: int):
        """Post-activations of hidden layer `layer` for a batch `x`, shape (T, n_layer)."""
        g = ACTIVATIONS[self.activation]
        h = x
        for W, b in params[:layer]:
            h = layer_product(h, W)
            if b is not None:
                h = h + b
            h = g(h)
        return h

    def preactivations(self, params: Params, x) -> list:
        """Pre-activations W^(k) h^(k−1) + b^(k) of every hidden layer, each (T, n_k)."""
        g = ACTIVATIONS[self.activation]
        h, out = x, []
        for W, b in params[:-1]:
            h = layer_product(h, W)
            if b is not None:
                h = h + b
            out.append(h)
            h = g(h)
        return out

    def check_params(self, params: Params) -> None:
        """`ValueError` unless `params` matches the widths and bias setting."""
        if isinstance(params, (str, bytes)) or not isinstance(params, Sequence) \
                or len(params) != self.depth:
            got = f"{len(params)} entries" if isinstance(params, Sequence) else type(params).__name__
            raise ValueError(f"params: expected a list of {self.depth} (W, b) pairs for widths "
                             f"{self.widths}, got {got}")
        for k, pair in enumerate(params, start=1):
            if not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(f"params: entry {k} must be a pair (W^({k}), b^({k}))")
            W, b = pair
            if jnp.ndim(W) != 2:
                raise ValueError(f"params: W^({k}) must be a matrix, got shape {tuple(jnp.shape(W))}")
            shape = (self.widths[k], self.widths[k - 1])
            if tuple(jnp.shape(W)) != shape:
                raise ValueError(f"params: W^({k}) has shape {tuple(jnp.shape(W))}, expected {shape}")
            if self.bias and (b is None or tuple(jnp.shape(b)) != (self.widths[k],)):
                raise ValueError(f"params: b^({k}) must have shape ({self.widths[k]},)")
            if not self.bias and b is not None:
                raise ValueError(f"params: b^({k}) must be None for a network without bias")


def check_finite_params(params, name: str = "params") -> None:
    """`ValueError` naming `name` if any parameter is complex, NaN or infinite."""
    for leaf in jax.tree_util.tree_leaves(params):
        if isinstance(leaf, jax.core.Tracer):  # inside jit/vmap: values are not known here
            continue
        a = np.asarray(leaf)
        if np.iscomplexobj(a):
            raise ValueError(f"{name}: parameters must be real, got complex entries")
        if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
            raise ValueError(f"{name}: parameters must be numeric arrays, got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: parameters must be finite, got NaN or inf")
