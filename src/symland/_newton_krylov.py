"""Matrix-free trust-region Newton–Krylov solvers for networks with thousands of parameters.

Brea et al. 2019, §5 (Fig. 3) follow permutation paths of 784-H-H-10
networks: 8,000–20,500 parameters. The exact-Hessian solvers of
`symland._solver` eigendecompose a dense Hessian at every Newton step, which
at that size costs minutes and gigabytes per step. Here the Hessian is never
formed; every solver only calls jitted Hessian-vector products (HVPs,
forward-over-reverse AD, about 2–3 gradients each).

- `minimise_matrix_free(method="trust-pcg")` (opt-in): trust-region
  Newton whose subproblem is solved by preconditioned Steihaug–Toint CG
  with the trust region in the preconditioner's norm, a cap on the inner
  iterations (`CG_MAX_ITERATIONS`), an inexact-Newton forcing term, and an
  optional HVP budget per solve (`max_hvps`, reported as `max_steps`).
  `path_problem` supplies an eigenvalue-corrected K-FAC Gauss–Newton
  preconditioner (`kfac_preconditioner`). Measured on the first δ step of a
  784-10-10-10 Fashion-MNIST path (8,070 parameters, 10,000 samples;
  `benchmarks/bench_mnist.py --only solvers`): 30 outer iterations cost
  4,296 HVPs and reach ‖∇L‖∞ = 1.2e−6, where scipy's `trust-ncg` needs
  8,595 HVPs for 9.8e−6; neither reaches the 1e−8 target in 30 iterations
  (issue 10, still open).
- `method="trust-ncg"` / `"trust-krylov"`: trust-region Newton with the subproblem solved by
  the Generalised Lanczos Trust-Region method (GLTR, Gould et al. 1999),
  i.e. scipy's `minimize(method="trust-krylov", hessp=...)` (trlib). Why
  this method: GLTR is Steihaug–Toint CG that does not stop at the first
  negative-curvature direction or trust-region boundary, so it handles the
  indefinite and singular Hessians met on a permutation path (the paper's
  fixed-δ problems have flat directions and saddles nearby) and, with the
  trust region inactive, takes inexact Newton steps with a forcing sequence
  that converges quadratically: a gradient tolerance of 1e−8 costs a
  handful of outer iterations, where plain gradient descent, the paper's
  method, needs thousands (see BENCHMARKS.md). It is maintained (scipy ≥
  1.0); an L-BFGS phase was not needed because every δ step is warm-started
  by a continuation predictor close to its solution.
- A linear change of variables `v = M s` (the input-whitening
  preconditioner of `input_whitening`) is applied before the solver:
  the first layer's Hessian blocks are Σ_μ D_μ ⊗ x̃_μx̃_μᵀ, whose condition
  number inherits that of the pixel second-moment matrix (≈1e6 for
  Fashion-MNIST); with x̃ whitened it is that of D alone. The solver works on
  s, the convergence test always on the gradient in the original
  parameters.
- `refine_matrix_free`: Newton–MINRES on ∇L = 0 (MINRES solves the
  symmetric, possibly indefinite and singular Newton system; a step is kept
  when it lowers ‖∇L‖₂, else halved), for taking a permutation point, a
  saddle, to machine precision.

Statuses are `RESULTS` names: `converged` (‖∇L‖∞ ≤ `gtol`·max(1, L) in
the original parameters), `max_steps`, `stalled` (the trust-region model
stopped predicting decrease), `diverged` (non-finite loss), `escape` (the
caller's `escape` test fired, e.g. output weights running off to infinity).
"""

from __future__ import annotations

import dataclasses
import functools
import time
import typing
import warnings

import numpy as np
import jax
import jax.numpy as jnp

from ._critical import DENSE_THRESHOLD, LINEARISE_THRESHOLD
from ._results import EPS, RESULT_NAMES, check_hvp_budget, check_tolerance

NK_GTOL = 1e-8  # a step converges at ‖∇L‖∞ ≤ NK_GTOL·max(1, L) (issue 10)
CG_MAX_ITERATIONS = 250  # inner PCG iterations (HVPs) per outer trust-region step
CG_FORCING = 0.1  # the largest forcing term of `_trust_region_pcg`'s inner solves (its docstring)
# `minimise_matrix_free(lbfgs=...)`: the L-BFGS phase's memory (pairs kept) and how many of its iterations
# one set of Gauss–Newton factors serves before they are built again at the iterate. Factors kept
# throughout serve badly: in a scratch trial on the Fig. 3 δ = 0 solve from the merged θ*, 300 iterations
# with the first factors left L at 6.19e−4 (the minimum's is 6.085e−4) and the trust region 1,168 HVPs.
# Rebuilt every 60, 75, 100 or 120 iterations (`benchmarks/bench_mnist.py --only merged --variants`) they
# left it 31–338 HVPs; of those, 360 iterations with factors every 120 took the least time (BENCHMARKS.md,
# "An L-BFGS phase preconditioned by the Gauss–Newton factors").
LBFGS_MEMORY = 20
LBFGS_REFACTORISE = 120
KRYLOV_METHODS = ("trust-ncg", "trust-krylov", "trust-pcg")  # `minimise_matrix_free`'s methods
# `matrix_free_paths`'s solvers: those, and trust-pcg with a lagged Gauss–Newton preconditioner
PATH_SOLVERS = KRYLOV_METHODS + ("trust-gn",)


def check_path_solver(solver) -> None:
    """`ValueError` naming `solver` unless it is one of `PATH_SOLVERS`."""
    if solver not in PATH_SOLVERS:
        raise ValueError(f"solver: unknown solver {solver!r}; choose one of {', '.join(PATH_SOLVERS)}")


# HVPs per δ step (and for the permutation point's refinement) in the Fig. 3 runs (`symland mnist`, the
# `mnist` sweep experiment): sized so that the default run (H = 10, 2 seeds, 10,000 samples, 100 steps)
# ends within 10 minutes on 2 cores; at 8,070 parameters one HVP takes ≈ 24 ms (BENCHMARKS.md, issue 10).
FIG3_HVP_BUDGET = 60


@dataclasses.dataclass
class KrylovOutcome:
    """What a matrix-free solve returns (NumPy, not traceable).

    **Fields:** `x` (flat solution in the original variables), `loss`,
    `grad_norm` (‖∇L‖∞ in the original variables), `status` (a `RESULTS`
    name), `steps` (outer trust-region / Newton iterations), `hvps`
    (Hessian-vector products), `gradients` (loss-and-gradient evaluations),
    `seconds` (wall time), `factorisations` (preconditioner factorisations
    within the solve: `factors` given as a function, and
    `minimise_matrix_free(refactorise=...)`), `substeps` (the unrecorded
    continuation sub-steps by which `matrix_free_paths(split=...)` reached
    this δ step; the other counts include theirs), `lbfgs` (iterations of
    the preconditioned L-BFGS phase before the trust region,
    `minimise_matrix_free(lbfgs=...)`; 0 without one).
    """

    x: np.ndarray
    loss: float
    grad_norm: float
    status: str
    steps: int
    hvps: int
    gradients: int
    seconds: float
    factorisations: int = 0
    substeps: int = 0
    lbfgs: int = 0

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def to_dict(self) -> dict:
        """Scalars of the outcome (not `x`), for JSON."""
        return {"status": self.status, "loss": float(self.loss), "grad_norm": float(self.grad_norm),
                "steps": int(self.steps), "hvps": int(self.hvps), "gradients": int(self.gradients),
                "seconds": float(self.seconds), "factorisations": int(self.factorisations),
                "substeps": int(self.substeps), "lbfgs": int(self.lbfgs)}


class _Stop(Exception):
    pass


class FlatProblem:
    """f(v; args) on flat float64 vectors with jitted value-and-gradient and HVP.

    `loss(v, *args)` must be a JAX function; `args` (data, δ, …) are passed
    as arguments, never closed over, so XLA does not constant-fold the data
    and one compilation serves every δ step. `transform` (a pair of jittable
    linear maps `M`, `M_inv` with `M` symmetric) changes variables v = M s.
    `preconditioner` (`(build, apply, data)`, e.g. `kfac_preconditioner`):
    `build(v, data, *args)` returns factors of an SPD approximation M̃ of the
    Hessian in the solver's variables s, `apply(factors, r)` returns M̃⁻¹r;
    `data` (arrays) is passed, not closed over. Default: the identity.
    """

    def __init__(self, loss, transform=None, preconditioner=None):
        M, M_inv = transform if transform is not None else (lambda s: s, lambda v: v)
        self.M, self.M_inv = M, M_inv
        if preconditioner is None:
            build, apply, data = (lambda v, data, *args: ()), (lambda factors, r: r), ()
        else:
            build, apply, data = preconditioner
        self.preconditioner_data = data
        build_s = jax.jit(lambda s, data, *args: build(M(s), data, *args))
        self.build_preconditioner = lambda s, *args: build_s(s, self.preconditioner_data, *args)
        self.apply_preconditioner = jax.jit(apply)

        def value_grads(s, *args):
            v = M(s)
            f, gv = jax.value_and_grad(loss)(v, *args)
            return f, M(gv), gv  # ∇_s = Mᵀ∇_v = M∇_v (M symmetric)

        def grad_s(s, *args):
            return M(jax.grad(loss)(M(s), *args))

        def hvp(s, t, *args):
            return jax.jvp(lambda s_: grad_s(s_, *args), (s,), (t,))[1]

        def linearise(s, *args):
            return jax.linearize(lambda s_: grad_s(s_, *args), s)[1]

        self.value_grads = jax.jit(value_grads)
        self.hvp = jax.jit(hvp)
        # jit returns the linearised gradient as a `Partial` whose function is the one of the first trace,
        # so `_apply_linear` compiles once for every point and δ (same shapes).
        self._linearise = jax.jit(linearise)
        self._apply_linear = jax.jit(lambda lin, t: lin(t))
        self.to_s = jax.jit(M_inv)
        self.to_v = jax.jit(M)
        # s, p ↦ the trial point of a step p from s (`_trust_region_pcg`); None: s + p
        self.retract = None

    def hvp_at(self, s, *args):
        """t ↦ ∇²_s f(s) t at a fixed `s`: the gradient linearised once (`jax.linearize`), so that each
        product repeats only the tangent passes. For a loss whose cost is its products with the data
        (x W₁ᵀ forward, Dᵀx backward) that is two passes over x per product where `hvp`'s
        forward-over-reverse makes three (the primal forward again); on the Fig. 3 problem (784-10-10-10,
        10,000 samples) a median 24.7 ms against 34.1 ms (1.40×), plus 50 ms once per point
        (BENCHMARKS.md, `benchmarks/bench_mnist.py --only hvp`).
        Exact: the same float64 operations as `hvp`.

        Up to `LINEARISE_THRESHOLD` parameters (the toy's size) it is `hvp` at `s`: there the passes
        are cheap, and one compilation serves instead of two.

        Example:
            >>> import jax.numpy as jnp
            >>> p = FlatProblem(lambda v, c: jnp.sum(c * v ** 4))
            >>> H = p.hvp_at(jnp.ones(2), 2.0)
            >>> H(jnp.array([1.0, 0.0]))
            Array([24.,  0.], dtype=float64)
        """
        return functools.partial(*self.hvp_operator(s, *args))

    def hvp_operator(self, s, *args):
        """`(apply, operands)` with `apply(operands, t)` = ∇²_s f(s) t: `hvp_at` with its point and data
        as an argument, so that one `jax.jit(jax.vmap(apply, in_axes=(None, 1)))` serves many blocks of
        vectors without closing over (and compiling in) the linearisation or the data.

        Example:
            >>> import jax, jax.numpy as jnp
            >>> p = FlatProblem(lambda v, c: jnp.sum(c * v ** 4))
            >>> apply, operands = p.hvp_operator(jnp.ones(2), 2.0)
            >>> jax.jit(jax.vmap(apply, in_axes=(None, 1), out_axes=1))(operands, jnp.eye(2))
            Array([[24.,  0.],
                   [ 0., 24.]], dtype=float64)
        """
        if jnp.size(s) <= LINEARISE_THRESHOLD:
            return (lambda operands, t: self.hvp(operands[0], t, *operands[1])), (s, args)
        return self._apply_linear, self._linearise(s, *args)


