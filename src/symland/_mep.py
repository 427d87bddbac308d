"""Minimum-energy paths and the saddles on top of them: a climbing-image nudged elastic band.

A minimum-energy path (MEP) between two minima is a path along which the
gradient is parallel to the tangent; its highest point is a first-order
saddle, and the barrier is the saddle's loss minus the start's. Brea et al.
2019 ask how high the lowest path from θ* to σ(θ*) goes (§4.1, Supplementary
Fig. 4); the fixed-δ recipe of §4.1 often has no solution (see `_path.py`), an
MEP always exists.

**Method: nudged elastic band (NEB) with a climbing image.** A chain of
images R_0 … R_{N−1} with fixed ends relaxes under the force

    F_i = −∇L(R_i) + (∇L(R_i)·τ_i) τ_i + k (‖R_{i+1} − R_i‖ − ‖R_i − R_{i−1}‖) τ_i,

the true force with its tangential part removed plus a spring force along
the tangent (Jónsson, Mills & Jacobsen 1998). τ_i is the upwind tangent of
Henkelman & Jónsson 2000 (eq. 8–11: towards the higher neighbour, an
energy-weighted mix at extrema), which keeps kinks out of the band. The
highest image climbs: F = −∇L + 2 (∇L·τ) τ, i.e. it goes up along the
band and down across it, and converges to the saddle (Henkelman, Uberuaga
& Jónsson 2000, eq. 5). The band is moved by FIRE (Bitzek et al. 2006; the
parameters ASE uses: N_min 5, f_inc 1.1, f_dec 0.5, α 0.1, f_α 0.99), all
images at once, with one `jax.vmap`-ed gradient call per iteration inside a
jitted `lax.while_loop`.

Why NEB and not the simplified string method (E, Ren & Vanden-Eijnden
2007): the string method re-interpolates the images after every step, which
rules out a momentum method such as FIRE (velocities belong to the images
before the re-interpolation), and plain gradient steps on the toy need about
λ_max/λ_min ≈ 10⁵ iterations; NEB's springs keep the images evenly spaced
without re-interpolation, so FIRE applies. The spring constant and time step
are chosen from the curvature scale λ̂ (power iteration on Hessian-vector
products at the ends and the highest initial image): k = 0.1 λ̂,
Δt_max = 1/√λ̂ (velocity Verlet is stable for Δt < 2/√λ_max), so the
dynamics do not depend on the units of the loss.

Why a hand-written FIRE: optax and optimistix minimise objectives; the NEB
force is not the gradient of any function, so line searches, trust regions
and quasi-Newton updates do not apply, while FIRE only needs a force.

**Resolution (AutoNEB, Kolsbjerg, Groves & Hammer 2016).** After the band
has relaxed, a segment is under-resolved when the loss changes across it by
more than `resolution` × (max L − min L) of the band, or its midpoint rises
above both ends by more than `resolution`/10 of that; a new image is put in
the middle of each such segment (at most `max_images` in all) and the band
relaxes again. Images are stored in a fixed-size array (`max_images` rows;
rows past the active ones repeat the end and carry no force), so one compiled
kernel serves every round and every pair of a batch.

**Saddles.** Every interior local maximum of the converged band is taken to
machine precision by `refine_flat` (Levenberg–Marquardt on ∇L = 0; the
same solver as `refine_critical_point`) and classified by its dense Hessian
spectrum (`CriticalPointReport`, the verdict of `classify_spectrum`). The
band may cross intermediate minima, so there may be several saddles; all are
reported, highest first. A refined saddle replaces its image in the band, so
the path passes through it.

**Discretisation error.** The band is a piecewise-linear path; its loss is
sampled at `SEGMENT_SAMPLES` points per segment and
`discretisation_error` = (highest sampled loss) − L(saddle). The loss along
the path exceeds the barrier top by at most that (checked against a denser
sampling in `tests/test_mep.py`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._network import check_finite_params
from ._results import RESULTS, CriticalPointReport, check_tolerance, result_code, result_name
from ._solver import hessian_eigh, refine_flat

# FIRE (Bitzek et al. 2006), the values ASE uses.
FIRE_N_MIN, FIRE_F_INC, FIRE_F_DEC, FIRE_ALPHA, FIRE_F_ALPHA = 5, 1.1, 0.5, 0.1, 0.99
SPRING = 0.1  # k = SPRING · λ̂
SEGMENT_SAMPLES = 16  # loss samples per segment for the discretisation error
POWER_STEPS = 30  # power-iteration steps for λ̂
MAX_SADDLES = 6  # local maxima refined per band (the highest ones)
SAME_POINT = 1e-6  # two refined points closer than this (relative) are one


class Stopwatch:
    """Prints stage times when the environment variable SYMLAND_TIMING is set (diagnostics)."""

    def __init__(self):
        import os
        import time
        self.on = bool(os.environ.get("SYMLAND_TIMING"))
        self.time = time.perf_counter
        self.t = self.time()

    def __call__(self, stage):
        if self.on:
            t = self.time()
            print(f"[mep] {stage}: {t - self.t:.2f} s", flush=True)
            self.t = t


class BandOutcome(NamedTuple):
    """What the band relaxation returns (flat arrays, traceable, vmappable)."""

    images: jnp.ndarray  # (max_images, P)
    loss: jnp.ndarray  # (max_images,)
    force: jnp.ndarray  # max over movable images of ‖F_i‖∞ at the end
    steps: jnp.ndarray
    status: jnp.ndarray  # RESULTS code: converged or max_steps (or diverged)


class _FireState(NamedTuple):
    X: jnp.ndarray
    V: jnp.ndarray  # loss per image
    F: jnp.ndarray  # NEB force
    vel: jnp.ndarray
    dt: jnp.ndarray
    alpha: jnp.ndarray
    n_pos: jnp.ndarray  # FIRE steps since the power last turned negative
    step: jnp.ndarray
    fmax: jnp.ndarray
    climb: jnp.ndarray  # the highest image climbs (switched on once, then kept)


def neb_force(X, V, G, n_active, spring, climb):
    """The climbing-image NEB force on every image (zero on the ends and padding rows).

    **Arguments:** `X` (N, P) images, `V` (N,) losses, `G` (N, P) gradients,
    `n_active` (images in use; rows ≥ `n_active` − 1 are the end), `spring`
    (k), `climb` (whether the highest movable image climbs).

    **Returns:** (N, P) forces (Henkelman & Jónsson 2000 eq. 8–12;
    Henkelman, Uberuaga & Jónsson 2000 eq. 5).
    """
    N = X.shape[0]
    idx = jnp.arange(N)
    movable = (idx >= 1) & (idx <= n_active - 2)
    Xp, Xm = jnp.roll(X, -1, 0), jnp.roll(X, 1, 0)
    Vp, Vm = jnp.roll(V, -1), jnp.roll(V, 1)
    tp, tm = Xp - X, X - Xm
    up = (Vp > V) & (V > Vm)
    down = (Vp < V) & (V < Vm)
    dmax = jnp.maximum(jnp.abs(Vp - V), jnp.abs(Vm - V))[:, None]
    dmin = jnp.minimum(jnp.abs(Vp - V), jnp.abs(Vm - V))[:, None]
    mixed = jnp.where((Vp > Vm)[:, None], tp * dmax + tm * dmin, tp * dmin + tm * dmax)
    tau = jnp.where(up[:, None], tp, jnp.where(down[:, None], tm, mixed))
    norm = jnp.linalg.norm(tau, axis=1, keepdims=True)
    tau = jnp.where(norm > 0, tau, tp + tm)
    tau = tau / jnp.maximum(jnp.linalg.norm(tau, axis=1, keepdims=True), 1e-300)
    g_par = jnp.sum(G * tau, axis=1, keepdims=True)
    stretch = spring * (jnp.linalg.norm(tp, axis=1) - jnp.linalg.norm(tm, axis=1))[:, None]
    F = -G + g_par * tau + stretch * tau
    top = jnp.argmax(jnp.where(movable, V, -jnp.inf))
    F = jnp.where(climb & (idx == top)[:, None], -G + 2.0 * g_par * tau, F)
    return jnp.where(movable[:, None], F, 0.0)


def curvature_scale(f, points):
    """λ̂ = the largest |eigenvalue| of ∇²f over `points` (rows), by power iteration on HVPs."""
    grad = jax.grad(f)

    def top(x):
        hvp = lambda v: jax.jvp(grad, (x,), (v,))[1]
        v0 = jnp.ones_like(x) / jnp.sqrt(x.size) + 1e-3 * jnp.arange(x.size) / x.size

        def body(_, v):
            w = hvp(v)
            return w / jnp.maximum(jnp.linalg.norm(w), 1e-300)

        v = jax.lax.fori_loop(0, POWER_STEPS, body, v0 / jnp.linalg.norm(v0))
        return jnp.linalg.norm(hvp(v))

    return jnp.max(jax.vmap(top)(points))


def relax_band(f, X, n_active, *, ftol, max_steps, climbing, spring=None, dt_max=None,
               max_move=None) -> BandOutcome:
    """Relax a band of images under the NEB force by FIRE; traceable (jit/vmap).

    **Arguments:** `f` (flat x ↦ L), `X` (N, P) images (rows ≥ `n_active`
    repeat the end), `ftol` (stop when every movable image has
    ‖F_i‖∞ ≤ `ftol`), `max_steps`, `climbing` (the highest image climbs once
    ‖F‖∞ < 10·`ftol`, i.e. once the band is near the MEP), `spring`,
    `dt_max` (default from λ̂, see the module docstring), `max_move` (largest
    step of the whole band per iteration; default a tenth of the mean
    segment length).

    **Returns:** a `BandOutcome`.
    """
    vg = jax.vmap(jax.value_and_grad(f))
    V0, G0 = vg(X)
    N = X.shape[0]
    idx = jnp.arange(N)
    active = idx < n_active
    if spring is None or dt_max is None:
        top = jnp.argmax(jnp.where(active, V0, -jnp.inf))
        lam = curvature_scale(f, jnp.stack([X[0], X[n_active - 1], X[top]]))
        lam = jnp.maximum(lam, 1e-300)
        spring = SPRING * lam if spring is None else spring
        dt_max = 1.0 / jnp.sqrt(lam) if dt_max is None else dt_max
    if max_move is None:
        seg = jnp.linalg.norm(X[1:] - X[:-1], axis=1)
        max_move = 0.1 * jnp.sum(jnp.where(idx[1:] < n_active, seg, 0.0)) / (n_active - 1)

    def forces(X, V, G, climb):
        F = neb_force(X, V, G, n_active, spring, climb)
        return F, jnp.max(jnp.abs(F))

    F0, f0 = forces(X, V0, G0, jnp.asarray(False))
    climb0 = climbing & (f0 < 10.0 * ftol)
    F0, f0 = forces(X, V0, G0, climb0)

    def running(s):
        unfinished = (s.fmax > ftol) | (climbing & ~s.climb)
        return unfinished & (s.step < max_steps) & jnp.all(jnp.isfinite(s.V))

    def body(s: _FireState) -> _FireState:
        power = jnp.sum(s.F * s.vel)
        fn = jnp.maximum(jnp.linalg.norm(s.F), 1e-300)
        vn = jnp.linalg.norm(s.vel)
        pos = power > 0
        vel = jnp.where(pos, (1.0 - s.alpha) * s.vel + s.alpha * vn * s.F / fn, 0.0)
        dt = jnp.where(pos, jnp.where(s.n_pos > FIRE_N_MIN, jnp.minimum(s.dt * FIRE_F_INC, dt_max), s.dt),
                       s.dt * FIRE_F_DEC)
        alpha = jnp.where(pos, jnp.where(s.n_pos > FIRE_N_MIN, s.alpha * FIRE_F_ALPHA, s.alpha),
                          FIRE_ALPHA)
        n_pos = jnp.where(pos, s.n_pos + 1, 0)
        vel = vel + dt * s.F
        dX = dt * vel
        dn = jnp.linalg.norm(dX)
        dX = jnp.where(dn > max_move, dX * (max_move / jnp.maximum(dn, 1e-300)), dX)
        X = s.X + dX
        V, G = vg(X)
        F, fmax = forces(X, V, G, s.climb)
        climb = s.climb | (climbing & (fmax < 10.0 * ftol))
        # Climbing switches on once (a force that toggles would reset FIRE for ever);
        # the step that switches it on is not judged converged.
        F, fmax = jax.lax.cond(climb & ~s.climb, lambda: forces(X, V, G, climb), lambda: (F, fmax))
        return _FireState(X, V, F, vel, dt, alpha, n_pos, s.step + 1, fmax, climb)

    s = _FireState(X, V0, F0, jnp.zeros_like(X), 0.1 * dt_max, jnp.asarray(FIRE_ALPHA),
                   jnp.asarray(0), jnp.asarray(0), f0, climb0)
    s = jax.lax.while_loop(running, body, s)
    status = jnp.where(~jnp.all(jnp.isfinite(s.V)), result_code(RESULTS.diverged),
                       jnp.where(s.fmax <= ftol, result_code(RESULTS.converged),
                                 result_code(RESULTS.max_steps)))
    return BandOutcome(s.X, s.V, s.fmax, s.step, status)


def segment_losses(f, X, n_samples=SEGMENT_SAMPLES):
    """L at `n_samples` evenly spaced points inside each segment [R_i, R_{i+1}]: (N−1, n_samples)."""
    w = (jnp.arange(n_samples) + 0.5) / n_samples
    pts = X[:-1, None, :] * (1.0 - w)[None, :, None] + X[1:, None, :] * w[None, :, None]
    return jax.vmap(jax.vmap(f))(pts)


class SaddleRefinement(NamedTuple):
    """Refined local maxima of a band (traceable): points, losses, ‖∇L‖∞, status, spectra."""

    x: jnp.ndarray
    loss: jnp.ndarray
    grad_norm: jnp.ndarray
    status: jnp.ndarray
    gtol: jnp.ndarray
    eigenvalues: jnp.ndarray
    steps: jnp.ndarray


def refine_maxima(f, X, *, gtol, max_steps, hessian=None) -> SaddleRefinement:
    """`refine_flat` and the dense Hessian spectrum at each row of `X` (vmapped)."""

    def one(x0):  # without a closed form the loop's own Hessian gives the end point's spectrum
        out = refine_flat(f, x0, gtol=gtol, max_steps=max_steps, final_spectrum=hessian is None)
        lam = out.eigenvalues if hessian is None else hessian_eigh(f, out.x, hessian)[0]
        return SaddleRefinement(out.x, out.loss, out.grad_norm, result_code(out.status), out.gtol,
                                lam, out.steps)

    return jax.vmap(one)(X)


def descent_trail(f, x0, *, step, n_steps, hessian=None):
    """The points of a descent from `x0`, each step at most `step` long; traceable (jit/vmap).

    Each step is the saddle-free Newton direction −|∇²L|⁻¹∇L (Dauphin et al.
    2014; the metric of `minimise_flat`), cut to length `step`, and shortened
    (by 4, up to three times) until L decreases; a step that cannot decrease L
    is not taken. Started just off an index-1 saddle along its unstable
    direction, the trail follows the valley down to a minimum: half of a
    minimum-energy path in the |H| metric, which the elastic band then relaxes
    to the MEP proper. Why not the gradient flow itself: on the toy the
    Hessian's condition number is ~1e5, so the flow needs that many steps to
    follow the valley floor; the |H| metric takes it in a few hundred, and the
    unstable direction doubles its distance from the saddle every step.

    **Returns:** (`n_steps` + 1, P) points, `x0` first.
    """

    def body(x, _):
        fx, g = jax.value_and_grad(f)(x)
        lam, Q = hessian_eigh(f, x, hessian)
        mu = 1e-10 * jnp.maximum(jnp.max(jnp.abs(lam)), 1e-300)
        p = -Q @ ((Q.T @ g) / (jnp.abs(lam) + mu))
        n = jnp.linalg.norm(p)
        p = jnp.where(n > step, p * (step / jnp.maximum(n, 1e-300)), p)
        x_new = x
        for scale in (1.0, 0.25, 0.0625, 0.015625):
            cand = x + scale * p
            take = (x_new == x).all() & (f(cand) < fx)
            x_new = jnp.where(take, cand, x_new)
        return x_new, x_new

    _, xs = jax.lax.scan(body, x0, None, length=n_steps)
    return jnp.concatenate([x0[None], xs])


SUBLEVEL_IMAGES = 24  # interior images of a `sublevel_path`
SUBLEVEL_BETA = 30.0  # sharpness of the smoothed maximum, in units of the level
SUBLEVEL_SPRING = 1e-4  # weight of the discrete path length Σ‖R_{i+1} − R_i‖², scaled by the image count
SUBLEVEL_STEPS = 3_000  # L-BFGS iterations
SUBLEVEL_SAMPLES = 3  # loss samples inside each segment, at its quarters (`plateau_links` measures those)


@functools.lru_cache(maxsize=16)
def _sublevel_objective(loss_of, images: int):
    """Jitted value and gradient of the smoothed path maximum of `sublevel_path` (cached per loss)."""

    def objective(r, a, b, level, data):
        R = r.reshape(images, a.size)
        full = jnp.concatenate([a[None], R, b[None]])
        w = (jnp.arange(1, SUBLEVEL_SAMPLES + 1) / (SUBLEVEL_SAMPLES + 1))[None, :, None]
        inside = (full[:-1, None] * (1.0 - w) + full[1:, None] * w).reshape(-1, a.size)
        f = lambda x: loss_of(x, data)
        ell = jnp.concatenate([jax.vmap(f)(R), jax.vmap(f)(inside)]) / level
        length = jnp.sum((full[1:] - full[:-1]) ** 2) * (images + 1)
        return jax.scipy.special.logsumexp(SUBLEVEL_BETA * ell) / SUBLEVEL_BETA + SUBLEVEL_SPRING * length

    return jax.jit(jax.value_and_grad(objective))


def sublevel_path(loss_of, start, end, level: float, data=None, *, images: int = SUBLEVEL_IMAGES,
                  steps: int = SUBLEVEL_STEPS) -> np.ndarray:
    """A path from `start` to `end` that keeps L as far below `level` as it can: a smoothed minimax path.

    Minimises over the interior images R_1 … R_N of a polyline with fixed
    ends the smoothed maximum (1/β) log Σ exp(β L(·)/`level`) of the loss at
    the images and at `SUBLEVEL_SAMPLES` points inside each segment (its
    quarters: a rise near a saddle end can miss the midpoint), plus a small multiple of the
    discrete path length Σ‖R_{i+1} − R_i‖² that keeps the images spread
    along the path (β = `SUBLEVEL_BETA`, weight `SUBLEVEL_SPRING`·(N + 1)),
    by scipy's L-BFGS-B from the straight segment. The result answers whether
    `start` and `end` lie in one component of the sublevel set
    {L ≤ `level`·(1 + ε)}; the caller measures ε on its own sampling.

    Why not the elastic band (`minimum_energy_path`): where the landscape has
    channels to infinity (Martinelli et al. 2025) the band's perpendicular
    force carries single images down a channel, unopposed by springs that
    act only along the band, and the segments between them climb far above
    the level (seen in exploratory bands to plateau points on the softplus
    toys 4, 5, 12, 15 of `benchmarks/scan_saddles.py`; no command kept);
    here every image is pulled towards its neighbours, and the highest point
    of the whole path is what is minimised. Why a smoothed maximum: the
    maximum itself is not differentiable where two samples tie.

    **Arguments:** `loss_of` (flat x, data ↦ L; hashable, as the kernels of
    this module take it), `start`, `end` (flat points), `level` (> 0),
    `data`, `images` (N), `steps` (L-BFGS iterations).

    **Returns:** the (N + 2, P) polyline, `start` and `end` exactly at its ends.

    Example:
        >>> import jax.numpy as jnp, numpy as np
        >>> # a double well (saddle L = 1) whose straight path is blocked by a bump of height 2 near (−0.5, 0)
        >>> bump = lambda p, data: ((p[0] ** 2 - 1.0) ** 2 + 2.0 * p[1] ** 2
        ...                         + 2.0 * jnp.exp(-((p[0] + 0.5) ** 2 + (p[1] - 0.03) ** 2) / 0.02))
        >>> X = sublevel_path(bump, np.array([-1.0, 0.0]), np.array([1.0, 0.0]), 1.1, images=16, steps=1000)
        >>> t = np.linspace(0.0, 1.0, 33)[:, None, None]
        >>> dense = (1 - t) * X[None, :-1] + t * X[None, 1:]  # 33 points inside every segment
        >>> X.shape, bool(max(float(bump(x, None)) for x in dense.reshape(-1, 2)) < 1.1)
        ((18, 2), True)
    """
    a = np.asarray(start, dtype=np.float64)
    b = np.asarray(end, dtype=np.float64)
    from scipy.optimize import minimize

    t = np.linspace(0.0, 1.0, images + 2)[1:-1, None]
    r0 = ((1.0 - t) * a[None] + t * b[None]).ravel()
    vg = _sublevel_objective(loss_of, int(images))
    A, B, lev = jnp.asarray(a), jnp.asarray(b), jnp.asarray(float(level))
    fun = lambda r: tuple(np.asarray(v, dtype=np.float64) for v in vg(r, A, B, lev, data))  # numpy into jit
    out = minimize(fun, r0, jac=True, method="L-BFGS-B", options={"maxiter": int(steps), "maxfun": 4 * int(steps)})
    return np.concatenate([a[None], out.x.reshape(images, a.size), b[None]])


def local_maxima(loss, n_active) -> list[int]:
    """Interior local maxima of a band's losses (ties: the first), highest first."""
    v = np.asarray(loss)[:n_active]
    idx = [i for i in range(1, n_active - 1) if v[i] > v[i - 1] and v[i] >= v[i + 1]]
    return sorted(idx, key=lambda i: -v[i])


