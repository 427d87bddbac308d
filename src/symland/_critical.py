"""Critical-point analysis: Hessians, spectra, index, nullity and classification.

Brea et al. 2019, §4.2 claim: a permutation point is critical, its Hessian
has at most one negative eigenvalue (Fukumizu & Amari 2000, Th. 3) and at
least n_{k+1} zero eigenvalues. The first holds; the other two do not in
general (the index is that of λ(1−λ)F, see `symland._splitting`; for
n_{k+1} > 1 the nullity is generically 1 per merged pair, see
`symland._plateau`). Measured with the functions below.
"""

from __future__ import annotations

import functools

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._network import ACTIVATIONS, check_finite_params
from ._results import CriticalPointReport, check_hvp_budget, check_tolerance, zero_tolerance

DENSE_THRESHOLD = 4000
# `hessian_vector_product` and `symland._newton_krylov.FlatProblem.hvp_at` linearise the gradient once
# per point only above this many parameters (where the path finders and spectra work matrix-free);
# below, one forward-over-reverse compilation serves.
LINEARISE_THRESHOLD = DENSE_THRESHOLD
# HVPs per Lanczos run where a spectrum is reported beside a matrix-free path (its permutation point,
# its highest point): ≈ 25 s at 8,070 parameters. At a merged point that is not critical (‖∇L‖∞ ≈ 1e-3
# on 784-10-10-10) the 30 smallest eigenvalues sit in a cluster near zero: 821 HVPs converged none of
# them, 1,960 one (BENCHMARKS.md, issue 10); the report then says `part="partial"`.
LANCZOS_HVP_BUDGET = 1000


HESSIAN_BLOCK = 128  # Hessian columns per forward-over-reverse batch


@functools.lru_cache(maxsize=16)
def _compiled_hessian(loss_fn, treedef, leaf_specs):
    """jit(½(H + Hᵀ)), H = ∇² of θ_flat ↦ L(unravel(θ_flat)), cached per loss function and parameter
    layout, so that repeated spectra of one loss (e.g. along a path) compile once. The symmetrisation
    is part of the program: op by op it compiled its own three programs per shape."""
    template = jax.tree_util.tree_unflatten(treedef, [jnp.zeros(s, d) for s, d in leaf_specs])
    x_template, unravel = ravel_pytree(template)
    n = x_template.size
    symmetric = lambda H: 0.5 * (H + H.T)
    if n <= HESSIAN_BLOCK:
        return jax.jit(lambda x: symmetric(jax.hessian(lambda z: loss_fn(unravel(z)))(x)))
    grad = jax.grad(lambda x: loss_fn(unravel(x)))
    pad = (-n) % HESSIAN_BLOCK

    def blocked(x):
        # Columns H·e_i in blocks of HESSIAN_BLOCK forward-over-reverse passes:
        # `jax.hessian` pushes all n tangents at once, whose intermediates
        # (n × samples × width) thrash memory; blocks are ≈ 3× faster at n ≈ 2000.
        eye = jnp.concatenate([jnp.eye(n), jnp.zeros((pad, n))]).reshape(-1, HESSIAN_BLOCK, n)
        hvp = lambda t: jax.jvp(grad, (x,), (t,))[1]
        return symmetric(jax.lax.map(jax.vmap(hvp), eye).reshape(-1, n)[:n])

    return jax.jit(blocked)