def minimise_matrix_free(problem: FlatProblem, v0, args=(), *, gtol: float = NK_GTOL,
                         max_steps: int = 200, escape=None,
                         initial_radius: float | None = None,
                         method: str = "trust-ncg", max_hvps: int | None = None,
                         max_cg: int = CG_MAX_ITERATIONS, factors=None,
                         refactorise=None, refactorise_after: int | None = None,
                         lbfgs: int = 0) -> KrylovOutcome:
    """Minimise `problem` from v0 by trust-region Newton on HVPs.

    `method="trust-pcg"`: `_trust_region_pcg`, preconditioned by
    `problem`'s preconditioner (the identity unless given), with at most
    `max_cg` HVPs per inner solve; `"trust-ncg"` (default), `"trust-krylov"`:
    scipy's solvers (no preconditioner, no inner cap). With any method at most
    `max_hvps` HVPs are spent per call; a solve that runs out ends with status
    `max_steps` at its last accepted iterate. Where scipy's solvers stop
    on a round-off decrease ratio short of `gtol` (status `stalled`), the
    solve goes on with trust-pcg within what is left of both budgets. trust-pcg is not the
    default: on the 2-5-1 toy path (tests) it converges every step, but one of
    the first five δ steps ends on another critical point than the dense
    solver's (‖Δθ‖∞ = 0.15).

    **Arguments:**
    - `problem`: a `FlatProblem`; `args` its extra arguments.
    - `v0`: the start (flat, original variables).
    - `gtol`: converged when ‖∇L‖∞ ≤ `gtol`·max(1, L) in the original variables.
    - `max_steps`: the most trust-region iterations.
    - `escape(v) → bool`: checked at every accepted iterate; True stops the
      solve with status `escape`.
    - `initial_radius`: the first trust radius in the solver's variables
      (default ‖∇L‖₂-scaled Cauchy length, at most 1).
    - `factors` (trust-pcg only): preconditioner factors to use at every
      iteration instead of rebuilding them from `problem` (e.g. those of
      `gauss_newton_preconditioner`, built once for many iterations); or a
      function () → factors, called (and counted in `factorisations`) at
      the first iteration, so that a start which already meets `gtol`
      builds nothing.
    - `refactorise(v) → factors` (trust-pcg with `factors` only): called
      at the iterate reached (at the next iteration, so never where the
      solve then ends) the first time an inner solve runs out of its
      `max_cg` HVPs; its factors replace `factors` (`matrix_free_paths`
      passes the Gauss–Newton matrix with the smaller damping
      `GN_DAMPING_NEAR`). With `refactorise_after`, also the first time an
      inner solve spends that many HVPs or more, whatever ends it. Called
      again at each later such solve that follows a shorter one since the
      last call (the factors went stale), never twice in a row: on the
      Fig. 3 δ = 0 solve after the run-off the second call took the solve
      from 3,346 HVPs and 2 factorisations to 2,001 and 3 (BENCHMARKS.md,
      "The permutation point after a run-off").
    - `lbfgs` (trust-pcg with `factors` and `refactorise` only): at most
      this many iterations of L-BFGS preconditioned by those factors
      (`_lbfgs_gn`) before the trust region, which then starts with
      `refactorise`'s factors at the point reached. For a start far from a
      minimum in a long, curved valley, where trust-region steps are held
      short by the model's error: on the Fig. 3 δ = 0 solve from the merged
      θ* the trust region alone took 64 iterations (BENCHMARKS.md, "An
      L-BFGS phase preconditioned by the Gauss–Newton factors"). Counted
      in `lbfgs`, `gradients` and `factorisations`, not in `steps`.

    **Returns:** a `KrylovOutcome`.

    Example:
        >>> import jax.numpy as jnp
        >>> p = FlatProblem(lambda v: jnp.sum((v - 1.0) ** 2) + jnp.sum(v ** 4))
        >>> r = minimise_matrix_free(p, jnp.zeros(3))
        >>> r.status, bool(r.grad_norm <= 1e-8)
        ('converged', True)
    """
    from scipy.optimize import minimize

    check_tolerance(gtol, "gtol")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps: must be a positive integer, got {max_steps!r}")
    check_hvp_budget(max_hvps)
    if refactorise_after is not None and (isinstance(refactorise_after, bool) or not isinstance(
            refactorise_after, (int, np.integer)) or refactorise_after < 1):
        raise ValueError(f"refactorise_after: must be a positive integer or None, got {refactorise_after!r}")
    if method not in KRYLOV_METHODS:
        raise ValueError(f"method: unknown method {method!r}; choose one of {', '.join(KRYLOV_METHODS)}")
    if isinstance(lbfgs, bool) or not isinstance(lbfgs, (int, np.integer)) or lbfgs < 0:
        raise ValueError(f"lbfgs: must be a non-negative integer, got {lbfgs!r}")
    if lbfgs and (method != "trust-pcg" or not callable(factors) or refactorise is None):
        raise ValueError("lbfgs: the L-BFGS phase is preconditioned by the trust region's factors, so it needs "
                         "method='trust-pcg', factors given as a function and refactorise")
    t0 = time.perf_counter()
    counts = {"hvps": 0, "gradients": 0, "steps": 0, "factorisations": 0}
    budget = np.inf if max_hvps is None else int(max_hvps)
    cache = {}
    state = {"status": None}

    def evaluate(s):
        key = s.tobytes()
        if key not in cache:
            f, gs, gv = problem.value_grads(s, *args)  # numpy into jit: no eager jnp.asarray per call
            counts["gradients"] += 1
            if len(cache) > 4:
                cache.clear()
            cache[key] = (float(f), np.asarray(gs), float(jnp.max(jnp.abs(gv))))
        return cache[key]

    def fun(s):
        f, gs, _ = evaluate(s)
        if not np.isfinite(f) or not np.all(np.isfinite(gs)):
            state["status"] = "diverged"
            raise _Stop
        return f, gs

    linear = {}  # scipy asks for all HVPs of an inner solve at one point: linearise there once

    def hessp(s, t):
        if counts["hvps"] >= budget:  # the step keeps the last accepted iterate
            state["status"] = "max_steps"
            raise _Stop
        counts["hvps"] += 1
        key = s.tobytes()
        if key not in linear:
            linear.clear()
            linear[key] = problem.hvp_at(jnp.asarray(s), *args)
        return np.asarray(linear[key](t))

    def done(s):
        f, _, gn = evaluate(s)
        if gn <= gtol * max(1.0, abs(f)):
            state["status"] = "converged"
            return True
        if escape is not None and escape(problem.to_v(jnp.asarray(s))):
            state["status"] = "escape"
            return True
        return False

    def callback(intermediate_result):
        counts["steps"] += 1
        s = np.asarray(intermediate_result.x)
        state["best"] = s
        if done(s):
            raise StopIteration

    s0 = np.asarray(problem.to_s(jnp.asarray(v0, dtype=jnp.float64)))
    phase = 0
    if lbfgs:
        s0, phase = _lbfgs_gn(problem, s0, args, evaluate, factors, refactorise, iterations=int(lbfgs),
                              gtol=gtol, escape=escape, counts=counts)
        v_phase = problem.to_v(jnp.asarray(s0))
        factors = lambda: refactorise(v_phase)  # fresh factors where the trust region starts, if it iterates
    if method == "trust-pcg":
        s, status = _trust_region_pcg(problem, s0, args, evaluate, gtol=gtol, max_steps=int(max_steps),
                                      escape=escape, max_hvps=budget, max_cg=int(max_cg),
                                      initial_radius=initial_radius, counts=counts, factors=factors,
                                      refactorise=refactorise, refactorise_after=refactorise_after)
        f, _, gn = evaluate(s)  # a cache hit when the loop evaluated s recently
        return KrylovOutcome(np.asarray(problem.to_v(jnp.asarray(s))), f, gn, status,
                             counts["steps"], counts["hvps"], counts["gradients"],
                             time.perf_counter() - t0, counts["factorisations"], lbfgs=phase)
    state["best"] = s0
    if not done(s0):
        f0, g0, _ = evaluate(s0)
        radius = initial_radius
        if radius is None:
            gg = float(g0 @ g0)
            curv = float(g0 @ hessp(s0, g0))
            radius = min(1.0, gg ** 0.5 / curv * gg ** 0.5) if curv > 0 else 1.0
            radius = max(radius, 1e-12)
        try:
            with warnings.catch_warnings():  # trlib warns on NaN steps; fun() reports them
                warnings.simplefilter("ignore", RuntimeWarning)
                res = minimize(fun, s0, jac=True, hessp=hessp, method=method,
                               callback=callback,
                               options={"gtol": 1e-300, "maxiter": int(max_steps),
                                        "initial_trust_radius": radius, "max_trust_radius": 1e3})
            state["best"] = np.asarray(res.x)
            if state["status"] is None:
                state["status"] = "max_steps" if res.status == 1 else "stalled"
        except _Stop:
            pass
    s = state["best"]
    f, _, gn = evaluate(s)
    status = state["status"] or "converged"
    if status == "converged" and not gn <= gtol * max(1.0, abs(f)):  # never claim what was not reached
        status = "stalled"
    if status == "stalled" and counts["steps"] < max_steps and counts["hvps"] < budget:
        # scipy stops once its ratio of actual to predicted decrease is round-off ("A bad approximation
        # caused failure to predict improvement"), which near a minimum with L ≫ ‖∇L‖² comes before gtol;
        # `_trust_region_pcg` judges such steps by the gradient instead and goes on, within what is left
        # of both budgets (softplus toy, seed 6, δ step 10 at gtol 1e-10: trust-ncg stopped at 9.7e−10).
        s, status = _trust_region_pcg(problem, s, args, evaluate, gtol=gtol, max_steps=int(max_steps),
                                      escape=escape, max_hvps=budget, max_cg=int(max_cg),
                                      initial_radius=None, counts=counts)
        f, _, gn = evaluate(s)
    return KrylovOutcome(np.asarray(problem.to_v(jnp.asarray(s))), f, gn, status, counts["steps"],
                         counts["hvps"], counts["gradients"], time.perf_counter() - t0)


# --- preconditioned Steihaug–Toint trust region -------------------------------------


def _steihaug_pcg(hvp, g, precond, radius, eta, max_iter):
    """Approximately minimise gᵀp + ½pᵀHp over ‖p‖_M ≤ `radius` by preconditioned CG.

    Steihaug (1983) / Toint (1981) truncated CG with the trust region in
    the preconditioner's norm ‖p‖_M² = pᵀMp (Conn, Gould & Toint 2000,
    Alg. 7.5.1; Nocedal & Wright 2006, Alg. 7.2): `precond(r)` applies M⁻¹.
    The norms ‖p‖_M, pᵀMd, ‖d‖_M are updated by their recurrences, so M
    itself is never applied. Stops at negative curvature or the boundary
    (step to the boundary), at ‖r‖_{M⁻¹} ≤ `eta`·‖g‖_{M⁻¹} (inexact Newton
    forcing), or after `max_iter` HVPs. **Returns:** (p, ‖p‖_M, hvps, reason).
    """
    p = np.zeros_like(g)
    r = g.copy()
    z = precond(r)
    rz = float(r @ z)
    if not rz > 0.0:
        return p, 0.0, 0, "zero"
    d = -z
    pMp, pMd, dMd = 0.0, 0.0, rz
    target = eta * np.sqrt(rz)
    hvps = 0

    def to_boundary():
        tau = (-pMd + np.sqrt(max(pMd * pMd + dMd * (radius * radius - pMp), 0.0))) / dMd
        return p + tau * d, radius

    for _ in range(max_iter):
        Hd = hvp(d)
        hvps += 1
        kappa = float(d @ Hd)
        if not np.isfinite(kappa):
            return p, np.sqrt(pMp), hvps, "nonfinite"
        if kappa <= 0.0:
            q, n = to_boundary()
            return q, n, hvps, "negative"
        alpha = rz / kappa
        pMp_new = pMp + 2.0 * alpha * pMd + alpha * alpha * dMd
        if pMp_new >= radius * radius:
            q, n = to_boundary()
            return q, n, hvps, "boundary"
        p = p + alpha * d
        r = r + alpha * Hd
        z = precond(r)
        rz_new = float(r @ z)
        pMp = pMp_new
        if np.sqrt(max(rz_new, 0.0)) <= target:
            return p, np.sqrt(pMp), hvps, "converged"
        beta = rz_new / rz
        pMd = beta * (pMd + alpha * dMd)
        dMd = rz_new + beta * beta * dMd
        d = -z + beta * d
        rz = rz_new
    return p, np.sqrt(pMp), hvps, "max_iter"


def _lbfgs_gn(problem, s0, args, evaluate, factors, refactorise, *, iterations, gtol, escape, counts):
    """L-BFGS whose initial inverse Hessian is the Gauss–Newton preconditioner; returns (s, iterations).

    The two-loop recursion (Nocedal & Wright 2006, Alg. 7.4) with H₀ =
    γ M̃⁻¹, γ = sᵀy / yᵀM̃⁻¹y of the newest pair (Alg. 7.5's scaling in M̃'s
    metric), `LBFGS_MEMORY` pairs, and a Wolfe line search (scipy's
    `line_search`, c₂ = 0.9). The factors (`factors()`, then
    `refactorise(v)` at the iterate every `LBFGS_REFACTORISE` iterations,
    dropping the pairs, which were scaled for the old metric) are counted in
    `counts["factorisations"]`. Each iteration costs one loss and gradient
    (more where the line search does not take the unit step; 393 for 360
    iterations on the Fig. 3 δ = 0 solve) and two applications of M̃⁻¹, no
    HVP. Stops at `iterations`, at
    ‖∇L‖∞ ≤ `gtol`·max(1, L), where `escape(v)` is true, or where the line
    search fails; the caller's trust region goes on from there.

    Hand-written because scipy's L-BFGS-B and optax's `lbfgs` take no
    preconditioner (their H₀ is a multiple of the identity), and a change of
    variables by the Cholesky factor would need its two triangular halves
    separately, where `gauss_newton_preconditioner` applies M̃⁻¹ as a whole.
    """
    from scipy.optimize import line_search

    s = np.asarray(s0)
    f, g, gn = evaluate(s)
    pairs, done, M = [], 0, None
    while done < iterations:
        if not (np.isfinite(f) and np.all(np.isfinite(g))) or gn <= gtol * max(1.0, abs(f)):
            break
        if escape is not None and escape(problem.to_v(jnp.asarray(s))):
            break
        if M is None or (done and done % LBFGS_REFACTORISE == 0):
            M = factors() if M is None else refactorise(problem.to_v(jnp.asarray(s)))
            counts["factorisations"] += 1
            pairs = []
        precond = lambda r: np.array(problem.apply_preconditioner(M, r))
        q, alphas = g.copy(), []
        for si, yi, rho in reversed(pairs):
            a = rho * (si @ q)
            alphas.append(a)
            q -= a * yi
        z = precond(q)
        if pairs:
            _, y_last, rho_last = pairs[-1]
            z *= 1.0 / (rho_last * float(y_last @ precond(y_last)))
        for (si, yi, rho), a in zip(pairs, reversed(alphas)):
            z += si * (a - rho * (yi @ z))
        if not float(g @ z) > 0.0:  # not a descent direction: restart from M̃⁻¹g
            pairs, z = [], precond(g)
        with warnings.catch_warnings():  # line_search warns where it fails; that ends the phase
            warnings.simplefilter("ignore")
            step = line_search(lambda u: evaluate(u)[0], lambda u: evaluate(u)[1], s, -z, g, f, c2=0.9,
                               maxiter=20)[0]
        if step is None:
            break
        s_new = s - step * z
        f_new, g_new, gn = evaluate(s_new)
        ds, dg = s_new - s, g_new - g
        if float(dg @ ds) > 0.0:
            pairs = (pairs + [(ds, dg, 1.0 / float(dg @ ds))])[-LBFGS_MEMORY:]
        s, f, g = s_new, f_new, g_new
        done += 1
    return s, done


class _Replayed:
    """A deterministic linear operator that remembers its products at one point.

    After a rejected trust-region step the next inner solve starts from the
    same point, gradient and preconditioner with a smaller radius, so its CG
    iterates are the ones before, bitwise, until the new boundary: their
    products (HVPs, preconditioner solves) are looked up, not computed again,
    and the solve's result is the one a recomputation would give. Keyed by
    the argument's bytes; `computed` counts the products actually computed.
    """

    def __init__(self, apply):
        self.apply, self.seen, self.computed = apply, {}, 0

    def __call__(self, t):
        key = t.tobytes()
        if key not in self.seen:
            self.seen[key] = self.apply(t)
            self.computed += 1
        return self.seen[key]