def under_resolved(images, loss, n_active, mid_loss, resolution) -> list[int]:
    """Segments i (between images i and i+1) that need an image in the middle (AutoNEB rule)."""
    v = np.asarray(loss)[:n_active]
    span = max(float(v.max() - v.min()), 1e-300)
    mid = np.asarray(mid_loss)[:n_active - 1]
    gap = np.abs(np.diff(v))
    rise = mid - np.maximum(v[:-1], v[1:])
    return [i for i in range(n_active - 1) if gap[i] > resolution * span or rise[i] > 0.1 * resolution * span]


def insert_images(images, n_active, segments, max_images):
    """New band with an image in the middle of each listed segment (as many as fit)."""
    X = np.asarray(images)[:n_active]
    room = max_images - n_active
    chosen = set(sorted(segments, key=lambda i: i)[:room])
    rows = []
    for i in range(n_active - 1):
        rows.append(X[i])
        if i in chosen:
            rows.append(0.5 * (X[i] + X[i + 1]))
    rows.append(X[-1])
    return pad_band(np.stack(rows), max_images), len(rows)


def pad_band(X, max_images):
    """Rows past the active ones repeat the end (they carry no force)."""
    X = np.asarray(X, dtype=np.float64)
    return np.concatenate([X, np.repeat(X[-1:], max_images - X.shape[0], 0)], 0)


