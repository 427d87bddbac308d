"""Exact-Hessian Newton solvers for small problems, pure JAX (jit and vmap).

Two algorithms, each with one job:

- `minimise`: damped saddle-free Newton with the exact Hessian: a
  trust-region method in the metric |∇²L| + μI, computed from an
  eigendecomposition that is reused while it keeps contracting the gradient
  (Dauphin et al. 2014; Levenberg–Marquardt damping; chord steps). It descends away from saddles, converges to minima and reaches
  machine-level gradient norms in a handful of steps near them.
- `refine_critical_point`: Levenberg–Marquardt on the equation ∇L(θ) = 0 with
  Jacobian ∇²L, i.e. Newton on the gradient with a damping that handles
  indefinite and singular Hessians (flat directions). It converges to saddles
  as well as minima.

Why hand-written: optimistix's minimisers (BFGS, Newton-type least squares)
either approximate the Hessian or, used as a root finder on ∇L, have no safe
globalisation for indefinite and singular Jacobians, and none exposes the
eigenvalues that we need anyway for the saddle index. On problems of up to a
few thousand parameters an exact dense Hessian and its eigendecomposition are
cheap, so both solvers are built on them.

Results carry a status from `symland.RESULTS` (`converged`, `max_steps`,
`diverged`, `stalled`: no step makes progress, e.g. at a kink of a ReLU
loss). A result never claims convergence it did not reach.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._network import check_finite_params
from ._results import EPS, RESULTS, check_tolerance, result_name

CONTRACTION = 0.5  # a reused Hessian is kept while each step shrinks ‖∇L‖∞ this much


class SolverResult(eqx.Module):
    """The outcome of `minimise` or `refine_critical_point` (a pytree; vmappable).

    **Fields:** `value` (parameters, same structure as the input), `loss`,
    `grad_norm` (‖∇L‖∞ at `value`), `steps` (steps tried, i.e. gradient
    evaluations after the first), `status` (a `RESULTS` item; its name is
    `status_name`), `grad_norm_history` (‖∇L‖∞ at the start and after each
    step, NaN-padded to `max_steps + 1`), `gtol` (the tolerance that was
    asked for, after scaling), `hessians` (Hessian eigendecompositions used;
    a Hessian is reused while it keeps contracting the gradient).
    """

    value: object
    loss: jnp.ndarray
    grad_norm: jnp.ndarray
    steps: jnp.ndarray
    status: RESULTS
    grad_norm_history: jnp.ndarray
    gtol: jnp.ndarray
    hessians: jnp.ndarray

    @property
    def status_name(self) -> str:
        return result_name(self.status)

    @property
    def converged(self) -> bool:
        return self.status_name == "converged"

    def to_dict(self) -> dict:
        """Scalars of the result (not the parameters), for JSON."""
        return {"status": self.status_name, "loss": float(self.loss),
                "grad_norm": float(self.grad_norm), "gtol": float(self.gtol),
                "steps": int(self.steps), "hessians": int(self.hessians)}


class NewtonOutcome(NamedTuple):
    """What the eigen-Newton loop returns (flat vectors, traceable)."""

    x: jnp.ndarray
    loss: jnp.ndarray
    grad_norm: jnp.ndarray
    steps: jnp.ndarray
    status: RESULTS
    history: jnp.ndarray
    hessians: jnp.ndarray
    gtol: jnp.ndarray
    eigenvalues: jnp.ndarray | None = None  # ∇²L's at x, ascending, where asked (`final_spectrum`)


class _NewtonState(NamedTuple):
    """The state threaded through the loops of `eigen_newton_loop`."""

    x: jnp.ndarray
    f: jnp.ndarray
    g: jnp.ndarray
    lam: jnp.ndarray  # Hessian eigenvalues (of the Hessian in use)
    Q: jnp.ndarray  # and eigenvectors
    mu: jnp.ndarray  # damping
    step: jnp.ndarray
    history: jnp.ndarray
    status: RESULTS  # `_RUNNING` while the loop goes on
    hessians: jnp.ndarray
    stale: jnp.ndarray  # the last accepted step contracted ‖∇L‖∞ too little: refresh H
    final: jnp.ndarray  # the loop has stopped and (λ, Q) are at x


def hessian_eigh(f, x, hessian=None):
    """Eigendecomposition (λ, Q) of ∇²f(x); `hessian(x)`, when given, computes the matrix."""
    H = jax.hessian(f)(x) if hessian is None else hessian(x)
    H = 0.5 * (H + H.T)
    lam, Q = jnp.linalg.eigh(H)
    return lam, Q


def _flat(loss_fn, params):
    x0, unravel = ravel_pytree(params)
    if not jnp.issubdtype(x0.dtype, jnp.floating) or x0.dtype != jnp.float64:
        x0 = x0.astype(jnp.float64)
    return (lambda x: loss_fn(unravel(x))), x0, unravel


# --- the shared loop ----------------------------------------------------------------


def _lam_max(lam):
    return jnp.maximum(jnp.max(jnp.abs(lam)), 1e-300)


def eigen_newton_loop(f, x0, *, propose, judge, mu0, tol_of, stalled, max_steps,
                      contraction=CONTRACTION, hessian=None, final_spectrum=False,
                      history_length=None) -> NewtonOutcome:
    """Damped Newton iterations built on eigendecompositions of the exact Hessian.

    `propose(g, λ, Q, μ) → (p, pred)` gives the step and its predicted
    decrease; `judge((f, g, λ, μ), f_new, g_new, p, pred) → (accept, μ_new)`
    decides; `tol_of(f)` is the gradient tolerance; `stalled(μ, λ)` says when
    damping has grown so large that no step can make progress; `hessian(x)`,
    when given, replaces `jax.hessian(f)` (a closed form). Traceable under
    jit/vmap/scan. With `final_spectrum`, the outcome also holds the Hessian's
    eigenvalues at the end point: from the loop's own last Hessian where no
    step was accepted after it, else from one more pass of the outer loop
    (not counted in `hessians`), so the Hessian is traced once either way.
    `max_steps` may be traced where `history_length` (a Python int: how many
    ‖∇L‖∞ values `history` keeps; default `max_steps + 1`) is given, so that
    one compiled program serves every step budget.

    The Hessian is the expensive part (on the toy, `jax.hessian` costs 15
    gradients, the closed form of `two_layer_mse_hessian` about 2), so
    it is reused while it keeps working: after a fresh eigendecomposition the
    loop takes steps with it (chord / Shamanskii Newton) as long as each
    accepted step shrinks ‖∇L‖∞ by at least the factor `contraction`, and
    retries rejected steps with more damping at the same point; only an
    accepted step that contracts less triggers a new Hessian. Near a
    non-degenerate solution the chord iteration converges linearly at a rate
    ∝ the distance to it, so a good starting point costs one Hessian and a
    few gradients. Two nested `while_loop`s keep this true under `vmap`:
    the Hessian is computed in the outer loop only, never as a masked
    branch of the inner one.

    **Returns:** a `NewtonOutcome`; `steps` counts steps tried (gradient
    evaluations), `hessians` the Hessians computed.
    """
    vg = jax.value_and_grad(f)
    f0, g0 = vg(x0)
    n_hist = max_steps + 1 if history_length is None else history_length
    hist0 = jnp.full((n_hist,), jnp.nan).at[0].set(jnp.max(jnp.abs(g0)))

    def status_of(fx, gx, mu, lam, step):
        gn = jnp.max(jnp.abs(gx))
        done = jnp.where(~jnp.isfinite(fx) | ~jnp.all(jnp.isfinite(gx)), _DIVERGED,
                         jnp.where(gn <= tol_of(fx), _CONVERGED,
                                   jnp.where(stalled(mu, lam), _STALLED,
                                             jnp.where(step >= max_steps, _MAX_STEPS, _RUNNING))))
        return done

    def inner(s: _NewtonState) -> _NewtonState:
        p, pred = propose(s.g, s.lam, s.Q, s.mu)
        f_new, g_new = vg(s.x + p)
        accept, mu = judge((s.f, s.g, s.lam, s.mu), f_new, g_new, p, pred)
        stale = accept & (jnp.max(jnp.abs(g_new)) > contraction * jnp.max(jnp.abs(s.g)))
        x = jnp.where(accept, s.x + p, s.x)
        fx = jnp.where(accept, f_new, s.f)
        gx = jnp.where(accept, g_new, s.g)
        step = s.step + 1
        history = s.history.at[step].set(jnp.max(jnp.abs(gx)), mode="drop")  # past its length: not kept
        return s._replace(x=x, f=fx, g=gx, mu=mu, step=step, history=history,
                          status=status_of(fx, gx, mu, s.lam, step), stale=stale)

    def running(s: _NewtonState):
        return s.status == _RUNNING

    def chord(s: _NewtonState) -> _NewtonState:
        return jax.lax.while_loop(lambda t: running(t) & ~t.stale, inner,
                                  s._replace(stale=jnp.asarray(False)))

    def refresh(s: _NewtonState) -> _NewtonState:
        lam, Q = hessian_eigh(f, s.x, hessian)
        first = s.hessians == 0  # at x0: the damping and the status start from the first Hessian
        mu = jnp.where(first, mu0(lam), s.mu)
        status = jnp.where(first, status_of(s.f, s.g, mu, lam, s.step), s.status)
        end = ~first & ~running(s)  # only with final_spectrum: the spectrum at the stopped end point
        s = s._replace(lam=lam, Q=Q, mu=mu, status=status, hessians=s.hessians + jnp.where(end, 0, 1))
        out = chord(s)
        return out._replace(final=~running(out) & (end | jnp.all(out.x == s.x)))  # an end pass ends it

    # The first Hessian and chord run are the outer loop's first pass, not a copy of it before the loop:
    # the Hessian, its eigendecomposition and the inner loop are traced and compiled once.
    state = _NewtonState(x0, f0, g0, jnp.zeros(x0.shape, x0.dtype), jnp.zeros((x0.size, x0.size), x0.dtype),
                         jnp.asarray(0.0, x0.dtype), jnp.asarray(0), hist0, jnp.asarray(_RUNNING),
                         jnp.asarray(0), jnp.asarray(False), jnp.asarray(False))
    s = jax.lax.while_loop(lambda s: running(s) | (s.hessians == 0) | (final_spectrum & ~s.final), refresh, state)
    # The loop's status codes are RESULTS codes (plus the internal _RUNNING).
    status = RESULTS.where(s.status == _CONVERGED, RESULTS.converged,
                           RESULTS.where(s.status == _MAX_STEPS, RESULTS.max_steps,
                                         RESULTS.where(s.status == _DIVERGED, RESULTS.diverged,
                                                       RESULTS.stalled)))
    return NewtonOutcome(s.x, s.f, jnp.max(jnp.abs(s.g)), s.step, status, s.history, s.hessians,
                         jnp.asarray(tol_of(s.f), dtype=jnp.float64), s.lam if final_spectrum else None)


# Integer codes of the loop's state (traced comparisons are cheaper on ints);
# mapped to `RESULTS` items when the loop ends.
_RUNNING, _CONVERGED, _MAX_STEPS, _DIVERGED, _STALLED = -1, 0, 1, 2, 3


# --- damped saddle-free Newton (minimisation) ------------------------------------


def minimise_flat(f, x0, *, gtol, max_steps, hessian=None, final_spectrum=False, history_length=None):
    """Damped Newton in the |H| metric on a flat vector; traceable (jit/vmap/scan).

    Step p(μ) = −Σ_i (q_iᵀg)/(|λ_i| + μ) q_i over the eigenpairs of ∇²L: a
    trust-region step in the metric |H| + μI (Dauphin et al. 2014's
    saddle-free Newton with Levenberg–Marquardt damping). Negative curvature
    is turned into descent, flat directions (λ_i ≈ 0) are damped by μ ≥ μ_min,
    and with μ → μ_min near a minimum the step is Newton's: quadratic
    convergence at every fresh Hessian, and chord steps in between that
    halve ‖∇L‖∞ at least. μ shrinks after good steps and grows after
    rejected ones. `final_spectrum`: also return ∇²L's eigenvalues at the end
    point; `gtol` and `max_steps` may be traced where `history_length` is
    given (`eigen_newton_loop`).
    """
    n = x0.shape[0]

    def mu_floor(lam):
        return 10.0 * n * EPS * _lam_max(lam)

    def propose(gx, lam, Q, mu):
        gt = Q.T @ gx
        pt = -gt / (jnp.abs(lam) + mu)
        return Q @ pt, -(gt @ pt + 0.5 * jnp.sum(jnp.abs(lam) * pt * pt))

    def judge(state, f_new, g_new, p, pred):
        fx, gx, lam, mu = state
        actual = fx - f_new
        rho = actual / jnp.where(pred > 0, pred, 1.0)
        # Below round-off of L the ratio test is noise: accept if ‖∇L‖ drops.
        roundoff = jnp.abs(actual) <= 1e3 * EPS * jnp.maximum(jnp.abs(fx), 1e-300)
        accept = jnp.isfinite(f_new) & (
            ((pred > 0) & (rho > 1e-4))
            | (roundoff & (jnp.max(jnp.abs(g_new)) < jnp.max(jnp.abs(gx))))
        )
        floor = mu_floor(lam)
        # A rejected step is retried at most a quarter as long: ‖p(μ)‖ ≤ ‖g‖/μ.
        mu_reject = jnp.maximum(jnp.maximum(10.0 * mu, 4.0 * jnp.linalg.norm(gx) /
                                            jnp.maximum(jnp.linalg.norm(p), 1e-300)), 10.0 * floor)
        mu = jnp.where(~accept, mu_reject,
                       jnp.where(rho > 0.75, jnp.maximum(0.1 * mu, floor),
                                 jnp.where(rho < 0.25, 2.0 * mu, mu)))
        return accept, mu

    return eigen_newton_loop(
        f, x0, propose=propose, judge=judge, mu0=mu_floor, tol_of=lambda fx: gtol,
        stalled=lambda mu, lam: mu > 1e14 * _lam_max(lam), max_steps=max_steps, hessian=hessian,
        final_spectrum=final_spectrum, history_length=history_length)


def minimise(loss_fn, params, *, gtol: float = 1e-10, max_steps: int = 200) -> SolverResult:
    """Minimise `loss_fn` from `params` by exact-Hessian damped saddle-free Newton.

    **Arguments:**
    - `loss_fn`: θ ↦ L(θ), a scalar function of a pytree of float64 arrays.
    - `params`: the starting point.
    - `gtol`: stop when ‖∇L‖∞ ≤ `gtol`.
    - `max_steps`: the most steps (each costs a gradient; a Hessian is
      recomputed only when the last one stops halving ‖∇L‖∞).

    **Returns:** a `SolverResult`; check `.status_name` (`converged`,
    `max_steps`, `diverged`, `stalled`).

    Example:
        >>> import jax.numpy as jnp
        >>> from symland import minimise
        >>> r = minimise(lambda p: jnp.sum((p - 1.0) ** 2) + jnp.sum(p ** 4), jnp.zeros(3))
        >>> r.status_name, bool(r.grad_norm <= 1e-10)
        ('converged', True)
    """
    check_solver_args(gtol, max_steps)
    check_finite_params(params)
    f, x0, unravel = _flat(loss_fn, params)
    out = jax.jit(lambda x0: minimise_flat(f, x0, gtol=gtol, max_steps=max_steps))(x0)
    return _solver_result(out, unravel)


def _solver_result(out: NewtonOutcome, unravel) -> SolverResult:
    return SolverResult(unravel(out.x), out.loss, out.grad_norm, out.steps, out.status,
                        out.history, out.gtol, out.hessians)


# --- Levenberg–Marquardt on ∇L = 0 --------------------------------------------


def refine_flat(f, x0, *, gtol, max_steps, final_spectrum=False):
    """LM on g(θ) = ∇L(θ) with Jacobian H; `gtol` is relative to max(1, |L|); `final_spectrum` as in
    `eigen_newton_loop`."""

    def propose(gx, lam, Q, mu):
        return -Q @ (lam * (Q.T @ gx) / (lam * lam + mu)), jnp.asarray(0.0)

    def judge(state, f_new, g_new, p, pred):
        fx, gx, lam, mu = state
        accept = jnp.isfinite(f_new) & (jnp.linalg.norm(g_new) < jnp.linalg.norm(gx))
        mu = jnp.where(accept, 0.1 * mu, jnp.maximum(10.0 * mu, (EPS * _lam_max(lam)) ** 2))
        return accept, mu

    return eigen_newton_loop(
        f, x0, propose=propose, judge=judge, mu0=lambda lam: (1e-8 * _lam_max(lam)) ** 2,
        tol_of=lambda fx: gtol * jnp.maximum(1.0, jnp.abs(fx)),
        stalled=lambda mu, lam: mu > 1e16 * _lam_max(lam) ** 2, max_steps=max_steps,
        final_spectrum=final_spectrum)


def refine_critical_point(loss_fn, params, *, gtol: float = 1e-13,
                          max_steps: int = 50) -> SolverResult:
    """Take a point near a critical point (minimum or saddle) to machine precision.

    Levenberg–Marquardt on ∇L(θ) = 0 with the exact Hessian as Jacobian: the
    step is p = −Σ_i λ_i (q_iᵀg)/(λ_i² + μ) q_i over the eigenpairs (λ_i, q_i)
    of ∇²L, accepted when ‖∇L‖₂ decreases. With μ → 0 it is Newton's method
    with a pseudo-inverse, so it converges quadratically to non-degenerate
    critical points, of any index, and handles flat directions (λ_i ≈ 0)
    without blowing up.

    **Arguments:**
    - `loss_fn`: θ ↦ L(θ).
    - `params`: a point near a critical point (e.g. ‖∇L‖ ≈ 1e−6).
    - `gtol`: converged when ‖∇L‖∞ ≤ `gtol` · max(1, |L(θ)|). The scale
      max(1, |L|) keeps the target above the round-off floor of ∇L for losses
      of order one and larger; for smaller losses the target is `gtol` itself.
    - `max_steps`: the most LM steps (counted as in `minimise`).

    **Returns:** a `SolverResult` with `grad_norm_history`; `.gtol` is the
    scaled tolerance used.
    """
    check_solver_args(gtol, max_steps)
    check_finite_params(params)
    f, x0, unravel = _flat(loss_fn, params)
    out = jax.jit(lambda x0: refine_flat(f, x0, gtol=gtol, max_steps=max_steps))(x0)
    return _solver_result(out, unravel)


def check_solver_args(gtol, max_steps, *, steps_name: str = "max_steps"):
    """`ValueError` naming the argument unless `gtol` > 0 is finite and `max_steps` ≥ 1."""
    check_tolerance(gtol, "gtol")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"{steps_name}: must be a positive integer, got {max_steps!r}")
