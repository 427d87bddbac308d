"""Inputs wider than the network, d ≥ k (Arjevani & Field 2020, "tale of symmetry";
Arjevani & Field 2021, "analytic study of families of spurious minima").

Student W ∈ R^{k×d}, teacher rows e_1, …, e_k ∈ R^d (V = [I_k | 0]), a = b = 1.
Every critical point W_k of the square problem gives the critical point
W = [W_k | 0] of the wide one: the gradient of each kernel lies in the span of
its two arguments, so the gradient has no component in the last d − k columns.
Its isotropy grows from ΔS_{k−1} to ΔS_{k−1} × S_{d−k} (and O(d − k) acts on
the extra input coordinates), and the loss does not change with d.

The Hessian at such a point is block-diagonal in closed form (derived here, and
checked against the dense Hessian in tests/test_gaussian_wide.py):

    H = H_k ⊕ (I_{d−k} ⊗ H_⊥),   H_⊥ = ∇_G L + (∇_G L)ᵀ,

where H_k is the k² × k² Hessian of the square problem and ∇_G L is the
derivative of the loss with respect to the Gram matrix G = W Wᵀ, its entries
G_ij treated as independent. Reason: moving column p > k by t·u changes only
G, by t² u uᵀ, so ∂²L/∂t² = 2 Σ_ij ∂L/∂G_ij u_i u_j. So the dk eigenvalues are
the k² of H_k and the k eigenvalues of H_⊥, each d − k times; computing them
costs O(k⁶) whatever d is.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import jax
import jax.numpy as jnp

from symland._critical import eigenvalue_multiplicities
from symland._results import CriticalPointReport
from symland.gaussian._isotropy import check_k
from symland.gaussian._kernel import expected_loss, relu_kernel_from_gram


def check_input_dimension(d, k) -> int:
    """Raise ValueError unless d is an integer with d ≥ k (the student needs at least k inputs)."""
    k = check_k(k)
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
        raise ValueError(f"d: the input dimension must be an integer, got {d!r}")
    if d < k:
        raise ValueError(f"d: the input dimension must be >= k (inputs at least as many as neurons), got d={d} < k={k}")
    return int(d)


def wide_teacher(k: int, d: int) -> np.ndarray:
    """The teacher V = [I_k | 0] ∈ R^{k×d} (rows e_1, …, e_k)."""
    d = check_input_dimension(d, k)
    return np.eye(k, d)


def wide_point(W_k, d: int) -> np.ndarray:
    """Embed a square point W_k (k × k) as [W_k | 0] ∈ R^{k×d}; [I_k | 0] is the global minimum."""
    W_k = np.asarray(W_k, dtype=np.float64)
    if W_k.ndim != 2 or W_k.shape[0] != W_k.shape[1]:
        raise ValueError(f"W_k: expected a square k × k matrix, got shape {W_k.shape}")
    d = check_input_dimension(d, W_k.shape[0])
    W = np.zeros((W_k.shape[0], d))
    W[:, : W_k.shape[0]] = W_k
    return W


def _gram_loss(G, C):
    """ReLU loss (a = b = 1, teacher V with VVᵀ = I) as a function of G = WWᵀ and C = WVᵀ, all G_ij independent."""
    k = G.shape[0]
    g = jnp.diag(G)
    off = ~np.eye(k, dtype=bool)
    Go = jnp.where(off, G, 0.0)
    gi, gj = g[:, None] * jnp.ones((1, k)), jnp.ones((k, 1)) * g[None, :]
    kww = relu_kernel_from_gram(gi, gj, Go, jnp.where(off, gi * gj - Go**2, 1.0))
    student = 0.5 * jnp.sum(jnp.where(off, kww, 0.0)) + 0.25 * jnp.sum(g)
    ones = jnp.ones_like(C)
    kwv = relu_kernel_from_gram(gi, ones, C, jnp.maximum(gi - C**2, 0.0))
    teacher = 0.25 * k + 0.5 * k * (k - 1) / (2 * np.pi)
    return student - jnp.sum(kwv) + teacher


_gram_grad = jax.jit(jax.grad(_gram_loss))


def orthogonal_hessian_block(W_k) -> np.ndarray:
    """H_⊥ = ∇_G L + (∇_G L)ᵀ: the k × k Hessian block of one extra input column (module docstring).

    **Arguments:** `W_k`: a k × k point of the square problem (teacher I_k, ReLU, a = b = 1).

    **Returns:** the k × k matrix; its eigenvalues appear d − k times in the dk spectrum.

    Example:
        >>> import numpy as np
        >>> H = orthogonal_hessian_block(np.eye(3))
        >>> bool(np.allclose(H, H.T))
        True
    """
    W_k = jnp.asarray(W_k, dtype=jnp.float64)
    g = _gram_grad(W_k @ W_k.T, W_k)
    return np.asarray(g + g.T)


def square_hessian(W_k) -> np.ndarray:
    """The k² × k² Hessian H_k of the square problem (teacher I_k) at W_k, by `loss_hessian`."""
    from symland.gaussian._families import full_space_derivatives

    return full_space_derivatives(jnp.asarray(W_k))[2]


def wide_hessian(W_k, d: int) -> np.ndarray:
    """The full dk × dk Hessian at [W_k | 0], teacher [I_k | 0], assembled from the closed-form blocks.

    Row-major order of W (neuron i, input p) ↦ i·d + p, as in `loss_hessian`.
    """
    k = np.asarray(W_k).shape[0]
    d = check_input_dimension(d, k)
    Hk = square_hessian(W_k).reshape(k, k, k, k)
    Hp = orthogonal_hessian_block(W_k)
    H = np.zeros((k, d, k, d))
    H[:, :k, :, :k] = Hk
    for p in range(k, d):
        H[:, p, :, p] = Hp
    return H.reshape(k * d, k * d)


def wide_gradient(W_k, d: int) -> np.ndarray:
    """∇L in the full k × d space at [W_k | 0] (autodiff of `expected_loss`, teacher [I_k | 0])."""
    W = wide_point(W_k, d)
    return np.asarray(jax.grad(lambda X: expected_loss(X, jnp.asarray(wide_teacher(W.shape[0], d))))(jnp.asarray(W)))


@dataclasses.dataclass(frozen=True)
class WideSpectrum:
    """The Hessian spectrum at [W_k | 0] for one d, from the closed-form blocks.

    **Fields:** `k`, `d`, `loss`, `grad_norm` (‖∇L‖∞ over all dk coordinates),
    `square` (the k² eigenvalues of H_k), `orthogonal` (the k eigenvalues of
    H_⊥, each d − k times), `report` (`CriticalPointReport` of the dk spectrum).
    """

    k: int
    d: int
    loss: float
    grad_norm: float
    square: np.ndarray
    orthogonal: np.ndarray
    report: CriticalPointReport

    @property
    def eigenvalues(self) -> np.ndarray:
        """All dk eigenvalues, ascending."""
        return np.sort(np.concatenate([self.square, np.repeat(self.orthogonal, self.d - self.k)]))

    def multiplicities(self, rtol: float = 1e-6) -> list:
        return eigenvalue_multiplicities(self.eigenvalues, rtol=rtol)

    def to_dict(self) -> dict:
        return {"k": self.k, "d": self.d, "loss": self.loss, "grad_norm": self.grad_norm,
                "kind": str(self.report.kind), "index": self.report.index, "nullity": self.report.nullity,
                "min_eigenvalue": float(self.eigenvalues[0]), "max_eigenvalue": float(self.eigenvalues[-1]),
                "multiplicities": [[v, m] for v, m in self.multiplicities()]}


def wide_spectrum(W_k, d: int, *, gtol: float = 1e-10, square=None, orthogonal=None,
                  loss_grad=None) -> WideSpectrum:
    """Loss, full-space gradient norm and dk Hessian spectrum at [W_k | 0] (teacher [I_k | 0]).

    **Arguments:** `W_k` (k × k critical point of the square problem); `d` ≥ k;
    `gtol` (criticality tolerance of the report); `square`, `orthogonal`:
    eigenvalues of H_k and H_⊥ if already known (they do not depend on d);
    `loss_grad`: (loss, ‖∇L‖∞) if already known, e.g. from a larger d' ≥ d
    (the first d columns of the gradient at [W_k | 0] ∈ R^{k×d'} are the
    gradient at [W_k | 0] ∈ R^{k×d}, and the loss is the same).

    **Returns:** a `WideSpectrum`.

    Example:
        >>> import numpy as np
        >>> s = wide_spectrum(np.eye(3), 5)
        >>> s.eigenvalues.size, round(s.loss, 12), str(s.report.kind)
        (15, 0.0, 'minimum')
    """
    W_k = np.asarray(W_k, dtype=np.float64)
    k = W_k.shape[0]
    d = check_input_dimension(d, k)
    if square is None:
        square = np.linalg.eigvalsh(square_hessian(W_k))
    if orthogonal is None:
        orthogonal = np.linalg.eigvalsh(orthogonal_hessian_block(W_k))
    if loss_grad is None:
        V = jnp.asarray(wide_teacher(k, d))
        loss, g = jax.value_and_grad(lambda X: expected_loss(X, V))(jnp.asarray(wide_point(W_k, d)))
        gn = float(jnp.max(jnp.abs(g)))
    else:
        loss, gn = (float(v) for v in loss_grad)
    eig = np.sort(np.concatenate([square, np.repeat(orthogonal, d - k)]))
    report = CriticalPointReport.from_spectrum(float(loss), gn, eig, gtol=gtol)
    return WideSpectrum(k, d, float(loss), gn, np.asarray(square), np.asarray(orthogonal), report)


def spectral_distance(eig_a, eig_b) -> dict:
    """Distances between two spectra of equal size, as empirical measures (each eigenvalue weight 1/n).

    **Returns:** ``{"w1": mean |a_(i) − b_(i)|`` (the 1-Wasserstein distance of the
    two spectral measures), ``"sup": max |a_(i) − b_(i)|`` (sorted eigenvalues),
    ``"bulk_w1"``: the same mean over the eigenvalues below the median of both
    (the bulk near small constants)}.

    Example:
        >>> spectral_distance([0.0, 1.0], [0.0, 1.5])["w1"]
        0.25
    """
    a, b = np.sort(np.asarray(eig_a, float)), np.sort(np.asarray(eig_b, float))
    if a.shape != b.shape:
        raise ValueError(f"eig_b: spectra must have the same size, got {a.size} and {b.size}")
    diff = np.abs(a - b)
    half = a.size // 2
    return {"w1": float(diff.mean()), "sup": float(diff.max()), "bulk_w1": float(diff[:max(half, 1)].mean())}


def power_law_exponent(x, y) -> tuple[float, float]:
    """Least-squares fit log y = log c + p log x; returns (p, its standard error)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    X = np.stack([np.ones_like(lx), lx], axis=1)
    coef, *_ = np.linalg.lstsq(X, ly, rcond=None)
    resid = ly - X @ coef
    n = lx.size
    se = float(np.sqrt(resid @ resid / max(n - 2, 1) * np.linalg.inv(X.T @ X)[1, 1])) if n > 2 else float("nan")
    return float(coef[1]), se