def linear_band(start, end, n):
    """n images evenly spaced on the segment from `start` to `end` (flat vectors)."""
    w = np.linspace(0.0, 1.0, n)[:, None]
    return (1.0 - w) * np.asarray(start)[None, :] + w * np.asarray(end)[None, :]


def resample_band(points, n):
    """n images evenly spaced in arclength along the polyline through `points`."""
    P = np.asarray(points, dtype=np.float64)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(P, axis=0), axis=1))])
    if s[-1] == 0:
        return np.repeat(P[:1], n, 0)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, P[:, j]) for j in range(P.shape[1])], axis=1)


@dataclasses.dataclass(frozen=True)
class MinimumEnergyPath:
    """A relaxed climbing-image band from `start` to `end` and the saddles on it.

    **Fields:**
    - `images`: (n, P) flat images (`ravel_pytree` order); `params(i)` gives
      image i as a pytree. `images[0]` and `images[-1]` are exactly the ends.
    - `loss`: L per image; `arclength`: cumulative ‖R_{i+1} − R_i‖ from 0.
    - `saddles`: list of (params, `CriticalPointReport`) for every refined
      interior local maximum, highest first (distinct points only);
      `saddle` (the highest, or None), `saddle_report`, `barrier`
      (L(saddle) − L(start), NaN without a saddle).
    - `status`: a `RESULTS` name: `converged` when the band converged and the
      highest maximum refined to a critical point (‖∇L‖∞ within the
      refinement's tolerance); otherwise the band's or the refinement's
      reason.
    - `band_status`, `band_force` (max ‖F_i‖∞ at the end), `ftol`,
      `steps` (FIRE iterations, all rounds), `rounds` (relaxations: one plus
      one per insertion round), `refinements` (per saddle: image index,
      status, distance moved by the refinement, LM steps),
      `discretisation_error` (module docstring), `gtol` (refinement
      tolerance as given).
    - `method`: `neb` (a relaxed band, this module), or `network` /
      `valley` (a path of descents from certified permutation points, built
      by `symland._transition_network`; its `band_*`, `ftol`, `steps` and
      `rounds` are None or 0: no band was relaxed).
    """

    images: np.ndarray
    loss: np.ndarray
    arclength: np.ndarray
    saddles: list
    status: str
    band_status: str
    band_force: float
    ftol: float
    steps: int
    rounds: int
    refinements: list
    discretisation_error: float
    gtol: float
    unravel: object = dataclasses.field(repr=False, compare=False)
    method: str = "neb"

    def params(self, i: int):
        """Image i as a pytree of the start's structure."""
        return self.unravel(jnp.asarray(self.images[i]))

    @property
    def saddle(self):
        return self.saddles[0][0] if self.saddles else None

    @property
    def saddle_report(self) -> CriticalPointReport | None:
        return self.saddles[0][1] if self.saddles else None

    @property
    def barrier(self) -> float:
        return self.saddles[0][1].loss - float(self.loss[0]) if self.saddles else float("nan")

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def to_dict(self) -> dict:
        """JSON record (no parameters)."""
        return {
            "method": self.method,
            "status": self.status, "band_status": self.band_status, "band_force": self.band_force,
            "ftol": self.ftol, "steps": self.steps, "rounds": self.rounds,
            "images": int(self.images.shape[0]), "loss": self.loss.tolist(),
            "arclength": self.arclength.tolist(), "barrier": self.barrier,
            "discretisation_error": self.discretisation_error, "gtol": self.gtol,
            "saddles": [{**r.to_dict(), **ref} for (_, r), ref in zip(self.saddles, self.refinements)],
        }


