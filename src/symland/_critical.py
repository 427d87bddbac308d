"""Critical-point analysis: Hessians, spectra, index, nullity and classification.

Brea et al. 2019, §4.2: a permutation point is critical, its Hessian has at
most one negative eigenvalue (Fukumizu & Amari 2000, Th. 3) and at least
n_{k+1} zero eigenvalues.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

jax.config.update("jax_enable_x64", True)

_EPS = float(np.finfo(np.float64).eps)
DENSE_THRESHOLD = 4000


def hessian_matrix(loss_fn, params):
    """The dense Hessian ∇²L(θ) of the flattened parameters (`ravel_pytree` order)."""
    x0, unravel = ravel_pytree(params)
    H = jax.jit(jax.hessian(lambda x: loss_fn(unravel(x))))(x0)
    return 0.5 * (H + H.T)


def hessian_spectrum(loss_fn, params, *, method: str = "auto"):
    """All eigenvalues of ∇²L(θ), ascending, by a dense eigendecomposition.

    **Arguments:**
    - `method`: `dense`, or `auto` (dense up to `DENSE_THRESHOLD` parameters).

    **Returns:** a NumPy array of eigenvalues.
    """
    n = ravel_pytree(params)[0].size
    if method not in ("auto", "dense"):
        raise ValueError(f"method: unknown method {method!r}; choose 'auto' or 'dense'")
    if method == "auto" and n > DENSE_THRESHOLD:
        raise ValueError(
            f"params: {n} parameters exceed the dense threshold {DENSE_THRESHOLD}; "
            "pass method='dense' to force a dense spectrum"
        )
    return np.asarray(jnp.linalg.eigvalsh(hessian_matrix(loss_fn, params)))


def zero_tolerance(eigenvalues, *, factor: float = 100.0) -> float:
    """The tolerance below which |λ| counts as zero: factor · n · ε · max|λ|.

    A backward-stable symmetric eigensolver returns eigenvalues with absolute
    error ≲ c·n·ε·‖H‖₂ (Golub & Van Loan, §8.1); the Hessian itself carries
    round-off of the same order from summing over samples. The default
    factor 100 leaves two digits of margin above that floor.
    """
    eig = np.asarray(eigenvalues)
    return float(factor * eig.size * _EPS * max(np.max(np.abs(eig)), np.finfo(np.float64).tiny))


@dataclasses.dataclass(frozen=True)
class CriticalPointReport:
    """What a critical point is: gradient, index, nullity, and the verdict.

    **Fields:** `loss`, `grad_norm` (‖∇L‖∞), `index` (negative eigenvalues),
    `nullity` (|λ| ≤ `zero_tol`), `n_positive`, `zero_tol`, `kind`
    (`minimum`, `strict saddle`, `degenerate` or `not critical`),
    `eigenvalues` (ascending), `gtol` (the gradient tolerance used).
    """

    loss: float
    grad_norm: float
    index: int
    nullity: int
    n_positive: int
    zero_tol: float
    kind: str
    eigenvalues: np.ndarray
    gtol: float

    @property
    def is_critical(self) -> bool:
        return self.grad_norm <= self.gtol

    def to_dict(self) -> dict:
        return {
            "loss": self.loss, "grad_norm": self.grad_norm, "index": self.index,
            "nullity": self.nullity, "n_positive": self.n_positive,
            "zero_tol": self.zero_tol, "kind": self.kind, "gtol": self.gtol,
            "min_eigenvalue": float(self.eigenvalues[0]),
            "max_eigenvalue": float(self.eigenvalues[-1]),
        }


def count_signs(eigenvalues, zero_tol: float) -> tuple[int, int, int]:
    """(negative, zero, positive) counts with |λ| ≤ `zero_tol` counted as zero."""
    eig = np.asarray(eigenvalues)
    neg = int(np.sum(eig < -zero_tol))
    pos = int(np.sum(eig > zero_tol))
    return neg, eig.size - neg - pos, pos


def classify_critical_point(loss_fn, params, *, gtol: float = 1e-8,
                            zero_tol: float | None = None) -> CriticalPointReport:
    """Classify θ from its gradient and dense Hessian spectrum.

    `kind` is `not critical` when ‖∇L‖∞ > `gtol`; otherwise `strict saddle`
    if some eigenvalue is negative, `minimum` if all are positive, and
    `degenerate` if none is negative but some are zero (a second-order test
    cannot decide). Zero means |λ| ≤ `zero_tol`, by default `zero_tolerance`.
    """
    loss, grad = jax.value_and_grad(loss_fn)(params)
    grad_norm = float(jnp.max(jnp.abs(ravel_pytree(grad)[0])))
    eig = hessian_spectrum(loss_fn, params, method="dense")
    tol = zero_tolerance(eig) if zero_tol is None else float(zero_tol)
    neg, zero, pos = count_signs(eig, tol)
    if grad_norm > gtol:
        kind = "not critical"
    elif neg > 0:
        kind = "strict saddle"
    elif zero > 0:
        kind = "degenerate"
    else:
        kind = "minimum"
    return CriticalPointReport(float(loss), grad_norm, neg, zero, pos, tol, kind, eig, float(gtol))


def eigenvalue_multiplicities(eigenvalues, *, rtol: float = 1e-7, atol: float | None = None):
    """Cluster eigenvalues that agree within tolerance: [(value, multiplicity), …].

    Sorted eigenvalues are split where the gap to the next one exceeds
    `atol + rtol·|λ|` (`atol` defaults to `zero_tolerance`). Each cluster
    is reported by its mean.
    """
    eig = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    if eig.size == 0:
        return []
    a = zero_tolerance(eig) if atol is None else float(atol)
    clusters, start = [], 0
    for i in range(1, eig.size + 1):
        if i == eig.size or eig[i] - eig[i - 1] > a + rtol * max(abs(eig[i]), abs(eig[i - 1])):
            clusters.append((float(np.mean(eig[start:i])), i - start))
            start = i
    return clusters
