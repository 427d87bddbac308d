"""Symmetry-breaking perturbation of the target, V = I + εE (Arjevani & Field 2022,
over-parameterisation paper: "for a fixed number of neurons and inputs, the
spectral results remain true under symmetry breaking perturbation of the target").

A fixed random direction E (‖E‖_F = 1) breaks every symmetry of the teacher.
Each family's minimum is followed in ε by predictor–corrector continuation in
the full k²-dimensional space (tangent predictor dW/dε = −H⁻¹ ∂²L/∂W∂ε, Newton
corrector with the closed-form Hessian `loss_hessian`), until ε_max, a fold
(Newton fails, or its correction leaves the tangent predictor by more than 30 %
of the step, however small the step) or a loss of minimality (smallest
Hessian eigenvalue ≤ 0).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers

import numpy as np
import jax
import jax.numpy as jnp

from symland._results import CriticalPointReport
from symland.gaussian._kernel import expected_loss, loss_hessian


def check_perturbation_size(eps, name: str = "eps_max") -> float:
    """Raise ValueError unless `eps` is a finite real number ≥ 0 (a perturbation size)."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise ValueError(f"{name}: the perturbation size must be a real number, got {eps!r}")
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name}: the perturbation size must be finite and >= 0, got {eps!r}")
    return eps


def perturbation_direction(k: int, seed: int = 0) -> np.ndarray:
    """A fixed random k × k direction E with ‖E‖_F = 1 (standard normal entries, normalised)."""
    E = np.random.default_rng(seed).standard_normal((k, k))
    return E / np.linalg.norm(E)


@functools.partial(jax.jit)
def _derivatives(W, V, E):
    """Loss, gradient, Hessian at (W, V) and the mixed derivative ∂(∇_W L)/∂ε along V → V + εE."""
    f = lambda W, V: expected_loss(W, V)
    loss, g = jax.value_and_grad(f)(W, V)
    mixed = jax.jvp(lambda V: jax.grad(f)(W, V), (V,), (E,))[1]
    return loss, g, loss_hessian(W, V), mixed


def _newton(W, V, E, tol, steps=30):
    for _ in range(steps):
        loss, g, H, mixed = _derivatives(W, V, E)
        if float(jnp.max(jnp.abs(g))) <= tol:
            return W, True, (loss, g, H, mixed)
        step = np.linalg.solve(np.asarray(H), np.asarray(g).ravel())
        W = W - jnp.asarray(step.reshape(W.shape))
        if not bool(jnp.all(jnp.isfinite(W))):
            return W, False, None
    out = _derivatives(W, V, E)
    return W, float(jnp.max(jnp.abs(out[1]))) <= tol, out


@dataclasses.dataclass(frozen=True)
class PerturbedBranch:
    """One minimum followed in ε.

    **Fields:** `eps` (values reached), `loss`, `grad_norm`, `min_eigenvalue`,
    `eigenvalues` (per ε, ascending), `kinds` (verdict per ε), `w1`, `sup`
    (spectral distances to the ε = 0 spectrum, see `spectral_distance`),
    `end` (why it stopped: 'eps_max', 'fold' or 'saddle'), `eps_end` (last ε
    reached; for 'saddle' the ε where λ_min = 0, located by bisection), `W` (last point).
    """

    eps: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    min_eigenvalue: np.ndarray
    eigenvalues: np.ndarray
    kinds: list
    w1: np.ndarray
    sup: np.ndarray
    end: str
    eps_end: float
    W: np.ndarray

    def to_dict(self) -> dict:
        return {"eps": self.eps.tolist(), "loss": self.loss.tolist(), "grad_norm": self.grad_norm.tolist(),
                "min_eigenvalue": self.min_eigenvalue.tolist(), "kinds": self.kinds, "w1": self.w1.tolist(),
                "sup": self.sup.tolist(), "end": self.end, "eps_end": self.eps_end,
                "max_eigenvalue": self.eigenvalues[:, -1].tolist()}