class MepKernels(NamedTuple):
    """Jitted, batch-first (`vmap` over paths) pieces of the MEP computation."""

    relax: object  # (X[B,N,P], n[B], data, ftol[B]) -> BandOutcome
    segments: object  # (X[B,N,P], data) -> (B, N-1, SEGMENT_SAMPLES)
    refine: object  # (X[B,K,P], data) -> SaddleRefinement with leading (B, K)


@functools.lru_cache(maxsize=32)
def mep_kernels(loss_of, *, max_steps: int, climbing: bool, gtol: float, refine_steps: int,
                closed_form_hessian: bool = False) -> MepKernels:
    """Compiled kernels for a loss `loss_of(x_flat, data)`; cached per loss and options.

    `data` is an argument (not closed over) so one compilation serves any
    data of the same shapes; with `closed_form_hessian`,
    `loss_of.hessian(x, data)` computes the Hessian. `loss_of` must hash and
    compare equal for equal losses, or every call compiles anew.
    """
    hessian_of = loss_of.hessian if closed_form_hessian else None

    def relax(X, n, data, ftol):
        return relax_band(lambda x: loss_of(x, data), X, n, ftol=ftol, max_steps=max_steps,
                          climbing=climbing)

    def segments(X, data):
        return segment_losses(lambda x: loss_of(x, data), X)

    def refine(X, data):
        hess = None if hessian_of is None else (lambda x: hessian_of(x, data))
        return refine_maxima(lambda x: loss_of(x, data), X, gtol=gtol, max_steps=refine_steps,
                             hessian=hess)

    return MepKernels(jax.jit(jax.vmap(relax, in_axes=(0, 0, None, 0))),
                      jax.jit(jax.vmap(segments, in_axes=(0, None))),
                      jax.jit(jax.vmap(refine, in_axes=(0, None))))