def two_layer_mse_hessian(model, params, x, y):
    """∇²L of the MSE (`symland.mse`) of a one-hidden-layer MLP, in closed form.

    For f_o(x) = Σ_j A_oj g(ϑ_j·x̃) + c_o with x̃ = (x, 1) (x̃ = x without
    biases) and L = (1/T) Σ_μ Σ_o r_μo², r = f − y (paper eq. 1 with d = 2):

        ∇²L = (2/T) Σ_μ Σ_o [∇f_μo ∇f_μoᵀ + r_μo ∇²f_μo],

    where the only non-zero blocks of ∇²f_μo are
    ∂²f_o/∂ϑ_j∂ϑ_j = A_oj g''(z_j) x̃x̃ᵀ and ∂²f_o/∂ϑ_j∂A_oj = g'(z_j) x̃.
    The Gauss–Newton part is one (P × T·n_out)(T·n_out × P) product, the
    rest is O(T n (n_0+1)²); on the toy (P = 21, T = 1000) this is ≈ 8×
    faster than forward-over-reverse `jax.hessian`, which pushes P tangents
    through every sample. Returned in `ravel_pytree(params)` order; checked
    against `jax.hessian` for every activation in `tests/test_critical.py`.
    """
    if model.depth != 2:
        raise ValueError(f"model: need one hidden layer, got widths {model.widths}")
    (W, b), (A, c) = params
    g = ACTIVATIONS[model.activation]
    n, d = W.shape
    o, T = A.shape[0], x.shape[0]
    xt = x if b is None else jnp.concatenate([x, jnp.ones((T, 1), x.dtype)], axis=1)
    Wt = W if b is None else jnp.concatenate([W, b[:, None]], axis=1)
    dt = xt.shape[1]
    z = xt @ Wt.T
    d1 = jax.vmap(jax.vmap(jax.grad(g)))(z)
    d2 = jax.vmap(jax.vmap(jax.grad(jax.grad(g))))(z)
    h = g(z)
    r = h @ A.T - y if c is None else h @ A.T + c - y
    # ∇f_μo in the order (ϑ̃_1, …, ϑ̃_n, A, c), ϑ̃_j = (W_j, b_j).
    parts = [jnp.einsum("oj,tj,ti->toji", A, d1, xt).reshape(T, o, n * dt),
             jnp.einsum("op,tj->topj", jnp.eye(o), h).reshape(T, o, o * n)]
    if c is not None:
        parts.append(jnp.broadcast_to(jnp.eye(o), (T, o, o)))
    J = jnp.concatenate(parts, axis=-1).reshape(T * o, -1)
    H = J.T @ J
    nw = n * dt
    S = jnp.einsum("tj,ti,tk->jik", (r @ A) * d2, xt, xt)
    block = (jnp.eye(n)[:, None, :, None] * S[:, :, None, :]).reshape(nw, nw)
    C = jnp.einsum("jq,oji->jioq", jnp.eye(n), jnp.einsum("to,tj,ti->oji", r, d1, xt))
    C = C.reshape(nw, o * n)
    H = H.at[:nw, :nw].add(block).at[:nw, nw:nw + o * n].add(C).at[nw:nw + o * n, :nw].add(C.T)
    H = (2.0 / T) * H
    if b is None:
        return H
    # (W_j, b_j) rows → ravel order (W row-major, then b).
    perm = np.concatenate([(np.arange(n)[:, None] * dt + np.arange(d)).ravel(),
                           np.arange(n) * dt + d, np.arange(nw, H.shape[0])])
    return H[np.ix_(perm, perm)]


@functools.lru_cache(maxsize=4)  # holds its losses (and the data they close over) alive: few
def _compiled_value_and_grad(loss_fn):
    return jax.jit(jax.value_and_grad(loss_fn))


def loss_and_gradient_norm(loss_fn, params) -> tuple[float, float]:
    """(L(θ), ‖∇L(θ)‖∞), by one compiled program per loss function.

    Jitted, not op by op: run eagerly, the gradient compiled each primitive on its own (182
    programs, 10.8 s of XLA in a cold run of the test suite, for `classify_critical_point` alone;
    BENCHMARKS.md, "Test-suite time", thirty-first session). Cached per loss function as
    `hessian_matrix` is, so repeated reports of one loss compile once.

    Example:
        >>> import jax.numpy as jnp
        >>> loss_and_gradient_norm(lambda p: jnp.sum(p ** 2), jnp.array([1.0, -3.0]))
        (10.0, 6.0)
    """
    try:
        fn = _compiled_value_and_grad(loss_fn)
    except TypeError:  # an unhashable callable: no caching
        fn = _compiled_value_and_grad.__wrapped__(loss_fn)
    loss, grad = fn(params)
    return float(loss), float(jnp.max(jnp.abs(ravel_pytree(grad)[0])))