def _trust_region_pcg(problem, s0, args, evaluate, *, gtol, max_steps, escape, max_hvps, max_cg,
                      initial_radius, counts, factors=None, refactorise=None, refactorise_after=None):
    """Trust-region Newton with preconditioned Steihaug–Toint CG steps; returns (s, status).

    `evaluate(s)` → (L, ∇_s L, ‖∇_v L‖∞) is `minimise_matrix_free`'s cached,
    counted evaluation.

    A hand-written loop because no available library combines what the
    fixed-δ problems need: scipy's `trust-ncg` and `trust-krylov` take no
    preconditioner and do not cap the inner iterations (on a 784-10-10-10
    δ step one outer iteration ran hundreds of HVPs), and optimistix/lineax
    (CG with a preconditioner, but no negative-curvature or trust-region
    exit) are not dependencies. The preconditioner (`problem.preconditioner`,
    e.g. `kfac_preconditioner`) is rebuilt at every outer iteration unless
    `factors` are given (then those are used throughout, built by the first
    iteration if `factors` is a function, until the first
    inner solve that runs out of `max_cg` HVPs, or that spends
    `refactorise_after` or more, where `refactorise(v)`, if
    given, replaces them at the iterate reached, at the top of the next
    iteration (none where the convergence, escape or budget test ends the
    solve there: on the Fig. 3 path step 16 built one after its last step
    before this rule); and again at each later
    such solve that follows a shorter one since, i.e. factors that went
    stale, not ones that never resolved the curvature, so a run of long
    solves costs one factorisation); the trust
    region is measured in its norm, so the radius is scale-free.
    Acceptance and radius updates follow Conn, Gould & Toint (2000, Alg. 6.1.1)
    with η₁ = 1e−4, η₂ = 0.75; the forcing term (CG stops at ‖r‖_{M⁻¹} ≤ η‖g‖_{M⁻¹}) is
    η = min(`CG_FORCING`, (‖g‖_{M⁻¹}/‖g₀‖_{M⁻¹})^½), g₀ the gradient at the solve's first
    iteration in its first factors' norm: superlinear as g → 0 (Nocedal & Wright 2006,
    Thm. 7.2), and relative, so the same for any scale of the loss. The absolute
    min(0.5, √‖g‖_{M⁻¹}) of the library before asked the Fig. 3 steps, whose loss is of order
    1e−4, for inner solves to about 1e−2 from their first iteration: that path took 3,194
    HVPs and 28 factorisations against 2,506 and 27 now (BENCHMARKS.md, "A refactorisation
    only where the solve goes on").
    The trial point of a step p is s + p, or `problem.retract(s, p)` where
    the problem has one (`path_problem(retract=True)`); the model's
    predicted decrease is that of p either way.
    """
    s = np.asarray(s0)
    f, g, gn = evaluate(s)
    radius = initial_radius
    lagged = factors
    stale = True  # may the next long inner solve refactorise: first, and after a short one since
    pending = False  # a refactorisation decided, made at the next iteration if the solve goes on
    gnorm0 = None  # ‖g‖_{M⁻¹} at the first iteration, for the relative forcing term
    operators = None  # (hvp, precond) at s with the current factors, replaying their products (`_Replayed`)
    while True:
        if not (np.isfinite(f) and np.all(np.isfinite(g))):
            return s, "diverged"
        if gn <= gtol * max(1.0, abs(f)):
            return s, "converged"
        if escape is not None and escape(problem.to_v(jnp.asarray(s))):
            return s, "escape"
        if counts["steps"] >= max_steps or counts["hvps"] >= max_hvps:
            return s, "max_steps"
        counts["steps"] += 1
        s_now = jnp.asarray(s)
        if pending:  # refactorise at the current iterate (below)
            lagged = refactorise(problem.to_v(s_now))
            counts["factorisations"] += 1
            operators, pending = None, False
            radius = None  # the Cauchy length in the new norm
        if callable(lagged):  # built on first need (`minimise_matrix_free(factors=...)`)
            lagged = lagged()
            counts["factorisations"] += 1
        if operators is None:  # a new iterate or new factors
            factors = problem.build_preconditioner(s_now, *args) if lagged is None else lagged
            hvp_now = problem.hvp_at(s_now, *args)  # the primal passes once, then two data passes per HVP
            # numpy vectors go into the jitted products as they are: an eager jnp.asarray costs more than
            # a small problem's product
            operators = (_Replayed(lambda t, hvp_now=hvp_now: np.asarray(hvp_now(t))),
                         _Replayed(lambda r, factors=factors: np.asarray(
                             problem.apply_preconditioner(factors, r))))
        hvp, precond = operators
        done = hvp.computed
        if radius is None:  # the Cauchy step length in the M-norm, at most 1
            z = precond(g)
            gz = float(g @ z)
            curv = float(z @ hvp(z))
            radius = min(1.0, gz / curv * np.sqrt(gz)) if curv > 0 else 1.0
            radius = max(radius, 1e-12)
        gnorm = np.sqrt(max(float(g @ precond(g)), 0.0))
        gnorm0 = gnorm if gnorm0 is None else gnorm0
        eta = min(CG_FORCING, np.sqrt(gnorm / gnorm0)) if gnorm0 > 0 else CG_FORCING
        budget = max(1, min(max_cg, max_hvps - counts["hvps"]))
        p, pnorm, used, reason = _steihaug_pcg(hvp, g, precond, radius, eta, budget)
        Hp = hvp(p)  # the model's predicted decrease needs pᵀHp (one more HVP, exact)
        counts["hvps"] += hvp.computed - done  # those replayed after a rejected step are not computed again
        predicted = -(float(g @ p) + 0.5 * float(p @ Hp))
        s_new = s + p
        if problem.retract is not None:  # a curved trial point (`path_problem(retract=True)`)
            curved = np.asarray(problem.retract(s_now, jnp.asarray(p)))
            s_new = curved if np.all(np.isfinite(curved)) else s_new  # a zero neuron has no log-scale
        f_new, g_new, gn_new = evaluate(s_new)
        actual = f - f_new
        if not np.isfinite(f_new):
            rho = -np.inf
        elif abs(actual) <= 1e3 * EPS * max(abs(f), 1e-300) and predicted <= 1e3 * EPS * abs(f):
            # Decreases at round-off level: judge the step by the gradient instead.
            rho = 1.0 if np.linalg.norm(g_new) < np.linalg.norm(g) else 0.0
        else:
            rho = actual / predicted if predicted > 0 else -np.inf
        if rho < 0.25:
            radius = 0.25 * pnorm if pnorm > 0 else 0.25 * radius
        elif rho > 0.75 and reason in ("boundary", "negative"):
            radius = min(2.0 * radius, 1e6)
        if rho > 1e-4:
            s, f, g, gn = s_new, f_new, g_new, gn_new
            operators = None
        elif radius < 1e-14 * max(1.0, np.linalg.norm(s)):
            return s, "stalled"
        long = (reason == "max_iter" and used == max_cg) or (refactorise_after is not None and used >= refactorise_after)
        if long and stale and refactorise is not None and lagged is not None:
            # The preconditioner no longer resolves the curvature: near a minimum of the fixed-δ
            # problem the damping GN_DAMPING hides its small eigenvalues (BENCHMARKS.md, issue 10).
            # Built at the top of the next iteration, after the tests, so not for a point that ends the solve.
            pending = True
            stale = False
        elif not long:
            stale = True  # the factors resolved this solve; a later long one means they went stale


REFINE_FORCING = 0.1  # the largest relative residual of `refine_matrix_free`'s MINRES solves (its docstring)
REFINE_RTOL = 1e-12  # and the smallest


def refine_matrix_free(problem: FlatProblem, v0, args=(), *, gtol: float = NK_GTOL,
                       max_steps: int = 20, minres_steps: int = 500,
                       max_hvps: int | None = None) -> KrylovOutcome:
    """Take a point near a critical point (saddle or minimum) to ‖∇L‖∞ ≤ `gtol`·max(1, L).

    Newton–MINRES on ∇L = 0: p solves H p = −g by MINRES (symmetric,
    indefinite and singular H allowed; for consistent singular systems it
    returns the minimum-norm step), then p, p/2, … until ‖∇L‖₂ drops.
    Matrix-free counterpart of `symland.refine_critical_point`. The solves
    are inexact (Eisenstat & Walker 1996): MINRES stops at relative residual
    η = min(`REFINE_FORCING`, ‖g‖/‖g₀‖), at least `REFINE_RTOL`, which is
    O(‖g‖) and so keeps Newton's quadratic convergence near a non-degenerate
    point. Far from one, a solve to 1e−12 buys nothing: at the merged points
    of unconverged 3-4-3-2 paths (`benchmarks/bench_refine.py`) it spent
    about 200 HVPs per step on near-singular systems, whose long steps the
    halving then cut back, where η took 2–5 HVPs per step and ended at a
    smaller ‖∇L‖∞ (BENCHMARKS.md, "Test-suite time", thirtieth session).

    At most `max_hvps` HVPs are spent (default: no limit beyond
    `max_steps`·`minres_steps`); a refinement that runs out reports
    `max_steps` at its last accepted point.

    **Returns:** a `KrylovOutcome`; status `converged`, `max_steps` or `stalled`.

    Example:
        >>> import jax.numpy as jnp
        >>> p = FlatProblem(lambda v: v[0] ** 2 - v[1] ** 2 + v[0] ** 3)
        >>> r = refine_matrix_free(p, jnp.array([0.1, -0.05]))
        >>> r.status, bool(r.grad_norm <= 1e-8)
        ('converged', True)
    """
    from scipy.sparse.linalg import LinearOperator, minres

    check_tolerance(gtol, "gtol")
    check_hvp_budget(max_hvps)
    budget = np.inf if max_hvps is None else int(max_hvps)
    t0 = time.perf_counter()
    counts = {"hvps": 0, "gradients": 0}
    s = np.asarray(problem.to_s(jnp.asarray(v0, dtype=jnp.float64)))

    def evaluate(s):
        f, gs, gv = problem.value_grads(s, *args)
        counts["gradients"] += 1
        return float(f), np.asarray(gs), float(jnp.max(jnp.abs(gv)))

    f, g, gn = evaluate(s)
    g0 = max(float(np.linalg.norm(g)), np.finfo(np.float64).tiny)
    status, steps = None, 0
    n = s.size
    while status is None:
        if not np.isfinite(f):
            status = "diverged"
            break
        if gn <= gtol * max(1.0, abs(f)):
            status = "converged"
            break
        if steps >= max_steps:
            status = "max_steps"
            break
        steps += 1
        hvp_now = problem.hvp_at(jnp.asarray(s), *args)

        def mv(t, hvp_now=hvp_now):
            if counts["hvps"] >= budget:
                raise _Stop
            counts["hvps"] += 1
            return np.asarray(hvp_now(np.ravel(t)))

        try:
            p, _ = minres(LinearOperator((n, n), matvec=mv, dtype=np.float64), -g,
                          rtol=max(REFINE_RTOL, min(REFINE_FORCING, float(np.linalg.norm(g)) / g0)),
                          maxiter=minres_steps)
        except _Stop:
            status = "max_steps"
            break
        alpha, improved = 1.0, False
        for _ in range(30):
            f_new, g_new, gn_new = evaluate(s + alpha * p)
            if np.isfinite(f_new) and np.linalg.norm(g_new) < np.linalg.norm(g):
                s, f, g, gn, improved = s + alpha * p, f_new, g_new, gn_new, True
                break
            alpha *= 0.5
        if not improved:
            status = "stalled"
    return KrylovOutcome(np.asarray(problem.to_v(jnp.asarray(s))), f, gn, status, steps,
                         counts["hvps"], counts["gradients"], time.perf_counter() - t0)


# --- the permutation path, matrix-free ---------------------------------------------

WHITENING_RIDGE = 1e-6  # P = (C + ridge·λ_max(C)·I)^(−1/2); any invertible P is an exact change of variables


def _input_moments(x):
    """The eigenvalues and eigenvectors of C = x̃ᵀx̃/T, x̃ = (x, 1) (float64), ascending."""
    x = np.asarray(x, dtype=np.float64)
    xt = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    return np.linalg.eigh(xt.T @ xt / x.shape[0])


def dark_input_directions(x) -> np.ndarray:
    """The input directions without energy: eigenvectors of C = x̃ᵀx̃/T, x̃ = (x, 1), whose eigenvalue
    is at most `DARK_RTOL` × the largest, as columns. Along each, every first-layer row sees nothing of
    the data, so the loss is exactly flat there (n₁ directions of θ per column)."""
    lam_x, Q_x = _input_moments(x)
    return Q_x[:, lam_x <= DARK_RTOL * lam_x.max()]


def input_whitening(x, ridge: float = WHITENING_RIDGE):
    """(P, P⁻¹) with P = (C + ridge·λ_max I)^(−1/2), C = x̃ᵀx̃/T, x̃ = (x, 1): the preconditioner.

    Writing the first layer's rows as ϑ = ϑ̃ P makes its pre-activations
    x̃ϑᵀ = (x̃P)ϑ̃ᵀ, i.e. the solver sees whitened inputs. The loss is
    unchanged (P is invertible); only the Krylov solver's conditioning is.
    """
    lam, Q = _input_moments(x)
    lam = np.maximum(lam, 0.0) + ridge * max(lam.max(), 1e-300)
    return (Q * lam ** -0.5) @ Q.T, (Q * lam ** 0.5) @ Q.T


def _first_layer_map(model, P):
    """The flat linear map v ↦ v with layer 1's rows (W_i, b_i) multiplied by P (symmetric)."""
    n1, n0 = model.widths[1], model.widths[0]
    nw = n1 * n0
    P = jnp.asarray(P)

    def M(v):
        if not model.bias:
            return jnp.concatenate([(v[:nw].reshape(n1, n0) @ P).ravel(), v[nw:]])
        rows = jnp.concatenate([v[:nw].reshape(n1, n0), v[nw:nw + n1, None]], axis=1) @ P
        return jnp.concatenate([rows[:, :n0].ravel(), rows[:, n0], v[nw + n1:]])

    return M


# λ = KFAC_DAMPING · (mean diagonal of the Kronecker-factored Gauss–Newton matrix). Measured: with
# 1e-4 the 2-5-1 softplus toy path (tests) stalls at max_steps in 2 of 12 δ steps (the M-norm trust
# region is too long along directions of small Gauss–Newton but negative Hessian curvature); 0.1
# converges them all; on the 784-10-10-10 first δ step 0.1 costs 4,296 HVPs per 30 iterations
# (BENCHMARKS.md, issue 10).
KFAC_DAMPING = 0.1


def _output_jacobians(theta, x, act, dact, n_out):
    """Forward and backward pass of θ on x: (inputs ã_k with a bias 1, pre-activations z_k, J_k).

    J_k[μ] = ∂f(x_μ)/∂z_k (n_out × n_k), by J_k = J_{k+1} W_{k+1} diag(g'(z_k))
    from J_d = I. Shared by the Kronecker-factored and the exact
    Gauss–Newton preconditioners.
    """
    d, T = len(theta), x.shape[0]
    ins, zs, h = [], [], x
    for k, (W, b) in enumerate(theta, start=1):
        ins.append(jnp.concatenate([h, jnp.ones((T, 1))], axis=1))
        z = h @ W.T + b
        zs.append(z)
        h = act(z) if k < d else z
    J = jnp.broadcast_to(jnp.eye(n_out), (T, n_out, n_out))
    Js = [None] * d
    Js[d - 1] = J
    for k in range(d - 1, 0, -1):
        J = (J @ theta[k][0]) * dact(zs[k - 1])[:, None, :]
        Js[k - 1] = J
    return ins, zs, Js