def check_images(images, max_images):
    """`ValueError` unless 3 ≤ `images` ≤ `max_images` are integers."""
    if isinstance(images, bool) or not isinstance(images, (int, np.integer)) or images < 3:
        raise ValueError(f"images: need an integer ≥ 3 (two ends and at least one movable image), "
                         f"got {images!r}")
    if isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer)) \
            or max_images < images:
        raise ValueError(f"max_images: need an integer ≥ images = {images}, got {max_images!r}")


def check_mep_options(*, max_steps, resolution, rounds, ftol):
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps: must be a positive integer, got {max_steps!r}")
    check_tolerance(resolution, "resolution")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 0:
        raise ValueError(f"rounds: must be a non-negative integer, got {rounds!r}")
    if ftol is not None:
        check_tolerance(ftol, "ftol")


def run_bands(kernels: MepKernels, bands, n_active, data, *, ftol_rel, ftol, resolution, rounds,
              max_images, extra_point=None):
    """Relax a batch of bands with AutoNEB insertion rounds, then refine their local maxima.

    Every jitted call has fixed shapes (bands padded to `max_images`, always
    `MAX_SADDLES` + 1 refinement slots per band), so nothing recompiles
    between rounds or calls. `extra_point(b, images)`, when given, names one
    more point per band to refine (in the last slot).

    **Returns:** per band a dict with `images`, `loss` (refined saddles put
    in the band), `band_status`, `band_force`, `steps`, `rounds`, `ftol`,
    `maxima` (image indices refined), `refined` (`SaddleRefinement` rows,
    one per maximum and the extra point last), `segments` (segment losses
    of the final band).
    """
    X = np.stack(bands)
    n = np.asarray(n_active, dtype=np.int64)
    clock = Stopwatch()
    B = X.shape[0]
    ftols = np.full(B, np.inf if ftol is None else float(ftol))
    steps = np.zeros(B, dtype=np.int64)
    done_rounds = np.zeros(B, dtype=np.int64)
    if ftol is None:
        # Relative tolerance: a fraction of the largest initial force on the band.
        probe = kernels.relax(jnp.asarray(X), jnp.asarray(n), data, jnp.full(B, np.inf))
        ftols = ftol_rel * np.maximum(np.asarray(probe.force), 1e-300)
    out = kernels.relax(jnp.asarray(X), jnp.asarray(n), data, jnp.asarray(ftols))
    steps += np.asarray(out.steps)
    clock("relax")
    for _ in range(rounds):
        seg = np.asarray(kernels.segments(out.images, data))
        mid = seg[:, :, SEGMENT_SAMPLES // 2]
        new_X, new_n, changed = [], [], False
        for b in range(B):
            segs = under_resolved(out.images[b], out.loss[b], int(n[b]), mid[b], resolution)
            if segs and n[b] < max_images:
                Xb, nb = insert_images(out.images[b], int(n[b]), segs, max_images)
                changed = True
                done_rounds[b] += 1
            else:
                Xb, nb = np.asarray(out.images[b]), int(n[b])
            new_X.append(Xb)
            new_n.append(nb)
        if not changed:
            break
        n = np.asarray(new_n)
        out = kernels.relax(jnp.asarray(np.stack(new_X)), jnp.asarray(n), data, jnp.asarray(ftols))
        steps += np.asarray(out.steps)
        clock("relax again")
    images = np.array(out.images)
    loss = np.array(out.loss)
    maxima = [local_maxima(loss[b], int(n[b]))[:MAX_SADDLES] for b in range(B)]
    K = MAX_SADDLES + 1
    cand = np.empty((B, K, X.shape[2]))
    for b, mx in enumerate(maxima):
        fill = images[b][mx[0] if mx else int(n[b]) // 2]
        rows = [images[b][i] for i in mx] + [fill] * (MAX_SADDLES - len(mx))
        rows.append(fill if extra_point is None else extra_point(b, images[b][:n[b]]))
        cand[b] = np.stack(rows)
    ref = kernels.refine(jnp.asarray(cand), data)
    ref = SaddleRefinement(*[np.asarray(a) for a in ref])
    clock("refine")
    # Refined maxima that converged near their image replace it in the band.
    original, before = loss.copy(), images.copy()
    for b, mx in enumerate(maxima):
        for k, i in enumerate(mx):
            x = ref.x[b, k]
            seg = min(np.linalg.norm(images[b][i] - images[b][i - 1]),
                      np.linalg.norm(images[b][i + 1] - images[b][i]))
            if result_name(int(ref.status[b, k])) == "converged" and np.linalg.norm(x - images[b][i]) <= seg:
                images[b][i] = x
                loss[b][i] = ref.loss[b, k]
    seg = np.asarray(kernels.segments(jnp.asarray(images), data))
    clock("segments")
    results = []
    for b in range(B):
        nb = int(n[b])
        results.append({"images": images[b][:nb].copy(), "loss": loss[b][:nb].copy(),
                        "image_loss": original[b][:nb].copy(), "images_before": before[b][:nb].copy(),
                        "band_status": result_name(int(np.asarray(out.status)[b])),
                        "band_force": float(np.asarray(out.force)[b]), "steps": int(steps[b]),
                        "rounds": int(done_rounds[b]) + 1, "ftol": float(ftols[b]),
                        "maxima": maxima[b], "refined": SaddleRefinement(*[a[b] for a in ref]),
                        "segments": seg[b][:nb - 1]})
    return results


def assemble_path(result, unravel, *, gtol: float) -> MinimumEnergyPath:
    """Turn one band's `run_bands` record into a `MinimumEnergyPath`.

    Duplicates (the same point reached from two maxima) are reported once.
    """
    images, loss = result["images"], result["loss"]
    ref: SaddleRefinement = result["refined"]
    n_params = images.shape[1]
    scale = max(1.0, float(np.max(np.abs(images))))
    saddles, refinements, kept = [], [], []
    for k, i in enumerate(result["maxima"]):
        x = ref.x[k]
        if any(np.linalg.norm(x - y) <= SAME_POINT * scale for y in kept):
            continue
        report = CriticalPointReport.from_spectrum(ref.loss[k], ref.grad_norm[k], ref.eigenvalues[k],
                                                   gtol=float(ref.gtol[k]), n=n_params)
        if str(report.kind) == "minimum":
            continue  # a maximum of the band that refines to a minimum (round-off ripple) is no saddle
        kept.append(x)
        saddles.append((unravel(jnp.asarray(x)), report))
        refinements.append({"image": int(i), "refine_status": result_name(int(ref.status[k])),
                            "moved": float(np.linalg.norm(x - result["images_before"][i])),
                            "refine_steps": int(ref.steps[k]), "image_loss": float(result["image_loss"][i])})
    order = sorted(range(len(saddles)), key=lambda j: -saddles[j][1].loss)
    saddles = [saddles[j] for j in order]
    refinements = [refinements[j] for j in order]
    top = max([r.loss for _, r in saddles] + [float(loss.max())])
    disc = float(max(result["segments"].max(), loss.max()) - top)
    band_status = result["band_status"]
    if band_status != "converged":
        status = band_status
    elif not saddles:
        status = "converged"  # a monotone band: no interior maximum, the barrier is at an end
    else:
        status = refinements[0]["refine_status"]
    arclength = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(images, axis=0), axis=1))])
    return MinimumEnergyPath(images=images, loss=loss, arclength=arclength, saddles=saddles,
                             status=status, band_status=band_status,
                             band_force=result["band_force"], ftol=result["ftol"],
                             steps=result["steps"], rounds=result["rounds"],
                             refinements=refinements, discretisation_error=disc, gtol=float(gtol),
                             unravel=unravel)