def hessian_matrix(loss_fn, params):
    """The dense Hessian ∇²L(θ) of the flattened parameters (`ravel_pytree` order)."""
    x0, _ = ravel_pytree(params)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    specs = tuple((tuple(jnp.shape(v)), jnp.result_type(v)) for v in leaves)
    try:
        fn = _compiled_hessian(loss_fn, treedef, specs)
    except TypeError:  # an unhashable callable: no caching
        fn = _compiled_hessian.__wrapped__(loss_fn, treedef, specs)
    return fn(x0)


def hessian_vector_product(loss_fn, params):
    """v ↦ ∇²L(θ)·v on flat vectors (`ravel_pytree` order), jitted, by forward-over-reverse AD.

    Above `LINEARISE_THRESHOLD` parameters the gradient is linearised once at θ
    (`jax.linearize`), so each product runs only the tangent passes: for an MLP on many
    samples two passes over the data instead of three (as
    `symland._newton_krylov.FlatProblem.hvp_at`, which measures it).

    Example:
        >>> import jax.numpy as jnp
        >>> hvp = hessian_vector_product(lambda p: jnp.sum(p[0] ** 3), [jnp.array([1.0, 2.0])])
        >>> hvp(jnp.array([1.0, 1.0]))
        Array([ 6., 12.], dtype=float64)
    """
    x0, unravel = ravel_pytree(params)
    grad = jax.grad(lambda x: loss_fn(unravel(x)))
    # θ is an argument, not a closed-over constant: XLA would constant-fold the
    # first layer's product with the data (seconds of compile time on 10⁴ samples).
    if x0.size <= LINEARISE_THRESHOLD:  # small: one compilation, not two
        hvp = jax.jit(lambda x, v: jax.jvp(grad, (x,), (v,))[1])
        return lambda v: hvp(x0, v)
    linear = jax.jit(lambda x: jax.linearize(grad, x)[1])(x0)
    apply = jax.jit(lambda linear, v: linear(v))
    return lambda v: apply(linear, v)


LANCZOS_PARTS = ("smallest", "largest", "nearest_zero")  # which part of the spectrum Lanczos computes


class SpectrumNotConverged(RuntimeError):
    """Lanczos ran out of its HVP budget (`hessian_spectrum(max_hvps=…)`) before converging.

    **Fields:** `eigenvalues` (those ARPACK converged, ascending; possibly
    none), `k` (how many were asked for), `hvps` (how many were spent).
    """

    def __init__(self, eigenvalues, k: int, hvps: int):
        self.eigenvalues = np.sort(np.asarray(eigenvalues, dtype=np.float64))
        self.k, self.hvps = int(k), int(hvps)
        super().__init__(f"Lanczos converged {self.eigenvalues.size} of {self.k} eigenvalues "
                         f"within {self.hvps} Hessian-vector products")


