"""Closed-form population loss of a two-layer student–teacher network with
standard Gaussian inputs (Safran & Shamir 2018; Arjevani & Field 2020–2022).

f(x) = Σ_i a_i σ(w_i·x) is fitted to g(x) = Σ_j b_j σ(v_j·x), x ~ N(0, I_d).
Rows of W (k × d) and V (n × d) are neurons (the Arjevani–Field convention;
Safran & Shamir's code stores neurons as columns). With the kernel
K(w, v) = E[σ(w·x) σ(v·x)] the loss is

    L = ½ Σ_ij a_i a_j K(w_i, w_j) − Σ_ij a_i b_j K(w_i, v_j) + ½ Σ_ij b_i b_j K(v_i, v_j).

Two activations have a closed-form kernel:

- ``"relu"``: the arc-cosine kernel of Cho & Saul (2009),
  K = ‖w‖‖v‖ (sin θ + (π − θ) cos θ) / (2π);
- ``"erf"``: σ(t) = erf(t/√2), Williams (1998),
  K = (2/π) arcsin( w·v / √((1 + ‖w‖²)(1 + ‖v‖²)) ).

Both formulas were checked by Monte Carlo (tests/test_gaussian.py).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

KERNEL_ACTIVATIONS = ("relu", "erf")

# Taylor coefficients of φ(r) = r − atan(r) = r³ Σ_n (−1)^n r^{2n} / (2n + 3);
# enough terms for double precision when r < 0.1.
_PHI_COEFFS = tuple((-1) ** n / (2 * n + 3) for n in range(9))
_SERIES_RATIO = 0.1


def check_activation(activation: str) -> str:
    """Raise ValueError unless `activation` has a closed-form Gaussian kernel."""
    if activation not in KERNEL_ACTIVATIONS:
        raise ValueError(
            f"activation={activation!r} has no closed-form Gaussian kernel; "
            f"supported: {', '.join(KERNEL_ACTIVATIONS)}"
        )
    return activation


def _safe_sqrt(x, ok, xp=jnp):
    """√x where `ok`, 0 elsewhere, with finite derivatives everywhere (double where)."""
    return xp.where(ok, xp.sqrt(xp.where(ok, x, 1.0)), 0.0)


def relu_kernel_from_gram(nw2, nv2, c, s2, xp=jnp):
    """Arc-cosine kernel E[relu(w·x) relu(v·x)] from inner products.

    **Arguments:** `nw2 = ‖w‖²`, `nv2 = ‖v‖²`, `c = w·v`,
    `s2 = ‖w‖²‖v‖² − (w·v)² = ‖w ∧ v‖²` (pass it computed stably); `xp`:
    the array module (`jax.numpy`, or `numpy` for extended precision).

    **Returns:** K = (s + (π − θ) c) / (2π) with s = ‖w ∧ v‖, θ = atan2(s, c)
    (Cho & Saul 2009, n = 1; math.md §6), evaluated without NaN anywhere:

    - near (anti)parallel neurons (s < 0.1 |c|) through the series
      K = (π max(c, 0) + s³/c² · Σ (−1)^n (s/c)^{2n}/(2n+3)) / (2π), which is
      C² there: at exactly parallel or antiparallel w, v the gradient and
      Hessian returned are the (two-sided) limits, e.g. ∂K/∂w = v/2 and 0;
    - at w = 0 or v = 0, where K is not differentiable (it is homogeneous of
      degree 1), K = 0 and the gradient returned is ∂K/∂w = v/4, the value of
      E[relu'(w·x) x relu(v·x)] with the convention relu'(0) = ½ (θ := π/2).
      The Hessian there is that of c/4 (a convention, not a limit).
    """
    pi = 4 * xp.arctan(xp.ones_like(c))
    degenerate = (nw2 == 0) | (nv2 == 0)
    series = (~degenerate) & (s2 < (_SERIES_RATIO * c) ** 2)
    general = ~(degenerate | series)
    # general position
    s = _safe_sqrt(s2, general, xp)
    cg = xp.where(general, c, 1.0)
    k_general = (s + (pi - xp.arctan2(s, cg)) * cg) / (2 * pi)
    # (anti)parallel: s + (π − θ) c = π max(c, 0) + |c| φ(s/|c|)
    cs = xp.where(series, c, 1.0)
    s2s = xp.where(series, s2, 0.0)
    s3 = s2s * _safe_sqrt(s2s, series & (s2s > 0), xp)
    r2 = s2s / cs**2
    poly = 0.0
    for coeff in reversed(_PHI_COEFFS):
        poly = poly * r2 + coeff
    k_series = (pi * xp.maximum(cs, 0.0) + s3 / cs**2 * poly) / (2 * pi)
    k_degenerate = c / 4
    return xp.where(general, k_general, xp.where(series, k_series, k_degenerate))


def erf_kernel_from_gram(nw2, nv2, c, xp=jnp):
    """Arcsine kernel E[erf(w·x/√2) erf(v·x/√2)] = (2/π) arcsin(c/√((1+‖w‖²)(1+‖v‖²))).

    (Williams 1998; math.md §6.) Smooth everywhere.
    """
    pi = 4 * xp.arctan(xp.ones_like(c))
    return (2 / pi) * xp.arcsin(c / xp.sqrt((1 + nw2) * (1 + nv2)))


def _wedge2(w, v, nw2, c):
    """‖w ∧ v‖² = ‖w‖² ‖v − (w·v/‖w‖²) w‖², O(d), exactly 0 for stored equal vectors."""
    nz = nw2 > 0
    t = jnp.where(nz, c / jnp.where(nz, nw2, 1.0), 0.0)
    r = v - t * w
    return nw2 * (r @ r)


def gaussian_kernel(w, v, activation: str = "relu"):
    """E_{x~N(0,I)}[σ(w·x) σ(v·x)] in closed form.

    **Arguments:** `w`, `v`: vectors of the same length d; `activation`:
    ``"relu"`` or ``"erf"`` (σ(t) = erf(t/√2)).

    **Returns:** the scalar kernel value; differentiable everywhere for
    ``"erf"``, and NaN-free with documented limits for ``"relu"``
    (see `relu_kernel_from_gram`).
    """
    check_activation(activation)
    nw2, nv2, c = w @ w, v @ v, w @ v
    if activation == "relu":
        return relu_kernel_from_gram(nw2, nv2, c, _wedge2(w, v, nw2, c))
    return erf_kernel_from_gram(nw2, nv2, c)


def kernel_matrix(W, V, activation: str = "relu"):
    """The matrix K(w_i, v_j) for rows w_i of W and v_j of V."""
    check_activation(activation)
    row = jax.vmap(lambda w, v: gaussian_kernel(w, v, activation), in_axes=(None, 0))
    return jax.vmap(row, in_axes=(0, None))(W, V)


def _check_shapes(W, V, a, b):
    if W.ndim != 2 or V.ndim != 2:
        raise ValueError(f"student W and teacher V must be 2-d (neurons × inputs), got {W.shape} and {V.shape}")
    if W.shape[1] != V.shape[1]:
        raise ValueError(
            f"teacher V has input dimension {V.shape[1]} but the student W has {W.shape[1]} "
            "(rows are neurons, columns are inputs)"
        )
    if a is not None and jnp.shape(a) != (W.shape[0],):
        raise ValueError(f"student output weights a must have shape ({W.shape[0]},), got {jnp.shape(a)}")
    if b is not None and jnp.shape(b) != (V.shape[0],):
        raise ValueError(f"teacher output weights b must have shape ({V.shape[0]},), got {jnp.shape(b)}")


def _checked(W, V, a, b, activation):
    """Validated float arrays (W, V, a, b); output weights default to ones (Safran & Shamir)."""
    W, V = jnp.asarray(W), jnp.asarray(V)
    _check_shapes(W, V, a, b)
    check_activation(activation)
    a = jnp.ones(W.shape[0], W.dtype) if a is None else jnp.asarray(a)
    b = jnp.ones(V.shape[0], V.dtype) if b is None else jnp.asarray(b)
    return W, V, a, b


def expected_loss(W, V, a=None, b=None, *, activation: str = "relu"):
    """Population loss ½ E[(Σ_i a_i σ(w_i·x) − Σ_j b_j σ(v_j·x))²], x ~ N(0, I_d).

    **Arguments:** `W` (k × d) student and `V` (n × d) teacher, rows are
    neurons (transpose Safran & Shamir's matrices); `a` (k,), `b` (n,) output
    weights, ones when omitted (Safran & Shamir 2018); `activation`.

    **Returns:** the scalar loss (math.md §6). Autodiff through it gives the
    gradient and Hessian, NaN-free at w_i = 0 and (anti)parallel neurons.
    """
    return _expected_loss(*_checked(W, V, a, b, activation), activation)


@functools.partial(jax.jit, static_argnums=4)
def _expected_loss(W, V, a, b, activation):
    kww = kernel_matrix(W, W, activation)
    kwv = kernel_matrix(W, V, activation)
    kvv = kernel_matrix(V, V, activation)
    return 0.5 * a @ kww @ a - a @ kwv @ b + 0.5 * b @ kvv @ b


def gaussian_loss_function(V, b=None, *, activation: str = "relu", trainable_output: bool = False):
    """The loss as a function of one parameter pytree, for solvers.

    **Arguments:** teacher `V`, `b` as in `expected_loss`; `trainable_output`:
    if False the parameters are the matrix W (a = 1, Safran & Shamir 2018),
    if True they are ``{"W": W, "a": a}``.

    **Returns:** `loss_fn(params) -> scalar`.
    """
    V = jnp.asarray(V)
    check_activation(activation)
    if trainable_output:
        return lambda p: expected_loss(p["W"], V, p["a"], b, activation=activation)
    return lambda W: expected_loss(W, V, None, b, activation=activation)


def sample_loss(key, W, V, a=None, b=None, *, activation: str = "relu", n_samples: int = 1_000_000):
    """Monte-Carlo estimate of `expected_loss` (for validation).

    **Returns:** ``(mean, standard_error)`` over `n_samples` Gaussian inputs.
    """
    W, V, a, b = _checked(W, V, a, b, activation)
    x = jax.random.normal(key, (n_samples, W.shape[1]))
    act = jax.nn.relu if activation == "relu" else (lambda t: jax.scipy.special.erf(t / math.sqrt(2)))
    r = act(x @ W.T) @ a - act(x @ V.T) @ b
    vals = 0.5 * r**2
    return jnp.mean(vals), jnp.std(vals) / math.sqrt(n_samples)


def _pair_hessians(W, V, activation):
    """∂²K/∂(w, v)² for every pair (w_i, v_j): shape (k, n, 2d, 2d)."""
    d = W.shape[1]
    h = jax.hessian(lambda wv: gaussian_kernel(wv[:d], wv[d:], activation))
    one = lambda w, v: h(jnp.concatenate([w, v]))
    return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(W, V)


def loss_hessian(W, V, a=None, b=None, *, activation: str = "relu"):
    """The Hessian of `expected_loss` with respect to W, as a (k·d) × (k·d) matrix.

    Assembled from the 2d × 2d Hessians of the kernel for each pair of neurons:
    O(k² d²) work instead of O(k⁴ d) for the dense `jax.hessian` of the loss
    (same values; tested). Row-major order of W (neuron i, input p) ↦ i·d + p.
    """
    return _loss_hessian(*_checked(W, V, a, b, activation), activation)


@functools.partial(jax.jit, static_argnums=4)
def _loss_hessian(W, V, a, b, activation):
    k, d = W.shape
    P = _pair_hessians(W, W, activation)  # (k, k, 2d, 2d)
    Q = _pair_hessians(W, V, activation)[:, :, :d, :d]  # (k, n, d, d)
    A = 0.5 * jnp.outer(a, a)
    Pww, Pwv, Pvw, Pvv = P[:, :, :d, :d], P[:, :, :d, d:], P[:, :, d:, :d], P[:, :, d:, d:]
    off = A[:, :, None, None] * Pwv + jnp.swapaxes(A, 0, 1)[:, :, None, None] * jnp.swapaxes(Pvw, 0, 1)
    diag = (jnp.einsum("ij,ijpq->ipq", A, Pww) + jnp.einsum("ji,jipq->ipq", A, Pvv)
            - jnp.einsum("i,m,impq->ipq", a, b, Q))
    blocks = off + jnp.eye(k)[:, :, None, None] * diag[:, None, :, :]
    H = jnp.transpose(blocks, (0, 2, 1, 3)).reshape(k * d, k * d)
    return 0.5 * (H + H.T)