def check_endpoints(start, end):
    """`ValueError` naming the argument unless `start` and `end` are finite pytrees of one structure."""
    check_finite_params(start, "start")
    check_finite_params(end, "end")
    ts, te = jax.tree_util.tree_structure(start), jax.tree_util.tree_structure(end)
    if ts != te:
        raise ValueError(f"end: must have the structure of start ({ts}), got {te}")
    for a, b in zip(jax.tree_util.tree_leaves(start), jax.tree_util.tree_leaves(end)):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(f"end: leaf shapes differ from start: {jnp.shape(b)} vs {jnp.shape(a)}")


def minimum_energy_path(loss_fn, start, end, *, images: int = 15, max_images: int | None = None,
                        climbing: bool = True, init=None, gtol: float = 1e-12, ftol: float | None = None,
                        ftol_rel: float = 1e-4, max_steps: int = 20_000, resolution: float = 0.2,
                        rounds: int = 3, refine_steps: int = 100) -> MinimumEnergyPath:
    """The minimum-energy path from `start` to `end` and every saddle on it (climbing-image NEB).

    **Arguments:**
    - `loss_fn`: θ ↦ L(θ) on pytrees of the structure of `start`.
    - `start`, `end`: the two ends (usually minima); they stay fixed.
    - `images`: number of images to start with (≥ 3, ends included);
      `max_images` (default 2·`images` + 3): most images after insertion.
    - `climbing`: the highest image climbs to the saddle (HUJ 2000).
    - `init`: the initial band, a list of pytrees or an (n, P) array of flat
      images from `start` to `end` (resampled to `images` images evenly in
      arclength); default the straight segment.
    - `gtol`: saddle refinement tolerance, ‖∇L‖∞ ≤ `gtol`·max(1, |L|)
      (`refine_critical_point`'s rule).
    - `ftol`: band tolerance on ‖F_i‖∞; default `ftol_rel` × the largest
      initial NEB force (only the refinement must reach machine precision,
      the band must only bring each maximum into its basin).
    - `max_steps`: FIRE iterations per relaxation; `resolution`, `rounds`:
      AutoNEB insertion (module docstring); `refine_steps`: LM steps.

    **Returns:** a `MinimumEnergyPath`.

    Example:
        >>> import jax.numpy as jnp
        >>> from symland import minimum_energy_path
        >>> double_well = lambda p: (p[0] ** 2 - 1.0) ** 2 + 2.0 * p[1] ** 2
        >>> mep = minimum_energy_path(double_well, jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.0]),
        ...                           init=[jnp.array([-1.0, 0.0]), jnp.array([0.0, 0.5]), jnp.array([1.0, 0.0])])
        >>> mep.status, round(mep.barrier, 12), mep.saddle_report.index
        ('converged', 1.0, 1)
    """
    check_endpoints(start, end)
    max_images = 2 * images + 3 if max_images is None and isinstance(images, int) else max_images
    check_images(images, max_images)
    check_tolerance(gtol, "gtol")
    check_tolerance(ftol_rel, "ftol_rel")
    check_mep_options(max_steps=max_steps, resolution=resolution, rounds=rounds, ftol=ftol)
    x0, unravel = ravel_pytree(start)
    x1 = ravel_pytree(end)[0]
    x0 = np.asarray(x0, dtype=np.float64)
    x1 = np.asarray(x1, dtype=np.float64)
    band = initial_band(init, x0, x1, images)
    kernels = mep_kernels(_FlatLoss(loss_fn, start), max_steps=int(max_steps),
                          climbing=bool(climbing), gtol=float(gtol), refine_steps=int(refine_steps))
    res = run_bands(kernels, [pad_band(band, max_images)], [images], None, ftol_rel=float(ftol_rel),
                    ftol=ftol, resolution=float(resolution), rounds=int(rounds),
                    max_images=int(max_images))[0]
    return assemble_path(res, unravel, gtol=gtol)