def kfac_preconditioner(model, layer: int, kind: str, x, P=None, *,
                        damping: float = KFAC_DAMPING, gauge=None):
    """An eigenvalue-corrected Kronecker-factored Gauss–Newton preconditioner for `path_problem`.

    K-FAC (Martens & Grosse 2015) approximates the Gauss–Newton block of
    layer k, Σ_μ Jₖ,μᵀJₖ,μ ⊗ ãₖ₋₁,μãₖ₋₁,μᵀ (Jₖ,μ the output Jacobian with
    respect to layer k's pre-activations, ã its input with a bias 1), by
    Gₖ ⊗ Aₖ with Gₖ = E[JᵀJ], Aₖ = E[ããᵀ]; EKFAC (George et al. 2018)
    keeps the eigenbases Q_G ⊗ Q_A and replaces the Kronecker eigenvalues by
    the exact diagonal of the Gauss–Newton block in that basis,
    Dₖ[i, j] = E[Σ_o (JQ_G)²_oi (ãQ_A)²_j] (one matrix product). The inverse
    (Q_G ⊗ Q_A)(D + λ)⁻¹(Q_G ⊗ Q_A)ᵀ costs two small matrix products per
    layer, so M⁻¹ is exact for the approximation and SPD (λ > 0). Layer 1
    sees the solver's inputs x̃P (`input_whitening`), whose eigenbasis is
    fixed and computed once. In the split layer the free row l moves both
    pre-activations l and m and the direction u moves m by δ/‖u‖ (the
    reparametrisation of `symland._path.effective_params`), so Jₖ is
    multiplied by S = I + e_m e_lᵀ + (δ/‖u‖ − 1) e_m e_mᵀ; the radial
    direction of u (a flat one) is left to the damping. With an `UpstreamGauge`
    the factors are built at the gauge's θ, but S keeps the paper's
    reparametrisation (the per-entry weights d of ϑ_m are left out): an
    approximation, which costs iterations, never accuracy.

    **Returns:** `(build, apply, data)` for `FlatProblem(preconditioner=...)`:
    `build(v, data, δ, l, m, x, y)` → factors, `apply(factors, r)` → M⁻¹r.
    """
    from jax.flatten_util import ravel_pytree

    from ._network import ACTIVATIONS
    from ._path import effective_params

    check_tolerance(damping, "damping")
    if not model.bias:
        raise ValueError("kfac_preconditioner: networks without bias are not supported")
    x = np.asarray(x, dtype=np.float64)
    xt = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    if P is not None:
        xt = xt @ np.asarray(P)
    _, QA1 = np.linalg.eigh(xt.T @ xt / x.shape[0])
    data = {"QA1": jnp.asarray(QA1), "U1sq": jnp.asarray((xt @ QA1) ** 2)}
    unravel = ravel_pytree(model.init(jax.random.PRNGKey(0)))[1]
    act = ACTIVATIONS[model.activation]
    dact = jax.grad(lambda z: jnp.sum(act(z)))
    widths, d = model.widths, model.depth

    def build(v, data, delta, l, m, x, y):
        theta = effective_params(unravel(v), layer, l, m, delta, gauge)
        T = x.shape[0]
        c = 2.0 / T if kind == "mse" else 2.0 / (T * jnp.mean(y * y))
        ins, _, Js = _output_jacobians(theta, x, act, dact, widths[d])
        Wf, bf = unravel(v)[layer - 1]
        unorm = jnp.sqrt(jnp.sum(Wf[m] ** 2) + bf[m] ** 2)
        S = jnp.eye(widths[layer]).at[m, l].set(1.0).at[m, m].set(delta / unorm)
        Js[layer - 1] = Js[layer - 1] @ S
        factors = []
        for k in range(d):
            J = Js[k]
            lamG, QG = jnp.linalg.eigh(c * jnp.einsum("toi,toj->ij", J, J))
            if k == 0:
                QA, Usq = data["QA1"], data["U1sq"]
            else:
                _, QA = jnp.linalg.eigh(ins[k].T @ ins[k] / T)
                Usq = (ins[k] @ QA) ** 2
            D = c * jnp.einsum("ti,tj->ij", jnp.sum((J @ QG) ** 2, axis=1), Usq)
            factors.append([QG, QA, D])
        n = sum(f[2].size for f in factors)
        lam = damping * sum(jnp.sum(f[2]) for f in factors) / n
        return [(QG, QA, D + lam) for QG, QA, D in factors]

    def apply(factors, r):
        out, start = [], 0
        for k, (QG, QA, Dl) in enumerate(factors, start=1):
            n_out, n_in = widths[k], widths[k - 1]
            Wr = r[start:start + n_out * n_in].reshape(n_out, n_in)
            br = r[start + n_out * n_in:start + n_out * (n_in + 1)]
            V = jnp.concatenate([Wr, br[:, None]], axis=1)
            Z = QG @ ((QG.T @ V @ QA) / Dl) @ QA.T
            out += [Z[:, :n_in].ravel(), Z[:, n_in]]
            start += n_out * (n_in + 1)
        return jnp.concatenate(out)

    return build, apply, data


# λ = GN_DAMPING · (mean diagonal of the Gauss–Newton matrix). Measured (BENCHMARKS.md, issue 10): on
# the first Fashion-MNIST δ step (30 iterations) 0.1 reaches ‖∇L‖∞ 1.7e-7 where 1e-6 stops at 2.2e-4
# (its trust region, in the preconditioner's norm, keeps the steps short); on the toy path 1e-6 failed
# 7 of 13 steps.
GN_DAMPING = 0.1
# An input direction whose eigenvalue of E[x̃x̃ᵀ] is at most this fraction of the largest has no energy:
# the loss is exactly flat along first-layer weights in it (after `project_inputs`, 21 such directions on
# 10,000 Fashion-MNIST images, at ≈ 1e−20 of the largest), and `gauss_newton_preconditioner` keeps out of it.
DARK_RTOL = 1e-12
# Near a minimum that damping hides the small eigenvalues and every inner solve runs out of its
# CG_MAX_ITERATIONS; `matrix_free_paths(solver="trust-gn")` then refactorises once with this λ factor
# (and, once the path has it, refactorises with it again, at the iterate, when a step's inner solve
# runs out).
# First Fashion-MNIST δ step: converged in 1,467 HVPs and 120 s at 1e-4 (refactorised at iteration
# 30), against 9,649 HVPs and 534 s at 0.1 throughout. Steps 2–4 of the path: 235–310 HVPs each at
# 1e-6 against 501–701 at 1e-4 (BENCHMARKS.md, issue 10).
GN_DAMPING_NEAR = 1e-6
# ... and an inner solve of this many HVPs already refactorises (`minimise_matrix_free(refactorise_after=...)`),
# once per δ step: with factors at GN_DAMPING it switches to GN_DAMPING_NEAR (on the Fig. 3 path step 1's
# last inner solves at 0.1 spent 220, 179, 77, 246 and 250 HVPs before the switch, after which it
# converged in 8; BENCHMARKS.md, "Continuation sub-steps"); with GN_DAMPING_NEAR already, it builds
# them again at the current iterate (steps 16–18: 1,583 HVPs against 2,627 when only a solve that
# ran out did; BENCHMARKS.md, "Predictions along the rescaling orbits").
GN_SWITCH_HVPS = 125


# Rows per panel of `cholesky_panels`. `python benchmarks/bench_gn_apply.py` (n = 8,070, float32, Intel
# Xeon, 2 cores): the panel solve in 12.3 ms with panels of 512 or 1,024 rows, 13.5 ms with 2,048;
# the library's `apply` 11.7 ms against 24.1 ms for two BLAS `strsv` (BENCHMARKS.md, issue 10).
GN_PANEL = 1024
# With `single`, layer 1's block of M̃ (nearly all of n) is factorised in float32 (LAPACK spotrf) and
# the Schur complement of the other layers' block in float64 (`gauss_newton_preconditioner`).
# `benchmarks/bench_gn_apply.py --factorise 4 --mixed both` (AMD EPYC, 2 cores): spotrf 1.24 s, strtrs
# 0.13 s and the Schur complement's dpotrf 0.02 s against dpotrf's 3.23 s, a factorisation 8.67 s against
# 10.34 s; the path's steps 0–15 took 899 HVPs against 918 (BENCHMARKS.md, "A mixed-precision factorisation").
GN_MIXED = True


class CholeskyPanels(typing.NamedTuple):
    """A Cholesky factor L (M̃ = LLᵀ) cut into row panels, for `cholesky_panel_solve` (a pytree).

    Panel k holds rows i₀:i₁ of L: `panels[k]` = L[i₀:i₁, :i₀], the part left
    of its diagonal block, and `inverses[k]` = L[i₀:i₁, i₀:i₁]⁻¹. `order`
    maps `gauss_newton_preconditioner`'s row-block coordinates to the flat
    parameters (the identity elsewhere).
    """

    panels: tuple
    inverses: tuple
    order: jax.Array

    @property
    def dtype(self):
        return self.inverses[0].dtype


def cholesky_panels(L, order=None, dtype=np.float64, panel: int | None = None) -> CholeskyPanels:
    """Cut the lower-triangular Cholesky factor `L` (n × n, float64) into `CholeskyPanels` of `dtype`.

    Only L's lower triangle is read (what LAPACK `potrf` leaves above the
    diagonal may stay). Each diagonal block is inverted in float64 (LAPACK
    `trtri`) before the cast, so that in float32 the inverse carries one
    rounding of its entries. `order` defaults to the identity, `panel` (rows
    per panel) to `GN_PANEL`.

    Example (M̃⁻¹r against a dense solve):
        >>> import numpy as np
        >>> A = np.random.default_rng(0).standard_normal((7, 7)); M = A @ A.T + np.eye(7)
        >>> F = cholesky_panels(np.linalg.cholesky(M), panel=3)
        >>> [p.shape for p in F.panels]
        [(3, 0), (3, 3), (1, 6)]
        >>> r = np.arange(7.0)
        >>> bool(np.allclose(cholesky_panel_solve(F, r), np.linalg.solve(M, r), rtol=1e-12, atol=0))
        True
    """
    n = L.shape[0]
    panel = GN_PANEL if panel is None else panel
    if isinstance(panel, bool) or not (isinstance(panel, (int, np.integer)) and panel >= 1):
        raise ValueError(f"panel: must be a positive number of rows, got {panel}")
    return _panels_of_rows(lambda i0, i1: L[i0:i1, :i1], [*range(0, n, panel), n], order, dtype)


def _panels_of_rows(rows, cuts, order, dtype) -> CholeskyPanels:
    """`CholeskyPanels` from `rows(i0, i1)` = L[i0:i1, :i1] (any float dtype; only its lower triangle is
    read), one panel per interval of `cuts` (0 = cuts[0] < … < cuts[−1] = n)."""
    import scipy.linalg

    panels, inverses = [], []
    for i0, i1 in zip(cuts[:-1], cuts[1:]):
        block = rows(i0, i1)
        D, info = scipy.linalg.lapack.dtrtri(np.tril(np.asarray(block[:, i0:i1], dtype=np.float64)), lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"cholesky_panels: L is singular (trtri info {info})")
        panels.append(jnp.asarray(np.ascontiguousarray(block[:, :i0], dtype=dtype)))
        inverses.append(jnp.asarray(D, dtype=dtype))
    return CholeskyPanels(tuple(panels), tuple(inverses),
                          jnp.arange(cuts[-1]) if order is None else jnp.asarray(order))


@jax.jit
def cholesky_panel_solve(factors: CholeskyPanels, r):
    """M̃⁻¹r = L⁻ᵀ(L⁻¹r) by panels: each step one product with a panel and one with a block inverse.

    Forward, y_k = L_kk⁻¹ (r_k − L_k,<k y_<k); backward, x_k = L_kk⁻ᵀ (y_k −
    Σ_{j>k} L_jkᵀ x_j), the sum gathered as each x_j is found (a product
    xⱼᵀ L_j,<j). So M̃⁻¹ is applied by matrix–vector products in XLA,
    on all its threads, reading L's lower triangle twice: a triangular
    solve is sequential (BLAS `trsv` runs on one thread, and XLA's own
    triangular solve is slower still), while the products
    are bound only by memory bandwidth. In float32 they read half the bytes.
    The operator is L̃⁻ᵀL̃⁻¹ for the L̃ whose diagonal blocks are the
    inverses' inverses, so it stays symmetric positive definite
    whatever their rounding. Example: `cholesky_panels`.
    """
    ys, start = [], 0
    for P, D in zip(factors.panels, factors.inverses):
        rk = r[start:start + D.shape[0]]
        if start:
            rk = rk - P @ jnp.concatenate(ys)
        ys.append(D @ rk)
        start += D.shape[0]
    xs, acc = [None] * len(ys), jnp.zeros_like(r)
    for k in reversed(range(len(ys))):
        P, D = factors.panels[k], factors.inverses[k]
        i0 = P.shape[1]
        xs[k] = (ys[k] - acc[i0:i0 + D.shape[0]]) @ D
        if i0:
            acc = acc.at[:i0].add(xs[k] @ P)
    return jnp.concatenate(xs)


def polarised_grams(X, A, pairs):
    """The weighted Grams Xᵀ diag(A[:, j, k]) X for each (j, k) of `pairs`, each by one BLAS `syrk`.

    A[t] must be positive semi-definite for every row t (as c J₁ᵀJ₁ per
    sample is in `_gauss_newton_blocks`). Then the weights a_jj and
    s_jk = a_jj + a_kk + 2a_jk = (e_j + e_k)ᵀA(e_j + e_k) are ≥ 0, each
    G(w) = Xᵀ diag(w) X = (√w ⊙ X)ᵀ(√w ⊙ X) is one symmetric rank-k product
    (`syrk`, which NumPy calls for YᵀY: half the flops of a general product),
    and by polarisation Xᵀ diag(a_jk) X = (G(s_jk) − α²G(a_jj) − G(a_kk)/α²)/2
    with s_jk = α²a_jj + a_kk/α² + 2a_jk = (αe_j + e_k/α)ᵀA(αe_j + e_k/α) ≥ 0.
    So the n(n + 1)/2 blocks of layer 1's Gauss–Newton matrix cost
    n(n + 1)/2 syrks, 1/2 of their products' flops (the upper block triangle
    of 4 column blocks, the library before: 5/8). Rounding: the error of an
    off-diagonal block is a few units of X's precision times
    α²G(a_jj) + G(a_kk)/α², the scale of the diagonal blocks beside it;
    α² = (Σ_t a_kk / Σ_t a_jj)^½ makes that ≈ 2(G(a_jj)G(a_kk))^½, which
    bounds the block itself (a_jk² ≤ a_jj a_kk), where units j and k have
    different scales (a neuron of layer 1 that has grown 10×). X's dtype
    (float32 or float64) is the blocks'. **Returns:** an array
    (len(`pairs`), w, w), w = X's width, each block full and symmetric.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X, J = rng.standard_normal((50, 7)), rng.standard_normal((50, 3, 2))
        >>> A = np.einsum("toj,tok->tjk", J, J)
        >>> B = polarised_grams(X, A, [(0, 0), (0, 1), (1, 1)])
        >>> bool(np.allclose(B[1], X.T @ (A[:, 0, 1][:, None] * X), rtol=1e-12, atol=1e-12))
        True
    """
    X, A = np.asarray(X), np.asarray(A)
    pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)
    if X.ndim != 2 or A.ndim != 3 or A.shape[0] != X.shape[0] or A.shape[1] != A.shape[2]:
        raise ValueError(f"A: must be (T, n, n) for X of (T, w), got A {A.shape} and X {X.shape}")
    Y = np.empty_like(X)

    def gram(w):  # Xᵀ diag(w) X, w ≥ 0 up to rounding
        np.multiply(X, np.sqrt(np.maximum(w, 0)).astype(X.dtype)[:, None], out=Y)
        return Y.T @ Y  # NumPy calls BLAS syrk for a product with its own transpose

    tiny = float(np.finfo(X.dtype).tiny)
    diagonal = {j: gram(A[:, j, j]) for j in np.unique(pairs)}
    out = np.empty((len(pairs), X.shape[1], X.shape[1]), X.dtype)
    for i, (j, k) in enumerate(pairs):
        if j == k:
            out[i] = diagonal[j]
        else:  # α² = (Σ a_kk / Σ a_jj)^½ balances the two units' scales (docstring)
            a2 = np.sqrt(max(float(np.sum(A[:, k, k])), tiny) / max(float(np.sum(A[:, j, j])), tiny))
            out[i] = gram(a2 * A[:, j, j] + A[:, k, k] / a2 + 2 * A[:, j, k])
            out[i] -= a2 * diagonal[j]
            out[i] -= diagonal[k] / a2
            out[i] *= 0.5
    return out