def _lanczos(loss_fn, params, k, which, tol, shift, max_hvps=None):
    """k eigenvalues of ∇²L by implicitly restarted Lanczos (ARPACK `eigsh`) on HVPs."""
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh, minres

    x0, _ = ravel_pytree(params)
    n = x0.size
    hvp = hessian_vector_product(loss_fn, params)
    count = [0]

    def mv(v):
        count[0] += 1
        return np.asarray(hvp(np.asarray(np.ravel(v), dtype=np.float64)))  # numpy into jit: no eager jnp.asarray

    H = LinearOperator((n, n), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)
    ncv = min(n, max(2 * k + 1, k + 20))
    if which in ("smallest", "largest"):
        # ARPACK builds a ncv-step factorisation, then each restart adds ncv − k HVPs.
        maxiter = None if max_hvps is None else max(1, (max_hvps - ncv) // max(ncv - k, 1))
        try:
            vals = eigsh(H, k=k, which="SA" if which == "smallest" else "LA", v0=v0, ncv=ncv,
                         tol=tol, maxiter=maxiter, return_eigenvectors=False)
        except ArpackNoConvergence as err:
            raise SpectrumNotConverged(err.eigenvalues.real, k, count[0]) from None
        return np.sort(vals)
    if shift is None:
        lam_max = abs(float(eigsh(H, k=1, which="LM", v0=v0, tol=1e-3,
                                  return_eigenvectors=False)[0]))
        shift = 1e-6 * lam_max
    sigma = -float(shift)

    def solve(b):
        x, _ = minres(H - sigma * _identity(n), b, rtol=1e-12, maxiter=20 * n)
        return x

    OPinv = LinearOperator((n, n), matvec=solve, dtype=np.float64)
    _, vecs = eigsh(H, k=k, sigma=sigma, which="LM", OPinv=OPinv, v0=v0, ncv=ncv, tol=tol)
    vals = np.array([vecs[:, i] @ mv(vecs[:, i]) / (vecs[:, i] @ vecs[:, i]) for i in range(k)])
    return vals[np.argsort(np.abs(vals))]


def _identity(n):
    from scipy.sparse.linalg import LinearOperator
    return LinearOperator((n, n), matvec=lambda v: np.ravel(v), dtype=np.float64)


def hessian_spectrum(loss_fn, params, *, method: str = "auto", k: int = 20,
                     which: str = "smallest", tol: float = 0.0, shift: float | None = None,
                     max_hvps: int | None = None):
    """Eigenvalues of ∇²L(θ): all of them (dense) or k of them (Lanczos).

    **Arguments:**
    - `method`: `dense` (eigendecomposition of the full Hessian), `lanczos`
      (ARPACK's implicitly restarted Lanczos, `scipy.sparse.linalg.eigsh`,
      on jitted Hessian-vector products; the Hessian is never formed), or
      `auto` (dense up to `DENSE_THRESHOLD` parameters, Lanczos above).
    - `k`, `which`: for Lanczos, the `k` `smallest` (algebraic), `largest`, or
      `nearest_zero` eigenvalues. `nearest_zero` uses shift-invert about
      σ = −`shift` (default 1e-6·|λ_max|; a small negative shift keeps
      H − σI invertible at critical points, whose Hessians are singular),
      solving (H − σI)x = b by MINRES on HVPs; the returned values are the
      Rayleigh quotients vᵀHv of the converged Ritz vectors.
    - `tol`: ARPACK's relative accuracy (0: machine precision). ARPACK
      measures a Ritz value θ against tol·max(ε^{2/3}, |θ|), so eigenvalues
      near zero need residuals near ε·ε^{2/3} whatever `tol` is; away from a
      critical point they can take thousands of restarts.
    - `max_hvps`: for `smallest` and `largest`, an approximate budget of
      Hessian-vector products (ARPACK's restarts are capped at
      (max_hvps − ncv)/(ncv − k)); None: no limit. When it runs out,
      `SpectrumNotConverged` is raised with the eigenvalues that did converge.

    **Returns:** a NumPy array, ascending (`nearest_zero`: by |λ|). `ValueError`
    naming `params` for NaN or inf parameters.
    """
    check_hvp_budget(max_hvps)
    check_finite_params(params)
    n = ravel_pytree(params)[0].size
    if method not in ("auto", "dense", "lanczos"):
        raise ValueError(f"method: unknown method {method!r}; choose 'auto', 'dense' or 'lanczos'")
    if method == "auto":
        method = "dense" if n <= DENSE_THRESHOLD else "lanczos"
    if method == "dense":  # NumPy's LAPACK eigvalsh: faster on CPU than jnp.linalg.eigvalsh
        return np.linalg.eigvalsh(np.asarray(hessian_matrix(loss_fn, params)))
    if which not in LANCZOS_PARTS:
        raise ValueError(f"which: unknown choice {which!r}; choose one of {', '.join(LANCZOS_PARTS)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    if k >= n:
        raise ValueError(
            f"k: Lanczos can return at most {n - 1} of the {n} eigenvalues, asked for {k}; "
            "use method='dense' for all of them")
    return _lanczos(loss_fn, params, int(k), which, tol, shift, max_hvps)


def largest_eigenvalue(loss_fn, params, *, method: str = "lanczos", max_hvps: int | None = None):
    """(top, known): ∇²L's largest eigenvalue as a 1-array, the scale of the zero tolerance where the
    smallest eigenvalues may not show ‖H‖₂, and whether it is known: Lanczos (`method`, within
    `max_hvps`) that did not converge leaves what it found (perhaps nothing), so that the tolerance is
    only bounded below and a report built on it is `partial`. `method="dense"` takes the whole
    spectrum (small problems)."""
    try:
        return np.asarray(hessian_spectrum(loss_fn, params, method=method, k=1, which="largest",
                                           max_hvps=max_hvps))[-1:], True
    except SpectrumNotConverged as err:
        return np.asarray(err.eigenvalues), False


def classify_critical_point(loss_fn, params, *, gtol: float = 1e-8,
                            zero_tol: float | None = None, method: str = "dense",
                            k: int = 20, max_hvps: int | None = None) -> CriticalPointReport:
    """Classify θ from its gradient and Hessian spectrum (verdict: `classify_spectrum`).

    **Arguments:**
    - `loss_fn`, `params`: the loss and the point θ (finite parameters).
    - `gtol`: θ is critical when ‖∇L‖∞ ≤ `gtol`.
    - `zero_tol`: |λ| ≤ `zero_tol` counts as zero (default `zero_tolerance`).
    - `method`: `dense` (every eigenvalue), `lanczos` (the `k` smallest) or
      `auto` (dense up to `DENSE_THRESHOLD` parameters).
    - `max_hvps`: Lanczos only, the HVP budget of each of its two runs (the
      `k` smallest, and the largest for the zero tolerance); None: no limit.
      A run that does not converge within it leaves a report with
      `part="partial"` holding the eigenvalues that did converge.

    **Returns:** a `CriticalPointReport`; its `kind` is `not critical` when
    ‖∇L‖∞ > `gtol`, otherwise `strict saddle`, `minimum`, `degenerate`, or
    (partial spectrum only) `undecided`.

    Example:
        >>> import jax.numpy as jnp
        >>> from symland import classify_critical_point
        >>> saddle = lambda p: p["x"] ** 2 - p["y"] ** 2
        >>> r = classify_critical_point(saddle, {"x": jnp.array(0.0), "y": jnp.array(0.0)})
        >>> str(r.kind), r.index, r.nullity
        ('strict saddle', 1, 0)
    """
    check_tolerance(gtol, "gtol")
    check_finite_params(params)
    loss, grad_norm = loss_and_gradient_norm(loss_fn, params)
    n = ravel_pytree(params)[0].size
    if method == "auto":
        method = "dense" if n <= DENSE_THRESHOLD else "lanczos"
    if method == "dense":
        eig, part = hessian_spectrum(loss_fn, params, method="dense"), "all"
    else:
        try:
            eig, part = hessian_spectrum(loss_fn, params, method=method, k=min(k, n - 1),
                                         max_hvps=max_hvps), "smallest"
        except SpectrumNotConverged as err:
            eig, part = err.eigenvalues, "partial"
        if zero_tol is None:  # the tolerance scales with ‖H‖₂, which the smallest may not show
            top, known = largest_eigenvalue(loss_fn, params, method="lanczos", max_hvps=max_hvps)
            part = part if known else "partial"
            zero_tol = zero_tolerance(np.concatenate([eig, top]), n=n)
    return CriticalPointReport.from_spectrum(loss, grad_norm, eig, gtol=float(gtol),
                                             part=part, n=n, zero_tol=zero_tol)


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
