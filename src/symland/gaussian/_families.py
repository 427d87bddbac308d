"""Symmetric critical points of the Gaussian-input ReLU/erf student–teacher
loss (teacher V = I_k, a = b = 1): restricted solves on fixed-point
subspaces, full-space refinement and Hessian spectra, continuation in k
(Safran & Shamir 2018; Arjevani & Field 2020, 2021).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import jax
import jax.numpy as jnp

from symland._critical import eigenvalue_multiplicities
from symland._results import RESULTS, CriticalPointReport, Kind, result_name
from symland._solver import refine_critical_point
from symland.gaussian._isotropy import (
    restricted_loss_extended,
    FixedPointSubspace,
    check_k,
    diagonal_isotropy_partition,
    fixed_point_subspace,
    restricted_loss,
)
from symland.gaussian._kernel import check_activation, expected_loss, gaussian_loss_function, loss_hessian

# Safran & Shamir's k = 7 spurious minimum (math.md §6) in ΔS_{k−1} coordinates
# z = (W_11, W_1j, W_i1, W_ii, W_ij) with ROWS as neurons (Arjevani–Field).
# math.md lists it with columns as neurons, so W_1j and W_i1 are swapped here.
SAFRAN_SHAMIR_K7 = (-0.6327039049, 0.1859910463, 0.2616910758, 0.9969227988, -0.0350801559)


@dataclasses.dataclass(frozen=True)
class SymmetricCriticalPoint:
    """A critical point found on a fixed-point subspace and checked in the full space.

    **Fields:** `k`, `isotropy` (name of the subspace it was solved on), `z`
    (subspace coordinates), `W` (k × k, rows are neurons), `status` (a
    `RESULTS` name: `converged` when ‖∇L‖∞ ≤ gtol held without refinement,
    else the status of `refine_critical_point`), `point` (a
    `CriticalPointReport`: loss, ‖∇L‖∞ in the full space, index, nullity and
    verdict from the full Hessian spectrum), `multiplicities` ([(value,
    multiplicity), …] of that spectrum), `partition` (the Young part of the
    diagonal isotropy actually found, `diagonal_isotropy_partition`).

    `loss`, `grad_norm`, `index`, `nullity`, `kind`, `eigenvalues` and
    `min_eigenvalue` read `point`.
    """

    k: int
    isotropy: str
    z: np.ndarray
    W: np.ndarray
    status: str
    point: CriticalPointReport
    multiplicities: list
    partition: list

    @property
    def converged(self) -> bool:
        return self.status == result_name(RESULTS.converged)

    @property
    def loss(self) -> float:
        return self.point.loss

    @property
    def grad_norm(self) -> float:
        return self.point.grad_norm

    @property
    def index(self) -> int:
        return self.point.index

    @property
    def nullity(self) -> int:
        return self.point.nullity

    @property
    def kind(self) -> Kind:
        return self.point.kind

    @property
    def eigenvalues(self) -> np.ndarray:
        return self.point.eigenvalues

    @property
    def min_eigenvalue(self) -> float:
        return float(self.point.eigenvalues[0])

    def to_dict(self) -> dict:
        return {
            "k": self.k, "isotropy": self.isotropy, "z": [float(v) for v in self.z],
            "status": self.status, **self.point.to_dict(),
            "multiplicities": [[v, m] for v, m in self.multiplicities],
            "partition": self.partition,
        }


def _lm_restricted(loss_z, z0, steps):
    """Levenberg–Marquardt on ∇L_r(z) = 0 (a few unknowns), vmappable; returns (z, ‖∇L_r‖∞)."""
    grad_hess = lambda z: (jax.grad(loss_z)(z), jax.hessian(loss_z)(z))

    def body(_, state):
        z, g, H, mu = state
        p = -jnp.linalg.solve(H.T @ H + mu * jnp.eye(z.size), H.T @ g)
        g_new, H_new = grad_hess(z + p)
        ok = jnp.all(jnp.isfinite(g_new)) & jnp.all(jnp.isfinite(H_new)) & (jnp.sum(g_new**2) < jnp.sum(g**2))
        keep = lambda new, old: jnp.where(ok, new, old)
        return keep(z + p, z), keep(g_new, g), keep(H_new, H), jnp.where(ok, 0.3 * mu, 10.0 * mu + 1e-300)

    # The derivatives at z0 come from the loop's own first pass, so they are traced and compiled once:
    # from H = 0 the step is exactly 0, the (finite) derivatives at z0 are accepted against ‖g‖ = 1e300, and
    # μ = 1e−6 follows, the iterates of starting from (z0, ∇L_r(z0), ∇²L_r(z0), 1e−6).
    start = (z0, jnp.full_like(z0, 1e300), jnp.zeros((z0.size, z0.size), z0.dtype), jnp.asarray(1e-6 / 0.3))
    z, g, _, _ = jax.lax.fori_loop(0, steps + 1, body, start)
    return z, jnp.max(jnp.abs(g))


_CHUNK = 32


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _solve_restricted(z0s, sizes, has_off, activation, steps):
    loss_z = lambda z: restricted_loss(z, sizes, has_off, activation)
    return jax.vmap(lambda z0: _lm_restricted(loss_z, z0, steps))(z0s)


def solve_on_subspace(subspace: FixedPointSubspace, z0s, *, activation: str = "relu", steps: int = 200):
    """Solve ∇L|_Fix = Bᵀ∇L(Bz) = 0 from many starts at once (vmapped LM).

    **Arguments:** `subspace`; `z0s` (n_starts × dim); `activation`; `steps`.

    **Returns:** ``(z, grad_norm)``: end points and ‖∇_z L_r‖∞ there (not yet
    refined in the full space).
    """
    check_activation(activation)
    has_off = tuple(n >= 2 for n in subspace.sizes)
    z0s = np.atleast_2d(np.asarray(z0s, dtype=np.float64))
    n = z0s.shape[0]
    chunk = 1 if n == 1 else _CHUNK  # two compiled batch shapes serve every call
    padded = np.vstack([z0s, np.repeat(z0s[-1:], -n % chunk, axis=0)])
    sizes = jnp.asarray(subspace.sizes, dtype=jnp.float64)
    out = [_solve_restricted(jnp.asarray(padded[i:i + chunk]), sizes, has_off, activation, steps)
           for i in range(0, padded.shape[0], chunk)]
    z = np.concatenate([np.asarray(o[0]) for o in out])[:n]
    gn = np.concatenate([np.asarray(o[1]) for o in out])[:n]
    return z, gn


@functools.partial(jax.jit, static_argnums=2)
def _padded_derivatives(Wp, mask, activation):
    """Loss, gradient and Hessian (`loss_hessian`) at a k × k point zero-padded to n × n.

    Padded student and teacher neurons get output weight 0 (and zero rows and
    columns), so the loss restricted to the leading k × k block is exactly the
    k-neuron loss and the leading blocks of the gradient and Hessian are exact.
    One compilation serves every k ≤ n.
    """
    f = lambda W: expected_loss(W, jnp.diag(mask), mask, mask, activation=activation)
    loss, g = jax.value_and_grad(f)(Wp)
    return loss, g, loss_hessian(Wp, jnp.diag(mask), mask, mask, activation=activation)


def _pad_size(k: int) -> int:
    return 8 * -(-k // 8)


def full_space_derivatives(W, *, activation: str = "relu", pad_to: int | None = None):
    """(loss, gradient k × k, Hessian k² × k²) of the V = I_k loss at W (rows are neurons)."""
    k = W.shape[0]
    n = max(k, pad_to or _pad_size(k))
    Wp = jnp.zeros((n, n)).at[:k, :k].set(jnp.asarray(W))
    mask = (jnp.arange(n) < k).astype(jnp.float64)
    loss, g, H = _padded_derivatives(Wp, mask, activation)
    H = H.reshape(n, n, n, n)[:k, :k, :k, :k].reshape(k * k, k * k)
    return float(loss), np.asarray(g[:k, :k]), np.asarray(0.5 * (H + H.T))


def analyse_point(subspace: FixedPointSubspace, z, *, activation: str = "relu", gtol: float = 1e-12,
                  rtol_multiplicity: float = 1e-6, pad_to: int | None = None) -> SymmetricCriticalPoint:
    """Check W(z) in the full k²-dimensional space, refine if needed, classify.

    By the principle of symmetric criticality a zero of the restricted gradient
    is a critical point in the full space; when ‖∇L‖∞ at W(z) already is
    ≤ `gtol` the point is reported as converged without a Newton step,
    otherwise `refine_critical_point` takes it to `gtol`. The verdict is a
    `CriticalPointReport` of the full Hessian spectrum (computed with one
    compilation for all k ≤ `pad_to`).
    """
    k = subspace.k
    W = subspace.to_full(jnp.asarray(z))
    loss, g, H = full_space_derivatives(W, activation=activation, pad_to=pad_to)
    gn = float(np.max(np.abs(g)))
    status = result_name(RESULTS.converged)
    if not gn <= gtol:
        res = refine_critical_point(gaussian_loss_function(jnp.eye(k), activation=activation), W, gtol=gtol)
        W, status = res.value, res.status_name
        loss, g, H = full_space_derivatives(W, activation=activation, pad_to=pad_to)
        gn = float(np.max(np.abs(g)))
    eig = np.linalg.eigvalsh(H)
    W = np.asarray(W)
    return SymmetricCriticalPoint(
        k=k, isotropy=subspace.name, z=np.asarray(subspace.from_full(W)), W=W, status=status,
        point=CriticalPointReport.from_spectrum(loss, gn, eig, gtol=gtol),
        multiplicities=eigenvalue_multiplicities(eig, rtol=rtol_multiplicity),
        partition=diagonal_isotropy_partition(W, tol=1e-7),
    )


def _same_point(p: SymmetricCriticalPoint, q: SymmetricCriticalPoint, tol: float) -> bool:
    """Γ-invariant fingerprint: equal loss and equal Hessian spectrum."""
    return abs(p.loss - q.loss) <= tol and np.max(np.abs(p.eigenvalues - q.eigenvalues)) <= 1e3 * tol


def symmetric_critical_points(k: int, isotropy, *, activation: str = "relu", n_starts: int = 128, seed: int = 0,
                              starts=None, gtol: float = 1e-12, min_neuron_norm: float = 1e-6,
                              dedup_tol: float = 1e-9, pad_to: int | None = None) -> list[SymmetricCriticalPoint]:
    """Critical points of the loss (teacher V = I_k, a = b = 1) with the given isotropy.

    Solves ∇L = 0 restricted to Fix(isotropy) from `n_starts` random starts
    (coordinates ~ N(0, 1) for diagonal values d_r and N(0, 1/k) otherwise,
    plus any `starts`), refines each solution in the full space to
    ‖∇L‖∞ ≤ `gtol`, drops points with a neuron of norm < `min_neuron_norm`
    (ReLU is not differentiable there) and duplicates (equal loss and
    spectrum within `dedup_tol`, which is invariant under Γ).

    **Returns:** a list of `SymmetricCriticalPoint`, sorted by loss; only
    points whose refinement converged are kept.
    """
    k = check_k(k)
    sp = fixed_point_subspace(k, isotropy)
    rng = np.random.default_rng(seed)
    scale = np.array([1.0 if lab.startswith("d") else 1 / np.sqrt(k) for lab in sp.labels])
    z0s = rng.standard_normal((n_starts, sp.dim)) * scale
    if starts is not None:
        z0s = np.vstack([np.atleast_2d(starts), z0s])
    z, gn = solve_on_subspace(sp, z0s, activation=activation)
    ok = np.isfinite(gn) & (gn < 1e-7)
    z = z[ok]
    if z.size == 0:
        return []
    norms = np.linalg.norm(np.asarray(jax.vmap(sp.to_full)(jnp.asarray(z))), axis=2).min(axis=1)
    z = z[norms > min_neuron_norm]
    # cheap pre-dedup in z (equal z give equal points)
    keep = []
    for zi in z:
        if not any(np.max(np.abs(zi - zj)) < 1e-8 for zj in keep):
            keep.append(zi)
    points: list[SymmetricCriticalPoint] = []
    for zi in keep:
        p = analyse_point(sp, zi, activation=activation, gtol=gtol, pad_to=pad_to)
        if not p.converged or not np.isfinite(p.loss):
            continue
        if not any(_same_point(p, q, dedup_tol) for q in points):
            points.append(p)
    return sorted(points, key=lambda p: p.loss)


def continue_family(isotropy, z0, k0: int, ks, *, activation: str = "relu",
                    gtol: float = 1e-12, progress=None) -> dict[int, SymmetricCriticalPoint]:
    """Follow one family of symmetric critical points in k by continuation.

    Starting from a point `z0` (subspace coordinates) at k = `k0`, solve the
    restricted equations at every integer k from k0 up to max(ks) and down to
    min(ks), each warm-started from the previous k; points at the k of `ks`
    are refined and classified.

    **Returns:** {k: `SymmetricCriticalPoint`}; if the restricted solve fails
    (‖∇L_r‖∞ > 1e−9) at some k, that k and those beyond it are omitted.
    """
    ks = sorted(int(check_k(k)) for k in ks)
    sols: dict[int, np.ndarray] = {}
    z_prev = np.asarray(z0, dtype=float)
    z_k0, gn = solve_on_subspace(fixed_point_subspace(k0, isotropy), z_prev[None], activation=activation)
    if gn[0] > 1e-9:
        raise ValueError(f"z0: not near a critical point at k={k0} (restricted gradient {gn[0]:.2e})")
    wanted = set(ks)
    up = range(k0, max(ks) + 1)
    down = range(k0 - 1, min(ks) - 1, -1)
    for path in (up, down):
        z_prev = z_k0[0]
        for k in path:  # every integer k on the way, so each step is a small one
            z, gn = solve_on_subspace(fixed_point_subspace(k, isotropy), z_prev[None], activation=activation)
            if gn[0] > 1e-9:
                break  # the branch is lost (or ends) here; do not jump to another one
            z_prev = z[0]
            if k in wanted:
                sols[k] = z_prev
    out = {}
    it = sorted(sols)
    for k in (progress(it) if progress else it):
        out[k] = analyse_point(fixed_point_subspace(k, isotropy), sols[k], activation=activation, gtol=gtol,
                               pad_to=_pad_size(max(ks)))
    return out


def safran_shamir_family(ks=range(6, 21), *, progress=None) -> dict[int, SymmetricCriticalPoint]:
    """The ΔS_{k−1} spurious minima of Safran & Shamir (2018), by continuation from k = 7.

    Arjevani & Field (2020) give analytic equations for this family for
    6 ≤ k ≤ 20; here they are solved numerically on the 5-dimensional
    fixed-point subspace and refined in the full space.
    """
    return continue_family("S_{k-1}", SAFRAN_SHAMIR_K7, 7, ks, progress=progress)


# --- decay of the critical values along the ΔS_{k−1} family ------------------

# Arjevani & Field (2020) state L ≈ a/k with "a ≈ 0.3". Numerically (fit up
# to k = 10⁴, `critical_value_decay`) a = 0.2973577 ± 2e−7, which agrees with
# the closed form 1/2 − 2/π² = 0.29735763… (our identification; the abstract
# gives no formula).
DECAY_CONSTANT = 0.5 - 2 / np.pi**2

_HAS_OFF_SK1 = (False, True)


def _sk1_loss(z, k):
    return restricted_loss(z, jnp.stack([jnp.ones_like(k), k - 1.0]), _HAS_OFF_SK1, "relu")


@functools.partial(jax.jit, static_argnums=2)
def _sk1_curve(z0, ks, newton_steps):
    grad, hess = jax.grad(_sk1_loss), jax.hessian(_sk1_loss)

    def step(z, k):
        z = jax.lax.fori_loop(0, newton_steps, lambda _, z: z - jnp.linalg.solve(hess(z, k), grad(z, k)), z)
        return z, (z, jnp.max(jnp.abs(grad(z, k))))

    return jax.lax.scan(step, z0, ks)[1]


@dataclasses.dataclass(frozen=True)
class DecayFit:
    """k·L(k) along the ΔS_{k−1} family and the fit k·L = a + Σ_{j=1}^{m} c_j k^{−j/2}.

    **Fields:** `ks`, `kL` (k times the critical value, from the closed form in
    long double), `grad_norm` (‖∇L_r‖∞ per k, double precision), `z` (the
    5 coordinates per k), `a` (estimate), `a_stderr` (largest least-squares
    standard error over the windows), `a_spread` (max − min over windows),
    `windows` ([(k_min, a), …]), `n_terms`, `gtol`, `status` (a `RESULTS`
    name: `converged` when every ‖∇L_r‖∞ ≤ `gtol`, else `max_steps`: the
    fixed number of Newton steps per k did not reach it).
    """

    ks: np.ndarray
    kL: np.ndarray
    grad_norm: np.ndarray
    z: np.ndarray
    a: float
    a_stderr: float
    a_spread: float
    windows: list
    n_terms: int
    gtol: float
    status: str

    @property
    def a_uncertainty(self) -> float:
        return max(self.a_stderr, self.a_spread)

    def to_dict(self) -> dict:
        """The fit (not the per-k arrays): a, its uncertainty, the windows, the worst ‖∇L_r‖∞."""
        return {"k_min": int(self.ks[0]), "k_max": int(self.ks[-1]), "a": self.a,
                "a_stderr": self.a_stderr, "a_spread": self.a_spread,
                "a_uncertainty": self.a_uncertainty, "windows": [list(w) for w in self.windows],
                "n_terms": self.n_terms, "gtol": self.gtol,
                "max_grad_norm": float(np.max(self.grad_norm)), "status": self.status}


def critical_value_decay(k_max: int = 10_000, *, k_min: int = 7, n_terms: int = 6,
                         fit_windows=(50, 100, 200, 500, 1000), newton_steps: int = 8,
                         gtol: float = 1e-7) -> DecayFit:
    """Estimate a in L(k) ≈ a/k along the Safran–Shamir ΔS_{k−1} family (Arjevani & Field 2020).

    Continuation in k on the 5-parameter restricted problem (`restricted_loss`,
    O(1) per k) by Newton's method, every integer k from `k_min` to `k_max`;
    critical values re-evaluated in long double (`restricted_loss_extended`)
    since the double-precision sum cancels ~k² digits. Fit
    k·L = a + Σ_{j=1}^{n_terms−1} c_j k^{−j/2} (the family is a series in
    1/√k, Arjevani & Field 2020) on windows [k_w, k_max].

    **Returns:** a `DecayFit`; compare `a` with `DECAY_CONSTANT` = 1/2 − 2/π².
    """
    k_max = check_k(k_max)
    if k_max < max(fit_windows) * 2:
        fit_windows = tuple(w for w in fit_windows if 2 * w <= k_max) or (k_min,)
    sp = fixed_point_subspace(k_min, "S_{k-1}")
    z0, gn = solve_on_subspace(sp, np.asarray(SAFRAN_SHAMIR_K7)[None])
    ks = np.arange(k_min, k_max + 1, dtype=np.float64)
    zs, gns = _sk1_curve(jnp.asarray(z0[0]), jnp.asarray(ks), newton_steps)
    zs, gns = np.asarray(zs), np.asarray(gns)
    kL = np.array([float(k * restricted_loss_extended(z, (1, k - 1), _HAS_OFF_SK1)) for k, z in zip(ks, zs)])
    windows, errs = [], []
    for kw in fit_windows:
        m = ks >= kw
        X = np.stack([ks[m] ** (-j / 2) for j in range(n_terms)], axis=1)
        coef, *_ = np.linalg.lstsq(X, kL[m], rcond=None)
        resid = kL[m] - X @ coef
        sigma2 = resid @ resid / max(m.sum() - n_terms, 1)
        cov = sigma2 * np.linalg.inv(X.T @ X)
        windows.append((int(kw), float(coef[0])))
        errs.append(float(np.sqrt(cov[0, 0])))
    est = np.array([a for _, a in windows])
    status = result_name(RESULTS.converged if np.all(gns <= gtol) else RESULTS.max_steps)
    return DecayFit(ks.astype(int), kL, gns, zs, float(np.median(est)), float(max(errs)),
                    float(est.max() - est.min()), windows, n_terms, gtol, status)


# --- Hessian spectrum at the global minimum W = V = I_k ------------------------


def global_minimum_spectrum(k: int) -> list[tuple[float, int]]:
    """Closed-form Hessian spectrum of the ReLU loss (a = b = 1) at W = V = I_k.

    Found numerically here (the seeds give none; fitted for k = 4…11 with
    coefficients in Q + Q/π + Q/π², each to ~1e−15, and tested for k ≤ 16):
    with c₀ = 1/16 + 1/(4π) − 1/(4π²),

    - 1/4 − 1/(2π), multiplicity k(k−1)/2;
    - 1/4 + 1/(2π), multiplicity k(k−3)/2;
    - the two roots of x² − (k+2)/4·x + k/16 + c₀, multiplicity k − 1 each;
    - the two roots of x² − (1/2 + k(1/4 + 1/(2π)))·x + k²/(8π)
      + (1/16 − 1/(8π) + 1/(4π²))·k + c₀, multiplicity 1 each.

    So 6 distinct eigenvalues for k ≥ 4 (5 for k = 3), multiplicities summing
    to k². Valid for k ≥ 3 (k = 2 has 4 simple eigenvalues: ValueError).

    **Returns:** [(value, multiplicity), …] in ascending order of value, zero
    multiplicities dropped.
    """
    k = check_k(k)
    if k < 3:
        raise ValueError(f"k: the closed-form global-minimum spectrum holds for k >= 3, got {k}")
    pi = np.pi
    c0 = 1 / 16 + 1 / (4 * pi) - 1 / (4 * pi**2)

    def roots(s, p):
        r = np.sqrt(s * s / 4 - p)
        return s / 2 - r, s / 2 + r

    lam = roots((k + 2) / 4, k / 16 + c0)
    mu = roots(0.5 + k * (0.25 + 1 / (2 * pi)), k**2 / (8 * pi) + (1 / 16 - 1 / (8 * pi) + 1 / (4 * pi**2)) * k + c0)
    out = [(0.25 - 1 / (2 * pi), k * (k - 1) // 2), (0.25 + 1 / (2 * pi), k * (k - 3) // 2),
           (lam[0], k - 1), (lam[1], k - 1), (mu[0], 1), (mu[1], 1)]
    return sorted((float(v), m) for v, m in out if m > 0)


# --- named families for tables and the `symland spurious` command ----------------

# name: (isotropy, z0, k0, description). z0 is a critical point at k0 (rows
# are neurons), found by `symmetric_critical_points` and followed in k by
# `continue_family`.
SPURIOUS_FAMILIES = {
    "delta_sk1": ("S_{k-1}", SAFRAN_SHAMIR_K7, 7,
                  "ΔS_{k-1}: Safran & Shamir's spurious minima, one 'flipped' neuron (minimum for k ≥ 6)"),
    "delta_sk": ("S_k", (-0.7493, 0.2481), 8,
                 "ΔS_k: W = αI + β(J − I) with α < 0 (saddle for k ≤ 5, minimum for k ≥ 6)"),
    "delta_s2_sk2": ("S_2xS_{k-2}", (-0.7551, 0.129, 0.1101, 0.1579, 1.0033, -0.0243), 12,
                     "Δ(S_2×S_{k-2}): two flipped neurons (saddle for k ≤ 7, minimum for k ≥ 8)"),
    "delta_s2_sk2_b": ("S_2xS_{k-2}", (1.0579, 0.0029, 0.0179, -0.0067, -0.7953, 0.1942), 12,
                       "Δ(S_2×S_{k-2}): k−2 flipped neurons (saddle for 5 ≤ k ≤ 7, minimum for k ≥ 8)"),
}


def spurious_family(name: str, ks, *, progress=None) -> dict[int, SymmetricCriticalPoint]:
    """Follow the named family of `SPURIOUS_FAMILIES` over `ks` (see `continue_family`)."""
    if name not in SPURIOUS_FAMILIES:
        raise ValueError(f"families: unknown family {name!r}; choose from {', '.join(SPURIOUS_FAMILIES)}")
    isotropy, z0, k0, _ = SPURIOUS_FAMILIES[name]
    return continue_family(isotropy, z0, k0, ks, progress=progress)