def _gauss_newton_blocks(model, layer: int, kind: str, single: bool = False, gauge=None):
    """A function (v, δ, l, m, x, y, x̃P, P) → the blocks of the exact Gauss–Newton matrix (numpy arrays).

    Jitted but for layer 1's symmetric blocks (split layer ≥ 2), which numpy forms from the
    weights that XLA returns (`polarised_grams`).

    G = c JᵀJ (c = 2/T for `mse`, 2/(T⟨y²⟩) for `nmse`; J the Jacobian of
    the outputs with respect to the free parameters in the solver's
    variables) in row-block order: layer 1's rows (W₁[j, :], b₁[j]) first,
    then the flat free parameters of layers ≥ 2. Layer 1's Jacobian is
    J₁,μ ⊗ x̃_μ (J₁,μ = ∂f/∂z₁, x̃ = (x, 1)P), so its block (j, j') is
    x̃ᵀ diag(a_jj') x̃ with a_jj',μ = c Σ_o J₁,μ[o, j] J₁,μ[o, j'], one matrix
    product per pair j ≤ j' instead of one per sample; with split layer ≥ 2
    each such block is symmetric and A_μ = (a_jj',μ) positive semi-definite,
    so they are formed outside XLA by `polarised_grams`, one BLAS `syrk` each
    (1/2 of the products' flops). When the split layer
    is 1, ϑ_l moves both z_l and z_m (column l of J₁ becomes J₁[:, l] +
    J₁[:, m]) and row m's input is x̃ ∂ϑ_m/∂ũ = δ/‖u‖ x̃(I − ûûᵀ)P (u = Pũ
    in the whitened variables), so the matrix is exact for every layer.
    With `single` the layer-1 blocks, which are nearly all of the work
    (n₁(n₁+1)/2 products of T × (n₀+1) matrices), are multiplied and
    returned in float32 (the other blocks in float64): the matrix is only a preconditioner, and at
    784-10-10-10 on 10,000 samples the blocks then took 5.2 s against 12.6 s,
    and by `polarised_grams` 2.68 s against XLA's 3.53 s for the upper block
    triangles (`benchmarks/bench_gn_apply.py --blocks`, BENCHMARKS.md).
    With an `UpstreamGauge` (`symland._path.upstream_gauge`) and split layer 2,
    row m also depends on the scales d_j = (ϑ_jᵀCϑ_j)^½ of layer 1's neurons
    (ϑ_{m,j} = ϑ_{l,j} + δê_j/d_j, `symland._path.pair_distance`), so layer
    1's row j has a second Jacobian term, (J₂,μ[:, m] h_μj) ⊗ w_j with
    w_j = −δ ê_j P C ϑ_j / d_j³ (∂d_j/∂s_j = P C ϑ_j / d_j in the whitened
    variables): it enters each block (j, j')
    as x̃ᵀB w_j'ᵀ-type terms of rank ≤ 2 plus a multiple of w_j w_j'ᵀ, and
    row j of the cross block as w_j ⊗ (·), all from T × n₁² products, so the
    matrix stays exact. Without it the rescaling of a layer-1 neuron, nearly
    flat in this gauge, would look stiff to the preconditioner. For k ≥ 3,
    layer k − 1 ≥ 2 lies in the "rest" block, whose Jacobian is exact anyway.
    **Returns:** `(pairs, blocks)`; `blocks(...)` → (layer-1 blocks per
    pair, layer-1 × rest block, rest × rest block).
    """
    from jax.flatten_util import ravel_pytree

    from ._network import ACTIVATIONS
    from ._path import UpstreamGauge, effective_params

    unravel = ravel_pytree(model.init(jax.random.PRNGKey(0)))[1]
    act = ACTIVATIONS[model.activation]
    dact = jax.grad(lambda z: jnp.sum(act(z)))
    widths, d = model.widths, model.depth
    n_1 = widths[1]
    n1 = n_1 * (widths[0] + 1)
    pairs = np.array([(j, k) for j in range(n_1) for k in range(j, n_1)])

    @jax.jit
    def jitted(v, delta, l, m, x, y, xt, P):
        T = x.shape[0]
        c = 2.0 / T if kind == "mse" else 2.0 / (T * jnp.mean(y * y))
        theta = effective_params(unravel(v), layer, l, m, delta, gauge)
        _, zs, Js = _output_jacobians(theta, x, act, dact, widths[d])
        h1, J1 = act(zs[0]), Js[0]
        xm = xt
        if layer == 1:  # ϑ_l moves z_l and z_m; row m holds u, ϑ_m = ϑ_l + δ u/‖u‖ (u = P ũ)
            J1 = J1.at[:, :, l].add(J1[:, :, m])
            W, b = unravel(v)[0]
            u = jnp.concatenate([W[m], b[m][None]])
            uh = u / jnp.linalg.norm(u)
            xm = delta / jnp.linalg.norm(u) * (xt - ((x @ uh[:-1] + uh[-1])[:, None]) * (P @ uh)[None, :])
        low = jnp.float32 if single else xt.dtype
        xt_l, xm_l = xt.astype(low), xm.astype(low)
        X = lambda j: jnp.where(j == m, xm_l, xt_l) if layer == 1 else xt_l  # row j's input in ∂z_j
        A = c * jnp.einsum("toj,tok->tjk", J1, J1)
        A_l = A.astype(low)
        if layer == 1:  # blocks of row m are not symmetric: one product each, here
            product = lambda jk: (X(jk[0]) * A_l[:, jk[0], jk[1]][:, None]).T @ X(jk[1])
            B1 = jax.lax.map(product, jnp.asarray(pairs)).astype(low)
        else:  # each block x̃ᵀ diag(a_jk) x̃ is symmetric: by `polarised_grams` (syrk), from A, outside
            B1 = A_l
        v1 = v[:n1]

        def rest(vr):  # the outputs as a function of layers ≥ 2 (layer 1's outputs fixed)
            z = unravel(jnp.concatenate([v1, vr]))
            # layer 1 is a constant here: a symbolic zero tangent, not a zero matrix that XLA would
            # constant-fold through an UpstreamGauge's C (33 s of compilation at 784-10-10-10)
            z = [jax.tree_util.tree_map(jax.lax.stop_gradient, z[0]), *z[1:]]
            th = effective_params(z, layer, l, m, delta, gauge)
            h = h1
            for k in range(1, d):
                h = h @ th[k][0].T + th[k][1]
                h = act(h) if k < d - 1 else h
            return h

        Jr = jax.jacfwd(rest)(v[n1:])  # (T, n_d, n_rest)
        # in float64 even with `single`: in float32 the error of M̃⁻¹r at λ = 1e−6 on the 3-4-3-2 toy
        # (test_gauss_newton_preconditioner_keeps_out_of_dark_input_directions) rose from < 1e−2 to 3.2e−2
        # (BENCHMARKS.md, "Where the path's time goes"); the cross block C alone in float32, with the
        # mixed factor, from 1.1e−2 to 3.8e−2 (twenty-fifth session)
        K = jnp.einsum("toj,toa->tja", J1, Jr)
        C = c * jnp.einsum("ti,tja->jia", xt, K)
        if layer == 1:
            C = C.at[m].set(c * jnp.einsum("ti,ta->ia", xm, K[:, m]))
        if isinstance(gauge, UpstreamGauge) and layer == 2:  # row m's dependence on d_j (docstring)
            W1, b1 = unravel(v)[0]
            rows1 = jnp.concatenate([W1, b1[:, None]], axis=1)  # ϑ_j in v's variables, = s_j P
            CR = rows1 @ gauge.C
            d1 = jnp.sqrt(jnp.sum(CR * rows1, axis=1))
            W2, b2 = unravel(v)[1]
            u = jnp.concatenate([W2[m], b2[m][None]])
            e = (u / jnp.linalg.norm(u))[:n_1]
            w = (-delta * e / d1 ** 3)[:, None] * (CR @ P)  # ∂d_j/∂s_j = P C ϑ_j / d_j; P symmetric
            g = Js[1][:, :, m][:, :, None] * h1[:, None, :]  # ∂f/∂ϑ_{m,j} per sample: (T, n_d, n₁)
            XB = jnp.einsum("ti,tjk->jki", xt, c * jnp.einsum("toj,tok->tjk", J1, g))
            Cg = c * jnp.einsum("toj,tok->jk", g, g)
            C = C + w[:, :, None] * (c * jnp.einsum("toj,toa->ja", g, Jr))[:, None, :]
            extra = (XB, w, Cg)  # block (j, k) += XB[j, k] w_kᵀ + w_j XB[k, j]ᵀ + Cg[j, k] w_j w_kᵀ
        else:
            extra = None
        return B1, extra, C, c * jnp.einsum("toa,tob->ab", Jr, Jr)

    def blocks(v, delta, l, m, x, y, xt, P):
        B1, extra, C, Gr = jitted(v, delta, l, m, x, y, xt, P)
        if layer != 1:  # B1 holds A, in the blocks' dtype: the blocks by syrk (`polarised_grams`)
            B1 = polarised_grams(np.asarray(xt, dtype=B1.dtype), B1, pairs)
        if extra is not None:
            XB, w, Cg = (np.asarray(a) for a in extra)
            for i, (j, k) in enumerate(pairs):
                B1[i] += np.outer(XB[j, k], w[k]) + np.outer(w[j], XB[k, j]) + Cg[j, k] * np.outer(w[j], w[k])
        return np.asarray(B1), np.asarray(C), np.asarray(Gr)

    return pairs, blocks