def follow_perturbed_minimum(W0, E, eps_max: float = 0.5, *, n_steps: int = 20, gtol: float = 1e-11,
                             min_step: float = 1e-4, progress=None) -> PerturbedBranch:
    """Follow the critical point W0 of the V = I_k problem along V(ε) = I + εE, ε ∈ [0, eps_max].

    **Arguments:** `W0` (k × k critical point at ε = 0, rows are neurons); `E`
    (k × k direction, any norm: ε is measured in units of ‖E‖_F); `eps_max`;
    `n_steps` (nominal steps; halved near a fold); `gtol` (Newton tolerance on
    ‖∇L‖∞); `min_step` (a step this small that fails means a fold).

    **Returns:** a `PerturbedBranch`; continuation stops at the first ε where
    the point is no longer a minimum ('saddle': an eigenvalue crossed zero
    with Newton still converging) or where Newton fails ('fold').

    Example:
        >>> import numpy as np
        >>> br = follow_perturbed_minimum(np.eye(3), perturbation_direction(3), 0.1, n_steps=2)
        >>> br.end, bool(br.loss.max() < 1e-20)
        ('eps_max', True)
    """
    from symland.gaussian._wide import spectral_distance

    eps_max = check_perturbation_size(eps_max)
    W = jnp.asarray(W0, dtype=jnp.float64)
    k = W.shape[0]
    E = jnp.asarray(E, dtype=jnp.float64)
    if E.shape != (k, k):
        raise ValueError(f"E: expected shape {(k, k)}, got {E.shape}")
    I = jnp.eye(k)
    W, ok, der = _newton(W, I, E, gtol)
    if not ok:
        raise ValueError("W0: not near a critical point of the V = I_k problem (Newton did not converge)")
    rows, end, eps, h = [], "eps_max", 0.0, eps_max / max(n_steps, 1)
    eps_cross, W_prev, dW = None, W, None
    eig0 = None
    while True:
        loss, g, H, mixed = der
        eig = np.linalg.eigvalsh(np.asarray(H))
        eig0 = eig if eig0 is None else eig0
        gn = float(jnp.max(jnp.abs(g)))
        rep = CriticalPointReport.from_spectrum(float(loss), gn, eig, gtol=gtol)
        dist = spectral_distance(eig, eig0)
        rows.append((eps, float(loss), gn, float(eig[0]), eig, str(rep.kind), dist["w1"], dist["sup"]))
        if progress is not None:
            progress()
        if str(rep.kind) != "minimum" and eps > 0:
            end = "saddle"
            lo, hi = rows[-2][0], eps  # locate the crossing λ_min = 0 by bisection
            for _ in range(10):
                mid = 0.5 * (lo + hi)
                Wm, okm, dm = _newton(W_prev + (mid - lo) * jnp.asarray(dW), I + mid * E, E, gtol)
                if okm and np.linalg.eigvalsh(np.asarray(dm[2]))[0] > 0:
                    lo = mid
                else:
                    hi = mid
            eps_cross = 0.5 * (lo + hi)
            break
        if eps >= eps_max - 1e-15 or eps_max == 0:
            break
        dW = -np.linalg.solve(np.asarray(H), np.asarray(mixed).ravel()).reshape(k, k)
        while True:
            e_new = min(eps + h, eps_max)
            W_pred = W + (e_new - eps) * jnp.asarray(dW)
            W_new, ok, der_new = _newton(W_pred, I + e_new * E, E, gtol)
            # a corrector that moves far from the tangent predictor has jumped to another branch
            ok = ok and float(jnp.linalg.norm(W_new - W_pred)) <= max(0.3 * float(jnp.linalg.norm(W_pred - W)), 1e-8)
            if ok:
                W_prev = W
                W, eps, der = W_new, e_new, der_new
                break
            h /= 2
            if h < min_step:
                end = "fold"
                break
        if end == "fold":
            break
    eps_a = np.array([r[0] for r in rows])
    return PerturbedBranch(eps_a, np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                           np.array([r[3] for r in rows]), np.array([r[4] for r in rows]),
                           [r[5] for r in rows], np.array([r[6] for r in rows]), np.array([r[7] for r in rows]),
                           end, float(eps_a[-1]) if eps_cross is None else eps_cross, np.asarray(W))
