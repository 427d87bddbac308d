"""Symmetric tensor decomposition and the symmetry of its minima
(Arjevani, Bruna, Field, Kileel, Trager & Williams 2021, "Symmetry breaking in
symmetric tensor decomposition"; seeds: arjevani-field-abstracts.txt).

Fit k rank-one terms to the symmetric order-p tensor T = Σ_{j=1}^d v_j^{⊗p}
(teacher rows v_j; V = I_d gives Σ_j e_j^{⊗p}):

    L(W) = ‖Σ_{i=1}^k w_i^{⊗p} − Σ_{j=1}^d v_j^{⊗p}‖²_F
         = Σ_{i,i'} (w_i·w_{i'})^p − 2 Σ_{i,j} (w_i·v_j)^p + Σ_{j,j'} (v_j·v_{j'})^p,

since ⟨u^{⊗p}, v^{⊗p}⟩_F = (u·v)^p. The closed form costs O(k²d) instead of
O(k·d^p); `explicit_tensor_loss` builds the tensors and is the brute-force
check in the tests.

Symmetry (decided here; the abstract does not fix it). W (k × d, rows w_i)
is acted on by Γ = S_k × S_d, (π, ρ)·W = P_π W P_ρᵀ: S_k permutes the
rank-one terms, S_d the coordinates (it fixes Σ_j e_j^{⊗p}). For even p the
loss has more symmetry: w_i ↦ −w_i (w^{⊗p} is even; a pure gauge of the
parametrisation, like ReLU rescaling) and x_j ↦ −x_j (e_j^{⊗p} = (−e_j)^{⊗p}),
so Γ becomes (Z_2 ≀ S_k) × (Z_2 ≀ S_d). We report, for every p, the isotropy
in S_k × S_d *modulo the row-sign gauge* when p is even (rows may change sign:
group Z_2 ≀ S_k × S_d), and for even p also the order of the isotropy in the
full signed group (Z_2 ≀ S_k) × (Z_2 ≀ S_d). For odd p there is no sign
symmetry, and the group is S_k × S_d.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
import jax
import jax.numpy as jnp
import optax

from ._critical import eigenvalue_multiplicities
from ._isotropy_subgroup import isotropy_subgroup
from ._results import CriticalPointReport, Kind, check_tolerance, result_code, result_names
from ._solver import refine_flat


def check_order(p) -> int:
    """`ValueError` unless the tensor order `p` is an integer ≥ 3 (p = 2 is a matrix problem)."""
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)):
        if isinstance(p, (float, np.floating)) and float(p).is_integer():
            p = int(p)
        else:
            raise ValueError(f"p: the tensor order must be an integer >= 3, got {p!r}")
    if p < 3:
        raise ValueError(f"p: the tensor order must be an integer >= 3, got {p!r}")
    return int(p)


def _check_size(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def tensor_loss(W, V=None, *, p: int = 3):
    """L(W) = Σ (WWᵀ)^p − 2 Σ (WVᵀ)^p + Σ (VVᵀ)^p (entrywise powers): the closed form of
    ‖Σ_i w_i^{⊗p} − Σ_j v_j^{⊗p}‖²_F.

    **Arguments:** `W` (k × d, rows w_i); `V` (d' × d teacher rows, default
    I_d: T = Σ_j e_j^{⊗p}); `p` (tensor order, integer ≥ 3). Traceable in `W`.

    **Returns:** the loss (a scalar).

    Example:
        >>> import jax.numpy as jnp
        >>> from symland import tensor_loss
        >>> float(tensor_loss(jnp.eye(3), p=3)), float(tensor_loss(jnp.zeros((3, 3)), p=4))
        (0.0, 3.0)
    """
    p = check_order(p)
    W = jnp.asarray(W)
    V = jnp.eye(W.shape[1]) if V is None else jnp.asarray(V)
    return _tensor_loss(W, V, p)


def _tensor_loss(W, V, p):
    return jnp.sum((W @ W.T) ** p) - 2.0 * jnp.sum((W @ V.T) ** p) + jnp.sum((V @ V.T) ** p)


def symmetric_tensor(W, p: int):
    """Σ_i w_i^{⊗p} as a dense d^p array (brute force; small d only)."""
    p = check_order(p)
    W = jnp.asarray(W)
    T = jnp.zeros((W.shape[1],) * p)
    for w in W:
        t = w
        for _ in range(p - 1):
            t = jnp.multiply.outer(t, w)
        T = T + t
    return T


def explicit_tensor_loss(W, V=None, *, p: int = 3):
    """‖Σ_i w_i^{⊗p} − Σ_j v_j^{⊗p}‖²_F from the explicit tensors (the check of `tensor_loss`)."""
    W = jnp.asarray(W)
    V = jnp.eye(W.shape[1]) if V is None else jnp.asarray(V)
    return jnp.sum((symmetric_tensor(W, p) - symmetric_tensor(V, p)) ** 2)


def tensor_isotropy(W, p: int, *, tol: float = 1e-6) -> dict:
    """The isotropy of W in the symmetry group of the p-tensor problem (see the module docstring).

    **Returns:** {"isotropy": `IsotropySubgroup` in S_k × S_d (odd p) or
    (Z_2 ≀ S_k) × S_d modulo the row-sign gauge (even p), "signed_order":
    order in (Z_2 ≀ S_k) × (Z_2 ≀ S_d) modulo the gauge (even p; None for odd p)}.
    The gauge subgroup (row flips fixing W: rows that are zero) is divided out.
    """
    p = check_order(p)
    W = np.asarray(W, dtype=np.float64)
    if p % 2:
        return {"isotropy": isotropy_subgroup(W, tol=tol), "signed_order": None}
    gauge = 2 ** int(np.sum(np.max(np.abs(W), axis=1) <= tol))
    g = isotropy_subgroup(W, tol=tol, signed=(1,))
    full = isotropy_subgroup(W, tol=tol, signed=(0, 1))
    g = dataclasses.replace(g, order=g.order // gauge)
    return {"isotropy": g, "signed_order": full.order // gauge}


@dataclasses.dataclass(frozen=True)
class TensorMinimaResult:
    """Where many random starts of the tensor-decomposition problem end, and the isotropy of the minima.

    **Fields:** `k`, `d`, `p`, `n_starts`, `points` (n × k × d, refined end
    points), `reports` (a `CriticalPointReport` per start), `status` (per
    start, a `RESULTS` name of the final refinement), `isotropy` (per
    start: an `IsotropySubgroup` for minima and degenerate critical points, else None), `signed_order`
    (per start, even p), `seconds` (wall time of descent + refinement +
    classification, excluding compilation is *not* attempted), `settings`.
    """

    k: int
    d: int
    p: int
    n_starts: int
    points: np.ndarray
    reports: tuple
    status: tuple
    isotropy: tuple
    signed_order: tuple
    seconds: float
    settings: dict

    @property
    def losses(self) -> np.ndarray:
        return np.array([r.loss for r in self.reports])

    def kinds(self) -> dict:
        """{kind: count} over all starts."""
        out: dict[str, int] = {}
        for r in self.reports:
            out[str(r.kind)] = out.get(str(r.kind), 0) + 1
        return out

    def isotropy_distribution(self, *, loss_tol: float = 1e-9, kind: Kind = Kind.minimum) -> list[dict]:
        """Critical points of `kind` (minima, or degenerate ones) grouped by (isotropy type, critical value).

        Counts, largest count first. Global minima are those with loss ≤ `loss_tol`.
        """
        groups: dict[tuple, dict] = {}
        for rep, g, so in zip(self.reports, self.isotropy, self.signed_order):
            if rep.kind is not kind:
                continue
            loss = 0.0 if rep.loss <= loss_tol else round(rep.loss, 8)
            key = (g.name, g.order, loss)
            e = groups.setdefault(key, {"isotropy": g.name, "order": g.order, "signed_order": so,
                                        "row_orbits": list(g.orbit_sizes(1)),
                                        "column_orbits": list(g.orbit_sizes(0)),
                                        "loss": loss, "global": loss == 0.0, "count": 0})
            e["count"] += 1
        return sorted(groups.values(), key=lambda e: (-e["count"], e["loss"]))

    def to_dict(self) -> dict:
        n_min = sum(r.kind is Kind.minimum for r in self.reports)
        return {"k": self.k, "d": self.d, "p": self.p, "n_starts": self.n_starts,
                "seconds": self.seconds, "settings": self.settings, "kinds": self.kinds(),
                "status": {s: self.status.count(s) for s in sorted(set(self.status))},
                "n_minima": n_min, "isotropy_of_minima": self.isotropy_distribution(),
                "isotropy_of_degenerate": self.isotropy_distribution(kind=Kind.degenerate),
                "group": "S_k x S_d" if self.p % 2 else
                         "(Z_2 wr S_k) x S_d modulo row signs; signed_order: (Z_2 wr S_k) x (Z_2 wr S_d)"}


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _descend_and_refine(W0s, V, p, steps, lr, refine_steps):
    k, d = W0s.shape[1:]
    f = lambda x: _tensor_loss(x.reshape(k, d), V, p)
    opt = optax.adam(lr)

    def one(W0):
        x0 = W0.ravel()

        def step(carry, _):
            x, s = carry
            g = jax.grad(f)(x)
            u, s = opt.update(g, s, x)
            return (optax.apply_updates(x, u), s), None

        (x, _), _ = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
        r = refine_flat(f, x, gtol=1e-14, max_steps=refine_steps)
        return r.x.reshape(k, d), r.loss, r.grad_norm, r.gtol, result_code(r.status), jax.hessian(f)(r.x)

    return jax.vmap(one)(W0s)


def tensor_minima(k: int, d: int | None = None, *, p: int = 3, n_starts: int = 1000, seed: int = 0,
                  steps: int = 2000, lr: float = 1e-2, refine_steps: int = 8,
                  init_scale: float = 1.0, iso_tol: float = 1e-6, batch: int = 500,
                  progress=None) -> TensorMinimaResult:
    """Many random starts of tensor decomposition, refined to machine precision, classified, with isotropy.

    Each start W₀ has entries N(0, `init_scale`²/d). All starts of a batch
    run in one `jax.vmap`: `steps` Adam steps (optax, learning rate `lr`),
    then Levenberg–Marquardt on ∇L = 0 (`refine_flat`, the loop of
    `refine_critical_point`, ≤ `refine_steps`, ‖∇L‖∞ ≤ 1e−14·max(1, L)),
    and the dense Hessian spectrum (NumPy/LAPACK). A start that has not
    reached the tolerance keeps its `max_steps`/`stalled` status and is
    classified `not critical`: degenerate critical points (p odd: a
    missing e_j gives a cubic, not quadratic, escape direction) slow both
    Adam and Newton down. Each end point gets a `CriticalPointReport`
    (verdict by `classify_spectrum`); each minimum its isotropy subgroup
    (`tensor_isotropy`, entries equal within `iso_tol`).

    **Arguments:** `k` (rank-one terms), `d` (dimension, default k), `p`
    (order ≥ 3), `n_starts`, `seed`, the descent settings, `batch` (starts
    per compiled call), `progress` (a callable wrapping an iterable of
    batches, e.g. tqdm).

    **Returns:** a `TensorMinimaResult`.

    Example:
        >>> from symland import tensor_minima
        >>> r = tensor_minima(3, p=3, n_starts=8, steps=300)
        >>> sum(r.kinds().values())
        8
    """
    k = _check_size(k, "k")
    d = k if d is None else _check_size(d, "d")
    p = check_order(p)
    n_starts = _check_size(n_starts, "n_starts")
    steps = _check_size(steps, "steps")
    batch = _check_size(batch, "batch")
    check_tolerance(lr, "lr")
    check_tolerance(init_scale, "init_scale")
    check_tolerance(iso_tol, "iso_tol")
    t0 = time.perf_counter()
    W0s = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (n_starts, k, d))) * init_scale / np.sqrt(d)
    V = jnp.eye(d)
    chunks = [W0s[i:i + batch] for i in range(0, n_starts, batch)]
    if chunks and len(chunks[-1]) < batch and len(chunks) > 1:  # same shape for every call: one compilation
        pad = batch - len(chunks[-1])
        chunks[-1] = np.concatenate([chunks[-1], W0s[:pad]])
    it = progress(chunks) if progress is not None else chunks
    outs = [jax.device_get(_descend_and_refine(jnp.asarray(c), V, p, steps, lr, refine_steps))
            for c in it]
    Ws, losses, gns, gtols, codes, hess = (np.concatenate(x)[:n_starts] for x in zip(*outs))
    eigs = np.linalg.eigvalsh(0.5 * (hess + np.swapaxes(hess, 1, 2)))  # LAPACK: faster than XLA's eigh on CPU
    status = result_names(codes)
    reports, iso, signed = [], [], []
    cache: dict = {}
    for W, loss, gn, gt, lam in zip(Ws, losses, gns, gtols, eigs):
        rep = CriticalPointReport.from_spectrum(loss, gn, lam, gtol=float(gt))
        reports.append(rep)
        if rep.kind in (Kind.minimum, Kind.degenerate):
            # Γ-equivalent points share their sorted entries (up to sign for even p) and loss:
            # the isotropy is computed once per such class.
            entries = np.abs(W) if p % 2 == 0 else W
            key = np.round(np.sort(entries.ravel()), 6).tobytes() + np.round(loss, 9).tobytes()
            if key not in cache:
                cache[key] = tensor_isotropy(W, p, tol=iso_tol)
            iso.append(cache[key]["isotropy"])
            signed.append(cache[key]["signed_order"])
        else:
            iso.append(None)
            signed.append(None)
    settings = {"steps": steps, "lr": lr, "refine_steps": refine_steps,
                "init": f"N(0, {init_scale}^2/d)", "iso_tol": iso_tol, "seed": seed, "batch": batch,
                "optimiser": "adam, then refine_flat (LM on grad L = 0)"}
    return TensorMinimaResult(k, d, p, n_starts, Ws, tuple(reports), status, tuple(iso), tuple(signed),
                              time.perf_counter() - t0, settings)


def spectrum_summary(report: CriticalPointReport) -> list:
    """[(eigenvalue, multiplicity), …] of a report's Hessian spectrum."""
    return eigenvalue_multiplicities(report.eigenvalues, rtol=1e-6)