def gauss_newton_preconditioner(model, layer: int, kind: str, x, P, *, damping: float = GN_DAMPING,
                                radial: bool = True, single: bool | None = None, gauge=None):
    """The exact Gauss–Newton matrix of the fixed-δ problem as a preconditioner, built from all samples.

    M̃ = G + λI with G = c JᵀJ the Gauss–Newton matrix in the solver's
    (whitened) variables (`_gauss_newton_blocks`) and λ = `damping` × its
    mean diagonal, plus (with `radial`) that mean diagonal along the
    direction in which only ‖u‖ changes: the loss does not depend on ‖u‖
    (ϑ_m = ϑ_l + δu/‖u‖), so G and the Hessian vanish there, and a trust
    region measured in the norm of G + λI alone would allow huge moves along
    it. Where the residuals are small G is almost the Hessian, and
    preconditioned CG needs fewer iterations (first Fashion-MNIST δ step, 30
    trust-region iterations: 1,244 HVPs in 92 s against EKFAC's 4,296 in
    144 s; converged to ‖∇L‖∞ = 5.4e−9 in 38 iterations, 1,467 HVPs and
    120 s with one refactorisation at `GN_DAMPING_NEAR`; BENCHMARKS.md, issue 10). G is dense: 8,070 parameters (784-10-10-10)
    take 0.5 GB. Only its upper triangle is written, and BLAS `syr` and
    LAPACK `potrf` then work in place on its transpose (column-major, lower
    triangle), so that one copy is all there is until the float32 panels
    (0.13 GB, `cholesky_panels`) are cut from it. So it is built
    and factorised (LAPACK Cholesky `potrf`, M̃ = LLᵀ) once per δ step and
    reused across its
    trust-region iterations (`matrix_free_paths`, `solver="trust-gn"`;
    factors kept for the next δ step cost it more HVPs than a new
    factorisation takes time): the solver's stopping test does not involve the
    preconditioner, so a stale one costs iterations, never accuracy. For the
    same reason, with `single`, layer 1's blocks are multiplied in float32
    and L is kept in float32 (relative error of M̃⁻¹r
    6e−7 for a well-conditioned M̃ of 8,070 parameters, growing with M̃'s
    condition number; default: above `DENSE_THRESHOLD` parameters; where the
    float32 blocks' rounding leaves M̃ not positive definite, as along G's null
    directions at λ ≤ 1e−9, they are formed again in float64): applying it is
    bound by memory bandwidth, and float32 reads half the bytes. Below that size the float64 factor
    costs little, and float32 made the 2-5-1 toy path at gtol 1e−10 spend
    5,740 HVPs against 4,162 (`benchmarks/bench_path_solvers.py`).
    With `single` and `GN_MIXED` (the default), the factorisation itself is
    mixed: M̃ = [[M₁₁, C], [Cᵀ, M_rr]], layer 1's block M₁₁ (n₁(n₀ + 1) of the
    n rows, 7,850 of 8,070 at 784-10-10-10) is assembled and factorised in
    float32 (LAPACK `spotrf`, L₁₁), W = L₁₁⁻¹C (`strtrs`), and the Schur
    complement M_rr − WᵀW of the other layers is factorised in float64. Then
    L̃L̃ᵀ = M̃ + diag(E, 0) with E `spotrf`'s backward error: the other
    layers' rows, where G's small eigenvalues and the rescaling valley lie
    (float32 `potrf` of the whole M̃ fails there at λ = `GN_DAMPING_NEAR`),
    stay as exact as before. On a Fig. 3 matrix at that λ the preconditioned
    spectrum L̃⁻¹M̃L̃⁻ᵀ lies in [0.87, 1.15] (the float64 factor rounded to
    float32: [0.99995, 1.00005]), and the path's steps 0–15 take 899 HVPs against
    918, while `spotrf`, `strtrs` and the Schur complement's `potrf` take 1.39 s
    against `dpotrf`'s 3.23 s on an AMD EPYC (BENCHMARKS.md,
    "A mixed-precision factorisation"). Where `spotrf` or the Schur complement's
    `potrf` fails, the float64 factor of the same blocks is used.
    M̃⁻¹r is applied by `cholesky_panel_solve`: products with L's row panels
    and with the inverses of its diagonal blocks, in XLA on all threads (11.7 ms
    at 8,070 parameters on an Intel Xeon with 2 cores, against 24.1 ms for two
    BLAS `strsv`, which run on one thread; `benchmarks/bench_gn_apply.py`).

    **Returns:** `(factorise, apply)`: `factorise(v, δ, l, m, x, y, *, damping)` (v in
    the original variables; `damping` overrides the λ factor) → `CholeskyPanels`; `apply(factors, r)` → Π M̃⁻¹ Π r
    (jitted, float64), Π the projection of layer 1's rows off the input directions without energy
    (`DARK_RTOL`; the identity when there are none), along which the loss is exactly flat.

    Example (tests/test_newton_krylov.py checks M̃⁻¹ against a Jacobian built by `jax.jacfwd`):
        >>> import jax, jax.numpy as jnp, numpy as np, symland as s
        >>> from jax.flatten_util import ravel_pytree
        >>> model = s.MLP((3, 4, 3, 2), "softplus")
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (50, 3)); y = x[:, :2] ** 2
        >>> P, _ = input_whitening(x)
        >>> factorise, apply = gauss_newton_preconditioner(model, 2, "mse", x, P, damping=1e-3)
        >>> v = ravel_pytree(model.init(jax.random.PRNGKey(1)))[0]
        >>> r = jnp.ones(v.size)
        >>> bool(np.all(np.isfinite(apply(factorise(v, 0.5, 0, 1, x, y), r))))
        True
    """
    import scipy.linalg
    from jax.flatten_util import ravel_pytree

    check_tolerance(damping, "damping")
    if single not in (None, True, False):
        raise ValueError(f"single: must be True, False or None (by size), got {single!r}")
    if single is None:
        single = model.n_params > DENSE_THRESHOLD
    if not model.bias:
        raise ValueError("gauss_newton_preconditioner: networks without bias are not supported")
    n_0, n_1 = model.widths[0], model.widths[1]
    n1 = n_1 * (n_0 + 1)
    P = jnp.asarray(P)
    xt = jnp.asarray(np.concatenate([np.asarray(x, dtype=np.float64), np.ones((x.shape[0], 1))], axis=1)
                     @ np.asarray(P))
    pairs, blocks = _gauss_newton_blocks(model, layer, kind, single, gauge)
    unravel = ravel_pytree(model.init(jax.random.PRNGKey(0)))[1]
    n = model.n_params
    # order[i]: the flat index of row-block coordinate i (layer 1's rows (W₁[j, :], b₁[j]), then the rest)
    order = np.concatenate([np.concatenate([np.arange(n_1)[:, None] * n_0 + np.arange(n_0)[None, :],
                                            (n_1 * n_0 + np.arange(n_1))[:, None]], axis=1).ravel(),
                            np.arange(n1, n)])

    to_s = _first_layer_map(model, jnp.linalg.inv(P))
    rows = lambda v: unravel(v)[layer - 1]
    # ∇_v ½‖u‖² = u in row m's coordinates: the direction along which only ‖u‖ changes
    radial_v = jax.jit(jax.grad(lambda v, m: 0.5 * (jnp.sum(rows(v)[0][m] ** 2) + rows(v)[1][m] ** 2)))

    def radial_e(v, m):  # the unit vector along which only ‖u‖ changes, in row-block order
        e = np.asarray(to_s(radial_v(jnp.asarray(v), m)))[order]
        return e / np.linalg.norm(e)

    def with_layer_1(G, B1):  # G with layer 1's blocks written into its upper triangle, row-major
        w = n_0 + 1
        for (j, k), b in zip(pairs, B1):
            G[j * w:(j + 1) * w, k * w:(k + 1) * w] = b
        return G

    def cholesky(B1, C, Gr, v, m, damping):  # → (L in G's memory, potrf's info)
        # Only G's upper triangle is written (contiguous row-major copies): Gᵀ, G's memory read in
        # column-major order, then holds the lower triangle, which is all that LAPACK potrf, BLAS syr
        # and cholesky_panels read. No transposed copy, no n × n temporary.
        # zeros, not empty: no garbage in the unwritten triangle, whoever reads it
        G = with_layer_1(np.zeros((n, n)), B1)
        G[:n1, n1:] = C.reshape(n1, -1)
        G[n1:, n1:] = Gr
        F = G.T  # Fortran-ordered, lower triangle filled
        scale = np.trace(F) / n
        F[np.diag_indices(n)] += damping * scale
        if radial:  # the loss does not depend on ‖u‖: give that null direction the mean curvature
            F = scipy.linalg.blas.dsyr(scale, radial_e(v, m), lower=1, a=F, overwrite_a=1)
        return scipy.linalg.lapack.dpotrf(F, lower=1, clean=0, overwrite_a=1)

    def cholesky_mixed(B1, C, Gr, v, m, damping):  # → CholeskyPanels, or None where a potrf fails
        # M̃ = [[M₁₁, C], [Cᵀ, M_rr]] with M₁₁ (layer 1's rows, nearly all of n) factorised in float32
        # (LAPACK spotrf) and the Schur complement S = M_rr − WᵀW, W = L₁₁⁻¹C, in float64: then
        # L̃L̃ᵀ = M̃ + diag(E, 0) exactly, E spotrf's backward error (docstring).
        G11 = with_layer_1(np.zeros((n1, n1), np.float32), B1)  # upper triangle; G11ᵀ holds the lower one
        F11, C, Gr = G11.T, C.reshape(n1, -1).copy(), Gr.copy()
        scale = (np.trace(F11, dtype=np.float64) + np.trace(Gr)) / n
        F11[np.diag_indices(n1)] += np.float32(damping * scale)
        Gr[np.diag_indices(n - n1)] += damping * scale
        if radial:
            e = radial_e(v, m)
            e1, er = e[:n1], e[n1:]
            if np.any(e1):
                F11 = scipy.linalg.blas.ssyr(scale, e1.astype(np.float32), lower=1, a=F11, overwrite_a=1)
            C += scale * np.outer(e1, er)
            Gr += scale * np.outer(er, er)
        L11, info = scipy.linalg.lapack.spotrf(F11, lower=1, clean=0, overwrite_a=1)
        if info != 0:
            return None
        W, info = scipy.linalg.lapack.strtrs(L11, C.astype(np.float32), lower=1)
        if info != 0:
            return None
        W = W.astype(np.float64)
        Ls, info = scipy.linalg.lapack.dpotrf(Gr - W.T @ W, lower=1, clean=1)
        if info != 0:
            return None
        Wt = np.ascontiguousarray(W.T)
        rows = lambda i0, i1: L11[i0:i1, :i1] if i1 <= n1 else np.concatenate([Wt, Ls], axis=1)
        return _panels_of_rows(rows, [*range(0, n1, GN_PANEL), n1, n], order, np.float32)

    # float64 blocks, compiled only when float32 ones fail (below)
    blocks_64 = functools.cache(lambda: _gauss_newton_blocks(model, layer, kind, gauge=gauge)[1])

    def factorise(v, delta, l, m, x, y, *, damping=damping):
        B1, C, Gr = blocks(jnp.asarray(v), delta, l, m, x, y, xt, P)
        if single and GN_MIXED:
            factors = cholesky_mixed(B1, C, Gr, v, m, damping)
            if factors is not None:
                return factors
        L, info = cholesky(B1, C, Gr, v, m, damping)
        if info != 0 and single:
            # float32 rounding of the blocks (≈ 1e−7 of their entries) outweighs a λ this small along
            # G's null directions, e.g. inputs with an exact linear dependence: form them in float64
            del L, B1  # the failed factor's n × n memory, before the float64 blocks fill another
            B1, C, Gr = blocks_64()(jnp.asarray(v), delta, l, m, x, y, xt, P)
            L, info = cholesky(B1, C, Gr, v, m, damping)
        if info != 0:
            raise np.linalg.LinAlgError(f"gauss_newton_preconditioner: M̃ is not positive definite (potrf info {info})")
        # potrf left the upper triangle as it was; cholesky_panels reads the lower one only
        return cholesky_panels(L, order, np.float32 if single else np.float64)

    # Π: layer 1's rows projected off the input directions without energy (`DARK_RTOL`), where the loss
    # is exactly flat. G is zero there, so M̃⁻¹ multiplies any component there by 1/λ (λ = GN_DAMPING_NEAR
    # × mean diagonal), and the float32 blocks' rounding (≈ 1e−7 of their entries, not small against λ)
    # feeds it such components. The trust region, cheap there in M̃'s norm, then walked along them: on the
    # Fig. 3 path 64–75 % of ‖ΔW₁‖² per step at steps 14–17 (docs/mnist.md). apply returns Π M̃⁻¹ Π r,
    # symmetric and exact on the directions that matter.
    dark = jnp.asarray(dark_input_directions(x))

    def off_dark(z):  # z in row-block order: layer 1's rows (W₁[j, :], b₁[j]) first, contiguous
        if dark.shape[1]:
            rows = z[:n1].reshape(n_1, n_0 + 1)
            z = z.at[:n1].add(-((rows @ dark) @ dark.T).ravel())
        return z

    @jax.jit
    def apply(factors, r):
        z = off_dark(jnp.asarray(r, dtype=jnp.float64)[factors.order])
        z = cholesky_panel_solve(factors, z.astype(factors.dtype)).astype(jnp.float64)
        return jnp.zeros_like(z).at[factors.order].set(off_dark(z))

    return factorise, apply


def path_problem(model, layer: int, kind: str, x, *, precondition: bool = True,
                 preconditioner: str = "ekfac", gn_damping: float = GN_DAMPING, gauge=None,
                 retract: bool = False) -> FlatProblem:
    """The fixed-δ problem of the permutation path (§4.1) as a `FlatProblem`.

    Variables: the free parameters of `symland._path` (row m of layer k
    holds u, ϑ_m = ϑ_l + δ u/‖u‖, or δ (u/‖u‖) ⊘ d with `gauge` an
    `UpstreamGauge`, `symland._path.pair_distance`), flat. Extra arguments: `(δ, l, m, x, y)`.
    With `precondition`, the first layer is whitened (`input_whitening`)
    and trust-pcg is preconditioned by `preconditioner`: `ekfac`
    (`kfac_preconditioner`, rebuilt every iteration) or `gauss-newton`
    (`gauss_newton_preconditioner`; the problem then has a method
    `factorise(v, δ, l, m, x, y)` whose factors are passed to
    `minimise_matrix_free(factors=...)`; λ factor `gn_damping`).
    With `retract` (layer ≥ 2), trust-pcg's trial point of a step p from s
    is not s + p but the point whose coordinates (θ̂, σ) of
    `neuron_log_scales` for layer k − 1 are those of s plus their first-order
    change along p: the same to first order, but a step along a
    rescaling orbit of the layer below (ϑ_j → cϑ_j, W^(k)_{:,j} →
    W^(k)_{:,j}/c), a hyperbola in θ, follows it exactly.
    """
    from jax.flatten_util import ravel_pytree

    from ._loss import mse, nmse
    from ._path import effective_params

    loss_of = mse if kind == "mse" else nmse
    template = model.init(jax.random.PRNGKey(0))
    unravel = ravel_pytree(template)[1]

    def loss(v, delta, l, m, x, y):
        return loss_of(model, effective_params(unravel(v), layer, l, m, delta, gauge), x, y)

    if preconditioner not in ("ekfac", "gauss-newton"):
        raise ValueError(f"preconditioner: unknown preconditioner {preconditioner!r}; "
                         "choose 'ekfac' or 'gauss-newton'")
    transform, pre, factorise = None, None, None
    if precondition:
        P, P_inv = input_whitening(x)
        transform = (_first_layer_map(model, P), _first_layer_map(model, P_inv))
        if model.bias and preconditioner == "ekfac":
            pre = kfac_preconditioner(model, layer, kind, x, P, damping=KFAC_DAMPING, gauge=gauge)
        elif model.bias:
            factorise, apply = gauss_newton_preconditioner(model, layer, kind, x, P, damping=gn_damping,
                                                           gauge=gauge)

            def build(v, data, *args):
                raise ValueError("factors: the Gauss–Newton preconditioner is built by "
                                 "problem.factorise and passed as minimise_matrix_free(factors=...)")

            pre = (build, apply, ())
    problem = FlatProblem(loss, transform, pre)
    problem.factorise = factorise
    if factorise is not None:  # NumPy, not jitted (`gauss_newton_preconditioner`)
        problem.apply_preconditioner = apply
    if retract and layer >= 2:  # trust-region steps linear in the layer below's log-scales
        from ._symmetry import from_neuron_log_scales, neuron_log_scales

        def to_z(s):
            hat, sigma = neuron_log_scales(unravel(s), [layer - 1])
            return ravel_pytree(hat)[0], sigma[0]

        def retract_at(s, p):
            (z, sigma), (dz, dsigma) = jax.jvp(to_z, (s,), (p,))
            return ravel_pytree(from_neuron_log_scales(unravel(z + dz), [sigma + dsigma], [layer - 1]))[0]

        problem.retract = jax.jit(retract_at)
    return problem


# The matrix-free path's predictors: the polynomials of degree 1 … PREDICTOR_ORDER in log δ through the
# last solved steps, of which the one with the lowest loss starts the next step. On the Fig. 3 path
# (H = 10, Fashion-MNIST, each step converged) an exploratory check found the third δ step starting at
# L = 2.0e-5 from the quadratic prediction against 2.9e-4 from the secant one; together with the kept
# Gauss–Newton factors, steps 0–5 took 309 s against 466 s (BENCHMARKS.md, issue 10). In trials on the
# toy path's large steps the quadratic alone overshot (trust-ncg's δ steps failed from the fourth on), and
# with the constant prediction among the candidates its first steps ended on other critical points than
# the dense solver's (tests/test_newton_krylov.py); hence a choice, and only among degrees ≥ 1. Past unconverged
# steps (the default `symland mnist` run's 60-HVP budget) the quadratic amplified their errors: seed 1's
# barrier rose from 4.2e-2 to 0.37; so there the secant alone is used.
PREDICTOR_ORDER = 2
# Continuation sub-steps (`matrix_free_paths(split=...)`): where the prediction of a δ step starts above
# SPLIT_RATIO × the loss of the last solve, the step is reached through sub-steps that are solved but not
# recorded, each halving the remaining interval in log δ, down to 2^−SPLIT_DEPTH of the schedule's step.
# On the Fig. 3 path (trust-gn, split=None) the predictions of steps 4–15 start within 4.5× the last
# loss, and those of steps 16–18, where a layer-1 neuron runs off along its rescaling orbit, at 9.4×, 22×
# and 56× (step 2, the secant through θ*, at 371×, step 3 at 6.3×; step 1 starts from θ*, whose loss is
# ≈ 0, and is never split; `benchmarks/bench_mnist.py --starts`, BENCHMARKS.md, "Continuation sub-steps").
# With the tangent at θ* (`path_tangent`) step 1 starts at 7.3e-5 instead of 1.7e-3, still never split.
SPLIT_RATIO = 5.0
SPLIT_DEPTH = 3
# L-BFGS iterations before the trust region (`minimise_matrix_free(lbfgs=...)`) of the δ = 0 solve that
# starts from the merged θ* after a run-off (trust-gn); with `LBFGS_REFACTORISE` (above, and BENCHMARKS.md,
# "An L-BFGS phase preconditioned by the Gauss–Newton factors").
LBFGS_ITERATIONS = 360
# `path_tangent`'s relative residual
TANGENT_RTOL = 1e-8