def initial_band(init, x0, x1, images):
    """The initial (images, P) band: `init` resampled evenly in arclength, ends set exactly."""
    if init is None:
        return linear_band(x0, x1, images)
    if isinstance(init, (list, tuple)):
        if len(init) < 2:
            raise ValueError("init: need at least two points")
        for p in init:
            check_finite_params(p, "init")
        pts = np.stack([np.asarray(ravel_pytree(p)[0], dtype=np.float64) for p in init])
    else:
        pts = np.asarray(init, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != x0.size or pts.shape[0] < 2:
            raise ValueError(f"init: need an (n ≥ 2, {x0.size}) array of flat images, got shape {pts.shape}")
        if not np.all(np.isfinite(pts)):
            raise ValueError("init: parameters must be finite, got NaN or inf")
    if pts.shape[1] != x0.size:
        raise ValueError(f"init: images must have {x0.size} parameters, got {pts.shape[1]}")
    pts = np.concatenate([x0[None], pts, x1[None]])
    band = resample_band(pts, images)
    band[0], band[-1] = x0, x1
    return band


class _FlatLoss:
    """(x_flat, data) ↦ loss_fn(unravel(x)); hashable by the wrapped function (kernel cache)."""

    def __init__(self, loss_fn, start):
        self.loss_fn = loss_fn
        self.unravel = ravel_pytree(start)[1]
        leaves, treedef = jax.tree_util.tree_flatten(start)
        self._key = (treedef, tuple((jnp.shape(a), str(jnp.result_type(a))) for a in leaves))

    def __call__(self, x, data):
        return self.loss_fn(self.unravel(x))

    def __hash__(self):
        return hash((id(self.loss_fn), self._key))

    def __eq__(self, other):
        return isinstance(other, _FlatLoss) and other.loss_fn is self.loss_fn and other._key == self._key