def extrapolate(points, s: float):
    """The Lagrange polynomial through `points` [(sᵢ, θᵢ)] (distinct sᵢ) evaluated at `s`.

    One point gives θ₀ (no prediction), two the secant, three the quadratic
    continuation predictor; `matrix_free_paths` passes the last
    `PREDICTOR_ORDER` + 1 solved steps, with s = log δ.

    Example:
        >>> import numpy as np
        >>> pts = [(s, np.array([1.0 + 2 * s - s * s])) for s in (0.0, 1.0, 2.0)]
        >>> extrapolate(pts, 3.0)  # a quadratic is reproduced exactly
        array([-2.])
        >>> extrapolate(pts[1:], 3.0)  # the secant through the last two
        array([0.])
    """
    out = 0.0
    for i, (si, ti) in enumerate(points):
        w = 1.0
        for j, (sj, _) in enumerate(points):
            if j != i:
                w *= (s - sj) / (si - sj)
        out = out + w * np.asarray(ti)
    return out


def extrapolate_hermite(points, slope, s: float):
    """The polynomial through `points` [(sᵢ, θᵢ)] (distinct sᵢ) with derivative `slope` at s₀, at `s`.

    Hermite interpolation: Newton's divided differences on the nodes s₀, s₀,
    s₁, …, the repeated node's difference being `slope`, evaluated by
    Horner's rule. One point gives the tangent line θ₀ + (s − s₀)·slope, two
    a quadratic; `matrix_free_paths` passes the solved steps from θ* on with
    the tangent of the path of minima at θ* (`path_tangent`).

    Example:
        >>> import numpy as np
        >>> f = lambda s: np.array([1.0 - s + 2 * s ** 2 - s ** 3])
        >>> pts = [(s, f(s)) for s in (0.0, 1.0, 2.0)]
        >>> extrapolate_hermite(pts, np.array([-1.0]), 3.0)  # a cubic is reproduced exactly
        array([-11.])
        >>> extrapolate_hermite(pts[:1], np.array([-1.0]), 3.0)  # the tangent line at s = 0
        array([-2.])
    """
    z = [points[0][0]] + [si for si, _ in points]
    c = [np.asarray(points[0][1])] + [np.asarray(ti) for _, ti in points]
    n = len(z)
    for j in range(1, n):  # in place: c[i] becomes f[z_{i−j}, …, z_i]
        for i in range(n - 1, j - 1, -1):
            c[i] = np.asarray(slope) if (j == 1 and i == 1) else (c[i] - c[i - 1]) / (z[i] - z[i - j])
    out = c[-1]
    for i in range(n - 2, -1, -1):
        out = out * (s - z[i]) + c[i]
    return out


def extrapolate_rescaled(points, s: float, unravel, layer: int):
    """`extrapolate` in the rescaling coordinates of hidden layer `layer`: θ at `s` from [(sᵢ, θᵢ)].

    Each flat θᵢ (`unravel` → parameters) is taken to (θ̂, σ) by
    `neuron_log_scales(·, [layer])`, the Lagrange polynomial through those
    points is evaluated at `s` and mapped back (`from_neuron_log_scales`). A
    rescaling orbit of a neuron of `layer` (ϑ_j → cϑ_j, W^(layer+1)_{:,j} →
    W^(layer+1)_{:,j}/c), a hyperbola in θ, is a straight line in these
    coordinates, so a minimum that runs off along it with log c linear (quadratic)
    in s is predicted exactly by the secant (quadratic). `matrix_free_paths`
    uses it with `layer` = k − 1 (`predictor`).

    Example:
        >>> import jax, numpy as np, symland as s
        >>> from jax.flatten_util import ravel_pytree
        >>> p = s.MLP((3, 4, 2, 1), "softplus").init(jax.random.PRNGKey(0))
        >>> flat, unravel = ravel_pytree(p)
        >>> orbit = lambda t: ravel_pytree(s.rescale_neurons(p, 1, [2], float(np.exp(t))))[0]
        >>> pts = [(t, orbit(t)) for t in (0.0, 1.0)]
        >>> bool(np.allclose(extrapolate_rescaled(pts, 3.0, unravel, 1), orbit(3.0), rtol=1e-12))
        True
        >>> bool(np.allclose(extrapolate(pts, 3.0), orbit(3.0), rtol=1e-2))  # the secant in θ
        False
    """
    from jax.flatten_util import ravel_pytree

    from ._symmetry import from_neuron_log_scales, neuron_log_scales

    coords = [ravel_pytree(neuron_log_scales(unravel(jnp.asarray(t)), [layer])) for _, t in points]
    z = extrapolate([(si, c[0]) for (si, _), c in zip(points, coords)], s)
    return np.asarray(ravel_pytree(from_neuron_log_scales(*coords[0][1](jnp.asarray(z)), [layer]))[0])


def path_tangent(problem: FlatProblem, v, args, factors, *, rtol: float = TANGENT_RTOL,
                 max_iter: int = CG_MAX_ITERATIONS):
    """dv/d(log δ) of the fixed-δ minima at a minimum `v`; (tangent, HVPs) or (None, HVPs).

    Differentiating ∇_v L(v*(δ), δ) = 0 (implicit function theorem) gives
    H t = −∂(∇L)/∂ log δ, H the Hessian of the fixed-δ problem at v; `args`
    = (δ, l, m, x, y) are the problem's, `factors` those of its
    preconditioner. At zero loss (the teacher θ*) the residuals vanish, so
    H is exactly the Gauss–Newton matrix G, and CG preconditioned with the
    factors of G + λI (`problem.factorise` at v, λ = `GN_DAMPING_NEAR` × its
    mean diagonal) converges in a few products (5 at θ* of the Fig. 3 path).
    Solved in the solver's variables (`problem.to_s`) by `_steihaug_pcg`
    without a trust region, to ‖r‖_{M⁻¹} ≤ `rtol`·‖b‖_{M⁻¹}; negative
    curvature or no convergence within `max_iter` HVPs (v not a minimum)
    gives None. `matrix_free_paths` (trust-gn) uses it at θ* to predict the
    first δ steps (`extrapolate_hermite`), which otherwise start from θ*
    itself and from the secant through it.
    """
    s = problem.to_s(jnp.asarray(v))
    delta, *rest = args
    grad_at = lambda d: problem.value_grads(s, d, *rest)[1]
    b = np.asarray(jax.jvp(grad_at, (jnp.asarray(float(delta)),), (jnp.asarray(float(delta)),))[1])
    hvp_now = problem.hvp_at(s, *args)
    hvp = lambda t: np.asarray(hvp_now(jnp.asarray(t)))
    precond = lambda r: np.asarray(problem.apply_preconditioner(factors, jnp.asarray(r)))
    t, _, used, reason = _steihaug_pcg(hvp, b, precond, np.inf, rtol, max_iter)
    if reason != "converged" or not np.all(np.isfinite(t)):
        return None, used
    return np.asarray(problem.to_v(jnp.asarray(t))), used


def matrix_free_paths(model, params, x, y, layer: int, pairs, deltas, *, loss: str = "nmse",
                      gtol: float = NK_GTOL, max_steps: int = 200, spectrum_k: int = 30,
                      spectrum_hvps: int | None = None, max_hvps: int | None = None,
                      solver: str = "trust-ncg", gauge=None, retract: bool = True,
                      split="auto", predictor: str = "auto", tangent: bool = True, even_block: str = "auto",
                      progress: bool = False, on_step=None):
    """Permutation paths solved matrix-free; the large-network branch of `find_permutation_paths`.

    Every δ step minimises over the free parameters with
    `minimise_matrix_free`, warm-started by a continuation predictor in log δ:
    of the quadratic and secant predictions (`extrapolate` through the last
    three and two solved steps; `PREDICTOR_ORDER`), the one with the lower
    loss; the secant alone at the second step and whenever one of those three
    steps did not converge; none at the first step and at δ = 0. With
    `tangent` (default; trust-gn only) the path's tangent at θ* is found too
    (`path_tangent`: one factorisation at `GN_DAMPING_NEAR` and a few HVPs,
    counted in step 0), and while θ* is among the last three solved steps the
    polynomial through them with that slope at θ* (`extrapolate_hermite`;
    the tangent line at the first step) is one more candidate. Above
    `DENSE_THRESHOLD` parameters the first step then builds its factors at
    `GN_DAMPING_NEAR` at once (on the 2-5-1 toy that damping slowed the first
    step): on the Fig. 3 path it starts at L = 7.3e−5 instead of θ*'s 1.7e−3
    and converges in 106 HVPs and one factorisation against 603 and two
    (BENCHMARKS.md, "The tangent at θ*").
    `predictor="rescaling"` adds the same predictions made in the rescaling
    coordinates of layer k − 1 (`neuron_log_scales`; layer ≥ 2), in which a
    run-off along a rescaling orbit, a hyperbola in θ, is a straight line;
    the lowest loss still picks one. `"theta"`: θ only. `"auto"` (default):
    "rescaling" where the trust region retracts (`trust-gn` with
    `retract`), "theta" otherwise. On the Fig. 3 path (trust-gn) the
    predictions of steps 16–18 then start at 1.08–1.09× the last loss
    instead of 9.4–56× (BENCHMARKS.md, "Predictions along the rescaling
    orbits"). The
    step at δ = 0 starts where the last step ended, unless that step escaped
    (below): a path that ran off along a channel has no end at δ = 0 to
    continue to, so δ = 0 is then solved from θ*'s own free parameters, i.e.
    θ* with ϑ_m set to ϑ_l (the pair merged into one neuron whose output
    weight is a_l + a_m). Its minimum is a critical point of the network with
    that neuron once (Fukumizu & Amari 2000; Brea et al. 2019, §4.1), so the
    permutation point it gives is a genuine one, though not the end of a
    continuous path from θ*; the recorded δ = 0 step is that solve. On the
    Fig. 3 path the refinement from the run-off point ended at ‖∇L‖∞ 5.4e−3
    (`not critical`); from the merged θ*, δ = 0 converges (BENCHMARKS.md,
    "The permutation point after a run-off"). That start is far from its
    minimum, so with trust-gn the solve begins with `LBFGS_ITERATIONS` of
    L-BFGS preconditioned by the Gauss–Newton factors
    (`minimise_matrix_free(lbfgs=...)`): on the Fig. 3 pair the trust
    region alone took 64 iterations (BENCHMARKS.md, "An L-BFGS phase
    preconditioned by the Gauss–Newton factors"). At
    δ = 0 the output weights of l and m are equalised (the permutation
    point), the point is polished by `refine_matrix_free` (within the same
    `max_hvps` budget as a δ step), and
    `classify_permutation_point` reports its Hessian spectrum (index,
    near-zero count): the σ_{l⇔m}-odd block exactly (n_{k−1} + 1 + n_{k+1}
    HVPs), which decides a saddle whose unstable direction splits the pair
    even where Lanczos converges nothing, and the `spectrum_k` smallest of
    the even block by Lanczos, each run
    within `spectrum_hvps` HVPs (default `LANCZOS_HVP_BUDGET`; a run that
    does not converge leaves `part="partial"`). No dense Hessian
    is formed. `even_block="lobpcg"` finds the even block's `EVEN_BLOCK_K`
    smallest eigenvalues by `even_block_spectrum` instead (LOBPCG on ∇²L
    constrained to the even subspace, preconditioned through the fixed-δ
    problem's exact Gauss–Newton factors; layer ≥ 2 with biases), and the
    report joins them with the odd block
    (`classify_permutation_point(even=…)`); the path's `even_block` keeps
    them. `"lanczos"`: as above. `"auto"` (default): LOBPCG above
    `DENSE_THRESHOLD` parameters where it applies and the point is
    critical (‖∇L‖∞ ≤ `CRITICAL_GTOL`), Lanczos otherwise (a dense even
    block is exact; away from a critical point the index means little).
    On the Fig. 3 path Lanczos converges none of the even block's
    eigenvalues within its budget (index ≥ 9, zeros unknown), while LOBPCG
    finds its 16 smallest, all positive, in 146 HVPs: index 9, and 8 of
    them below the zero tolerance (BENCHMARKS.md, "The even block of the
    Fig. 3 permutation
    point"). (Where a minimum-energy path between θ* and σ(θ*) exists, its
    barrier belongs beside this report; it is not computed here.)

    Arguments are checked by `find_permutation_paths`; `deltas` is one
    schedule per pair (rows), measured in `gauge` (None: the paper's δ, or
    `upstream`, resolved at `params` on `x`, or an `UpstreamGauge`;
    `symland._path.pair_distance`). `max_hvps` caps the HVPs of one δ step (a
    step that runs out reports `max_steps` at its last accepted iterate),
    whichever `solver` (`minimise_matrix_free`'s `method`) is used.
    `solver="trust-gn"`: trust-pcg preconditioned by the exact Gauss–Newton
    matrix (`gauss_newton_preconditioner`), factorised at every δ step that
    iterates, at its start (factors kept from the step before cost the
    next step more HVPs than a factorisation takes time; BENCHMARKS.md);
    within a step, once more with the smaller
    damping `GN_DAMPING_NEAR` when an inner solve runs out of CG iterations
    or spends `GN_SWITCH_HVPS` of them (`refactorise_after`), after which the path keeps that damping (all counted in the path's
    `factorisations`); with that damping already, once more at the current
    iterate in the same case, and again whenever such a solve follows a
    shorter one (`minimise_matrix_free`'s `refactorise`; on the Fig. 3 path step 18 moves ‖Δθ‖ 13.7
    from where its factors were built; refactorising when a solve ran out
    took it to 2,271 HVPs from 2,914, and also after one of `GN_SWITCH_HVPS`
    took steps 16–18 to 1,583 from 2,627; BENCHMARKS.md). With `retract` (the default) its trust region takes
    each trial point along the rescaling orbits of layer k − 1
    (`path_problem(retract=True)`), the channel along which the Fig. 3 minima
    run off; `retract=False` takes s + p (BENCHMARKS.md, "Trust-region steps
    along the rescaling orbits").
    `split` (a number > 1, None for never; "auto": `SPLIT_RATIO` with
    `trust-gn`, None otherwise): continuation step-size control. Where the
    prediction of a δ step starts above `split` × the loss of the last
    solve, and the points it extrapolates all converged, the step is reached
    through sub-steps at intermediate δ, solved but not recorded, each
    halving the remaining interval in log δ (down to 2^−`SPLIT_DEPTH` of it)
    and joining the predictor's points. The recorded δ are the schedule's;
    the step's `steps`, `hvps` and `factorisations` include its sub-steps,
    whose number `on_step` sees in `KrylovOutcome.substeps`. On the Fig. 3
    path a neuron running off along its rescaling orbit makes the last
    converged steps' predictions start 22–56× above the last loss, and a
    trust region started there crawls along the curved valley (BENCHMARKS.md,
    "Continuation sub-steps"). Without `trust-gn` the default run's steps
    are capped at `FIG3_HVP_BUDGET` HVPs, and sub-steps were not measured
    there, so "auto" leaves the other solvers unsplit.
    A δ step stops with `escape` once the pair's output weights pass
    `ESCAPE_FACTOR` × their start, or a neuron of layer k − 1 passes
    `UPSTREAM_FACTOR` × its scale at θ* (`upstream_scale`; `step_status`
    then names the step `rescaling`). A prediction past either test is
    dropped for the last step's point (extrapolating the Fig. 3 run-off gave
    L = 5.9e3 by step 47; BENCHMARKS.md), so a step after an escaped one records
    that point, made feasible at its δ, with status `escape`/`rescaling`
    and 0 HVPs: its loss bounds the constrained minimum from above. On the
    Fig. 3 pair the second test is what
    happens: a layer-1 softplus neuron in its linear regime rescales instead
    of the pair moving (docs/mnist.md).
    `on_step(i, δ, outcome)`, if given, is called after every δ step with
    its `KrylovOutcome` (whose `factorisations` count the factors built in
    that step), e.g. to log or time the steps; an exception it raises ends
    the call.
    **Returns:** a list of `PermutationPath`.
    """
    from jax.flatten_util import ravel_pytree
    from tqdm.auto import tqdm

    from . import _critical as critical_module
    from ._critical import LANCZOS_HVP_BUDGET
    from ._plateau import EVEN_BLOCK_K, classify_permutation_point, even_block_spectrum
    from ._symmetry import swap_neurons
    from ._loss import mse, nmse
    from ._path import (CRITICAL_GTOL, ESCAPE_FACTOR, UPSTREAM_FACTOR, PermutationPath,
                        effective_params, equalise_output_weights, free_parameters,
                        UpstreamGauge, pair_output_weight, rescale_direction, step_status,
                        upstream_gauge, upstream_scale)

    check_path_solver(solver)
    if predictor not in ("auto", "theta", "rescaling"):
        raise ValueError(f"predictor: must be 'auto', 'theta' or 'rescaling', got {predictor!r}")
    if predictor == "rescaling" and layer < 2:
        raise ValueError("predictor: 'rescaling' extrapolates the rescaling coordinates of layer k − 1, "
                         f"so it needs layer ≥ 2, got layer {layer}")
    if not isinstance(tangent, bool):
        raise ValueError(f"tangent: must be True or False, got {tangent!r}")
    if even_block not in ("auto", "lanczos", "lobpcg"):
        raise ValueError(f"even_block: must be 'auto', 'lanczos' or 'lobpcg', got {even_block!r}")
    n_even = model.n_params - (model.widths[layer - 1] + int(model.bias) + model.widths[layer + 1])
    lobpcg_applies = layer >= 2 and model.bias and n_even >= 5  # even_block_spectrum's needs (k ≥ 1)
    if even_block == "lobpcg" and not lobpcg_applies:
        raise ValueError("even_block: 'lobpcg' needs hidden layer ≥ 2, biases and at least 5 σ-even "
                         f"coordinates, got layer {layer}, bias {model.bias}, {n_even} coordinates")
    if split == "auto":
        ratio = SPLIT_RATIO if solver == "trust-gn" else None
    elif split is None or (isinstance(split, (int, float)) and not isinstance(split, bool) and split > 1):
        ratio = None if split is None else float(split)
    else:
        raise ValueError(f"split: must be 'auto', None or a number > 1, got {split!r}")
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    label = "upstream" if gauge == "upstream" or isinstance(gauge, UpstreamGauge) else None
    if gauge == "upstream":
        gauge = upstream_gauge(model, params, x, layer)
    gn = solver == "trust-gn"
    problem = path_problem(model, layer, loss, x, preconditioner="gauss-newton" if gn else "ekfac",
                           gauge=gauge, retract=gn and bool(retract))
    method = "trust-pcg" if gn else solver
    theta_star, unravel = ravel_pytree(params)
    loss_of = mse if loss == "mse" else nmse
    loss_fn = lambda p: loss_of(model, p, x, y)
    full = FlatProblem(lambda v, x, y: loss_of(model, unravel(v), x, y))
    to_free = jax.jit(lambda theta, l, m, norm: ravel_pytree(rescale_direction(
        free_parameters(unravel(theta), layer, l, m, gauge), layer, m, norm))[0])
    to_theta = jax.jit(lambda v, l, m, delta: ravel_pytree(
        effective_params(unravel(v), layer, l, m, delta, gauge))[0])
    # x an argument: a closure would fold the data into the executable as a constant, which XLA then
    # compiles (and a persistent compilation cache stores) with it
    kink_of = jax.jit(lambda theta, x: jnp.min(jnp.stack([
        jnp.min(jnp.abs(z) / jnp.maximum(jnp.max(jnp.abs(z), axis=0), 1e-300))
        for z in model.preactivations(unravel(theta), x)])))
    out_w_of = lambda theta, l, m: float(pair_output_weight(unravel(theta), layer, l, m))
    # Predictions also in the layer below's rescaling coordinates (`neuron_log_scales`), in which the
    # run-off along a rescaling orbit is a straight line (docstring)
    curved = predictor == "rescaling" or (predictor == "auto" and problem.retract is not None)
    up_jit = jax.jit(lambda theta: upstream_scale(unravel(theta), params, layer))
    up_of = lambda theta: float(up_jit(jnp.asarray(theta)))  # rows of layer k − 1 are the same in v and θ
    paths = []
    total = len(pairs) * deltas.shape[1]
    bar = tqdm(total=total, desc=f"{len(pairs)} path(s), matrix-free", unit="δ",
               disable=not progress, leave=False)
    for (l, m), schedule in zip(pairs, deltas):
        out_w0 = out_w_of(theta_star, l, m)
        escape = lambda v, l=l, m=m: (out_w_of(v, l, m) > ESCAPE_FACTOR * max(out_w0, 1e-12)
                                      or up_of(v) > UPSTREAM_FACTOR)
        rec = {k: [] for k in ("loss", "grad_norm", "status", "steps", "hvps", "theta", "kink", "out_w",
                               "up")}
        solved = [(np.log(schedule[0]), theta_star, True)]  # (log δ, θ, converged) of the last steps
        norm = schedule[0]
        # trust-gn: each δ step builds its factors at its start, lazily (on the first iteration that
        # needs them); once a step has refactorised with GN_DAMPING_NEAR, later steps use that damping.
        n_factorised, state = 0, {"damping": None, "loss": 0.0}  # loss: of the last solve, sub-steps included
        slope = None  # (log δ₀, dθ/d log δ) at θ* (`path_tangent`, trust-gn)

        def tangent_at(sol, delta):  # → (θ*'s outcome with the tangent's work added, dθ/d log δ or None)
            t0 = time.perf_counter()
            factors = problem.factorise(sol.x, delta, l, m, x, y, damping=GN_DAMPING_NEAR)
            t_v, used = path_tangent(problem, sol.x, (delta, l, m, x, y), factors)
            out = None
            if t_v is not None:
                v, d = jnp.asarray(sol.x), jnp.asarray(delta)
                out = np.asarray(jax.jvp(lambda v, d: to_theta(v, l, m, d), (v, d), (jnp.asarray(t_v), d))[1])
                if theta_star.size > DENSE_THRESHOLD:  # the first step starts close to its minimum (docstring)
                    state["damping"] = GN_DAMPING_NEAR
            return dataclasses.replace(sol, hvps=sol.hvps + used, factorisations=sol.factorisations + 1,
                                       seconds=sol.seconds + time.perf_counter() - t0), out

        def predict(s_to, delta):  # → (v0, its loss or None): the start of the solve at δ = exp(s_to)
            points = [(s, th) for s, th, _ in solved]
            norm = delta
            # degrees len(solved) − 1 down to 1 (0 from θ* alone); the secant only, once an unconverged
            # step is among the points (it would amplify its error)
            top = len(solved) if all(ok for _, _, ok in solved) else min(2, len(solved))
            degrees = range(top, min(2, len(solved)) - 1, -1)
            starts = [to_free(extrapolate(points[-k:], s_to), l, m, norm) for k in degrees]
            if slope is not None and solved[0][0] == slope[0] and all(ok for _, _, ok in solved):  # θ* among them
                starts.append(to_free(extrapolate_hermite(points, slope[1], s_to), l, m, norm))
            if curved and len(solved) > 1:
                starts += [to_free(extrapolate_rescaled(points[-k:], s_to, unravel, layer - 1), l, m, norm)
                           for k in degrees]
            crossed = [escape(v) for v in starts]  # a prediction past an escape test is dropped (below)
            if all(crossed):  # whichever the loss would pick: no losses
                return to_free(points[-1][1], l, m, norm), None
            # the loss picks among several starts, and is the split test's f0; otherwise not evaluated
            start_loss = ([float(problem.value_grads(problem.to_s(v), delta, l, m, x, y)[0]) for v in starts]
                          if len(starts) > 1 or ratio is not None else [0.0])
            i = int(np.argmin(np.where(np.isfinite(start_loss), start_loss, np.inf)))
            if crossed[i]:  # the prediction alone crossed an escape test: start where the last step ended
                return to_free(points[-1][1], l, m, norm), None
            return starts[i], start_loss[i]

        def solve(delta, v0, lbfgs=0):
            used = {}  # the λ factor of the last factors this solve built

            def build(v, damping):
                used["damping"] = damping
                kw = {} if damping is None else {"damping": damping}  # None: the problem's λ factor
                return problem.factorise(v, delta, l, m, x, y, **kw)

            near = (lambda v: build(v, GN_DAMPING_NEAR)) if gn else None
            sol = minimise_matrix_free(problem, v0, (delta, l, m, x, y), gtol=gtol,
                                       max_steps=max_steps, escape=escape, max_hvps=max_hvps,
                                       max_cg=CG_MAX_ITERATIONS,
                                       method=method, factors=(lambda: build(v0, state["damping"])) if gn else None,
                                       refactorise=near,
                                       refactorise_after=GN_SWITCH_HVPS if gn else None,
                                       lbfgs=lbfgs if gn else 0)
            state["damping"] = used.get("damping", state["damping"])
            state["loss"] = sol.loss
            return sol

        for delta in schedule:
            s_next = np.log(delta) if delta > 0 else solved[-1][0]
            norm = delta if delta > 0 else norm
            if delta > 0 and s_next != solved[-1][0]:
                # Sub-steps (not recorded) while the prediction starts > split × the last loss, each
                # halving the interval in log δ, down to 2^−SPLIT_DEPTH of it (docstring)
                width, s_to, parts = s_next - solved[-1][0], s_next, []
                while True:
                    d_to = float(delta) if s_to == s_next else float(np.exp(s_to))
                    v0, f0 = predict(s_to, d_to)
                    ok = all(c for _, _, c in solved) and len(solved) > 1 and state["loss"] > 0
                    if (ratio is not None and f0 is not None and ok and f0 > ratio * state["loss"]
                            and abs(s_to - solved[-1][0]) > abs(width) * 2.0 ** -SPLIT_DEPTH):
                        s_to = 0.5 * (solved[-1][0] + s_to)
                        continue
                    sol = solve(d_to, v0)
                    parts.append(sol)
                    if s_to == s_next:
                        break
                    theta = np.asarray(to_theta(jnp.asarray(sol.x), l, m, d_to))
                    solved = (solved + [(s_to, theta, sol.converged)])[-(PREDICTOR_ORDER + 1):]
                    s_to = s_next
                sol = dataclasses.replace(sol, **{k: sum(getattr(p, k) for p in parts) for k in (
                    "steps", "hvps", "gradients", "seconds", "factorisations")}, substeps=len(parts) - 1)
            else:
                # δ = 0 after a run-off: the pair merged at θ* is the start (docstring)
                merged = delta == 0 and rec["status"] and rec["status"][-1] == "escape"
                sol = solve(float(delta), to_free(theta_star if merged else solved[-1][1], l, m, norm),
                            lbfgs=LBFGS_ITERATIONS if merged else 0)
                if gn and tangent and not rec["loss"] and sol.converged and delta > 0:
                    # θ*: the tangent of the path of minima there, for the first predictions (docstring)
                    sol, dtheta = tangent_at(sol, float(delta))
                    slope = None if dtheta is None else (s_next, dtheta)
            n_factorised += sol.factorisations
            if on_step is not None:
                on_step(len(rec["loss"]), float(delta), sol)
            theta = np.asarray(to_theta(jnp.asarray(sol.x), l, m, delta))
            rec["loss"].append(sol.loss)
            rec["grad_norm"].append(sol.grad_norm)
            rec["status"].append(sol.status)
            rec["steps"].append(sol.steps)
            rec["hvps"].append(sol.hvps)
            rec["theta"].append(theta)
            rec["kink"].append(float(kink_of(jnp.asarray(theta), x)))
            rec["out_w"].append(out_w_of(theta, l, m))
            rec["up"].append(up_of(theta))
            if s_next == solved[-1][0]:
                solved[-1] = (s_next, theta, sol.converged)
            else:
                solved = (solved + [(s_next, theta, sol.converged)])[-(PREDICTOR_ORDER + 1):]
            bar.update()
            bar.set_postfix_str(f"L={sol.loss:.3g} {sol.status}")
        pf = ravel_pytree(equalise_output_weights(unravel(jnp.asarray(solved[-1][1])), layer, l, m))[0]
        polished = refine_matrix_free(full, pf, (x, y), gtol=gtol, max_hvps=max_hvps)
        # Newton–MINRES steps from a σ-fixed point are σ-even: averaging with σθ removes their rounding only
        point = unravel(jnp.asarray(polished.x))
        point = jax.tree_util.tree_map(lambda a, b: 0.5 * (a + b), point, swap_neurons(point, layer, l, m))
        # The σ-odd block exactly; the even block's smallest by LOBPCG, or dense up to DENSE_THRESHOLD and
        # its smallest by Lanczos above (docstring)
        budget = LANCZOS_HVP_BUDGET if spectrum_hvps is None else spectrum_hvps
        spectrum = None
        if even_block == "lobpcg" or (
                even_block == "auto" and lobpcg_applies and theta_star.size > critical_module.DENSE_THRESHOLD
                and float(jnp.max(jnp.abs(full.value_grads(ravel_pytree(point)[0], x, y)[2]))) <= CRITICAL_GTOL):
            # the path's own problem where it has the Gauss–Newton factors: not compiled a second time
            spectrum = even_block_spectrum(model, point, x, y, layer, l, m, loss=loss,
                                           k=min(EVEN_BLOCK_K, n_even // 5), problem=problem if gn else None)
        report = classify_permutation_point(
            loss_fn, point, layer, l, m, gtol=CRITICAL_GTOL, method="auto",
            k=int(min(spectrum_k, theta_star.size - 1)), max_hvps=budget,
            even=True if spectrum is None else spectrum)
        status = step_status(np.array([RESULT_NAMES.index(n) for n in rec["status"]]),
                             rec["kink"], rec["out_w"], out_w0, model.activation, rec["up"])
        paths.append(PermutationPath(
            model=model, layer=int(layer), l=int(l), m=int(m), delta=np.asarray(schedule),
            loss=np.asarray(rec["loss"]), grad_norm=np.asarray(rec["grad_norm"]), status=status,
            steps=np.asarray(rec["steps"]), hessians=np.asarray(rec["hvps"]),
            params=[unravel(jnp.asarray(t)) for t in rec["theta"]], start=params,
            permutation_point=point, permutation_point_report=report,
            min_abs_preactivation=np.asarray(rec["kink"]), output_weight_max=np.asarray(rec["out_w"]),
            gtol=float(gtol), max_newton_steps=int(max_steps), loss_fn=loss_fn,
            method="matrix-free", solver=solver, factorisations=n_factorised, gauge=label,
            even_block=spectrum))
    bar.close()
    return paths

