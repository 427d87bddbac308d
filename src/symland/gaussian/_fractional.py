"""Fractional dimensionality: families of symmetric critical points for real k
(Arjevani & Field 2021, "analytic study of families of spurious minima";
Arjevani & Field, "equivariant bifurcation … standard representation of S_k").

A family with isotropy Δ(S_{n_1} × … × S_{n_j} × S_m), small blocks of fixed
sizes n_r ∈ {1, 2} and one big block of size m = k − Σ n_r, has restricted
equations ∇_z L_r(z; k) = 0 that are analytic in k (`restricted_loss` takes
the block sizes as real numbers). So do the blocks of its Hessian on each
isotypic component. We compute them without ever building a k × k matrix:

- refine the partition: every small block into singletons, and two points a, b
  split off the big block, which keeps m − 2 points. The isotropy group H of
  the family point contains S_{m−2}, so the Hessian maps Fix(S_{m−2}) (a
  subspace of dimension ≤ 26) to itself, and Fix(S_{m−2}) meets every
  isotypic component of H that occurs in R^{k×k}: for S_m these are the
  trivial rep t, the standard rep s (dim m − 1), (m−2, 2) (dim m(m−3)/2) and
  (m−2, 1, 1) (dim (m−1)(m−2)/2), each tensored with an irrep of the small
  group (for a block of size 2: + symmetric, − antisymmetric under its swap);
- in the orthonormal coordinates Z = diag(√orbit sizes) z of Fix(S_{m−2}),
  the S_m-fixed vectors (block a ∪ b ∪ rest merged) span the t part, the
  S_{m−1}-fixed vectors (b ∪ rest merged) minus those span one copy of the s
  part, and the rest of Fix(S_{m−2}), split by the swap of a and b, is
  (m−2, 2) (symmetric) ⊕ (m−2, 1, 1) (antisymmetric);
- each isotypic block is the compression of the restricted Hessian (a
  function of real k) to that part. Its eigenvalues appear in the full
  k² spectrum with the multiplicity dim(irrep), a polynomial in k.

At integer k the union with multiplicities equals the clustered full-space
Hessian spectrum (tests/test_gaussian_fractional.py). The family is followed
in real k by pseudo-arclength continuation (through folds); k* is where the
last negative isotypic eigenvalue crosses zero.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import jax
import jax.numpy as jnp
from scipy.optimize import brentq

from symland._results import zero_tolerance
from symland.gaussian._isotropy import fixed_point_subspace, restricted_loss

# family name: (small block sizes, isotropy name). The z0 / k0 starting points
# are those of `SPURIOUS_FAMILIES` (same names).
FRACTIONAL_FAMILIES = {
    "delta_sk1": ((1,), "ΔS_{k-1}"),
    "delta_s2_sk2": ((2,), "Δ(S_2×S_{k-2})"),
    "delta_s2_sk2_b": ((2,), "Δ(S_2×S_{k-2})"),
    "delta_sk": ((), "ΔS_k"),
}

IRREPS = ("t", "s", "(m-2,2)", "(m-2,1,1)")


def check_family(name: str) -> str:
    """Raise ValueError unless `name` is a family with a real-k model (`FRACTIONAL_FAMILIES`)."""
    if name not in FRACTIONAL_FAMILIES:
        raise ValueError(f"family: unknown family {name!r}; choose from {', '.join(FRACTIONAL_FAMILIES)}")
    return name


def irrep_dimension(irrep: str, m: float) -> float:
    """Dimension of the S_m irrep t, s, (m−2,2), (m−2,1,1), as a polynomial in m (real m allowed)."""
    return {"t": 1.0, "s": m - 1.0, "(m-2,2)": m * (m - 3) / 2, "(m-2,1,1)": (m - 1) * (m - 2) / 2}[irrep]


def _sizes_fn(blocks, k):
    """Block sizes as a float array: fixed blocks, then the big block k − Σ fixed."""
    return jnp.stack([jnp.asarray(float(n)) for n in blocks] + [k - float(sum(blocks))])


def _has_off(blocks):
    return tuple(n >= 2 for n in blocks) + (True,)


def _embedding(fine_blocks, coarse_blocks, perm=None) -> np.ndarray:
    """Matrix E with z_fine = E z_coarse for Fix(coarse) ⊂ Fix(fine) (0/1 entries, k-independent).

    Computed at one integer k with a big block of size ≥ 3; `perm` optionally
    permutes rows/columns of W (diagonally) between the two.
    """
    k = int(sum(fine_blocks)) + 3
    fine = fixed_point_subspace(k, tuple(fine_blocks) + (k - sum(fine_blocks),))
    coarse = fixed_point_subspace(k, tuple(coarse_blocks) + (k - sum(coarse_blocks),))
    E = np.zeros((fine.dim, coarse.dim))
    for i in range(coarse.dim):
        W = np.asarray(coarse.to_full(np.eye(coarse.dim)[i]))
        if perm is not None:
            W = W[np.ix_(perm, perm)]
        E[:, i] = np.asarray(fine.from_full(W))
    return E


def _swap(fine_blocks, i, j) -> np.ndarray:
    """Permutation of fine z-coordinates induced by swapping the singleton blocks i and j."""
    perm = np.arange(int(sum(fine_blocks)) + 3)
    perm[[i, j]] = [j, i]
    return _embedding(fine_blocks, fine_blocks, perm)


def _orbit_sizes(blocks, k):
    """Orbit sizes of the coordinates of Fix(blocks + (k − Σ,)) as a function of real k."""
    k_ref = int(sum(blocks)) + 3
    labels = fixed_point_subspace(k_ref, tuple(blocks) + (3,)).labels
    n = list(float(b) for b in blocks) + [k - float(sum(blocks))]
    out = []
    for lab in labels:
        kind, rs = lab.split("_")
        r = int(rs[0])
        if kind == "d":
            out.append(n[r])
        elif kind == "o":
            out.append(n[r] * (n[r] - 1))
        else:
            out.append(n[r] * n[int(rs[1])])
    return np.array(out)


def _basis(P, tol=1e-9):
    """Orthonormal basis of the range of an orthogonal projector P."""
    w, v = np.linalg.eigh(0.5 * (P + P.T))
    return v[:, w > 0.5]


def _proj(Q):
    return Q @ Q.T


@dataclasses.dataclass(frozen=True)
class IsotypicStructure:
    """The real-k model of one family: partitions, embeddings and isotypic projectors.

    **Fields:** `small` (fixed block sizes), `fine` (refined fixed sizes),
    `coarse_embedding` (Fix(family) → Fix(fine)), `pieces` (list of
    (label, small-group sign, S_m irrep, projector builder inputs)).
    """

    small: tuple
    fine: tuple
    coarse_embedding: np.ndarray
    E_all: np.ndarray  # Fix(singletons, a∪b∪rest) → fine
    E_a: np.ndarray  # Fix(singletons, a, b∪rest) → fine
    swap_ab: np.ndarray
    small_swaps: tuple

    @property
    def m_offset(self) -> int:
        """m = k − m_offset (size of the big block)."""
        return int(sum(self.small))


@functools.lru_cache(maxsize=None)
def isotypic_structure(small: tuple) -> IsotypicStructure:
    """Build the k-independent linear algebra of a family with fixed blocks `small` (sizes 1 or 2)."""
    if any(n not in (1, 2) for n in small):
        raise ValueError(f"small: fixed blocks must have size 1 or 2, got {small!r}")
    singles = (1,) * int(sum(small))
    fine = singles + (1, 1)
    a = len(singles)
    E_c = _embedding(fine, tuple(small))
    E_all = _embedding(fine, singles)
    E_a = _embedding(fine, singles + (1,))
    swap_ab = _swap(fine, a, a + 1)
    swaps, pos = [], 0
    for n in small:
        if n == 2:
            swaps.append(_swap(fine, pos, pos + 1))
        pos += n
    return IsotypicStructure(tuple(small), fine, E_c, E_all, E_a, swap_ab, tuple(swaps))


@functools.partial(jax.jit, static_argnums=(2,))
def _fine_hessian(zf, k, fine):
    f = lambda z: restricted_loss(z, _sizes_fn(fine, k), _has_off(fine), "relu")
    return jax.hessian(f)(zf)


def isotypic_blocks(small, z, k) -> list[dict]:
    """Hessian blocks on each isotypic component at the family point z (family coordinates), real k.

    **Arguments:** `small` (fixed block sizes of the family, e.g. (1,) for
    ΔS_{k−1}, (2,) for Δ(S_2×S_{k−2})); `z` (restricted coordinates of the
    critical point, as in `fixed_point_subspace`); `k` (real, > Σ small + 3).

    **Returns:** a list of dicts ``{"irrep", "sign", "multiplicity", "matrix",
    "eigenvalues"}``: `irrep` one of `IRREPS` (S_m, m = k − Σ small), `sign`
    '+' / '−' for the swap of a size-2 fixed block ('' if none), `multiplicity`
    = dim of the irrep (float for real k).

    Example:
        >>> import numpy as np
        >>> from symland.gaussian import fixed_point_subspace
        >>> z = fixed_point_subspace(6, "S_{k-1}").from_full(np.eye(6))
        >>> blocks = isotypic_blocks((1,), z, 6.0)
        >>> sum(b["multiplicity"] * len(b["eigenvalues"]) for b in blocks)
        36.0
    """
    st = isotypic_structure(tuple(small))
    k = float(k)
    m = k - st.m_offset
    if not m > 3:
        raise ValueError(f"k: the real-k model needs a big block of size m = k - {st.m_offset} > 3, got k={k:g}")
    zf = st.coarse_embedding @ np.asarray(z, dtype=np.float64)
    Hz = np.asarray(_fine_hessian(jnp.asarray(zf), jnp.asarray(k), st.fine))
    u = np.sqrt(_orbit_sizes(st.fine, k))
    A = Hz / np.outer(u, u)
    A = 0.5 * (A + A.T)
    U = u[:, None]
    n = A.shape[0]
    P_t = _proj(np.linalg.qr(U * st.E_all)[0])
    P_a = _proj(np.linalg.qr(U * st.E_a)[0])
    P_s = P_a - P_t  # one copy of the standard part (S_{m−1}-fixed minus S_m-fixed)
    S = st.swap_ab
    Qa = np.linalg.qr(U * st.E_a)[0]
    uu, sv, _ = np.linalg.svd(np.hstack([Qa, S @ Qa]), full_matrices=False)
    P_ts = _proj(uu[:, sv > 1e-8 * sv[0]])  # t ⊕ s: the a-copy and the b-copy of the S_{m−1}-fixed vectors
    P_rest = np.eye(n) - P_ts
    P_22 = P_rest @ (np.eye(n) + S) / 2
    P_211 = P_rest @ (np.eye(n) - S) / 2
    signs = [("", np.eye(n))]
    for T in st.small_swaps:  # at most one size-2 block in the families used here
        signs = [("+", (np.eye(n) + T) / 2), ("−", (np.eye(n) - T) / 2)]
    out = []
    for irrep, P in (("t", P_t), ("s", P_s), ("(m-2,2)", P_22), ("(m-2,1,1)", P_211)):
        for sign, Ps in signs:
            Q = _basis(P @ Ps)
            if Q.shape[1] == 0:
                continue
            B = Q.T @ A @ Q
            out.append({"irrep": irrep, "sign": sign, "multiplicity": irrep_dimension(irrep, m),
                        "matrix": 0.5 * (B + B.T), "eigenvalues": np.linalg.eigvalsh(0.5 * (B + B.T))})
    return out


def isotypic_spectrum(small, z, k, *, rtol: float = 1e-9) -> list[tuple[float, float, str]]:
    """[(eigenvalue, multiplicity, component), …] ascending, from `isotypic_blocks`; equal values merged."""
    rows = []
    for b in isotypic_blocks(small, z, k):
        for v in b["eigenvalues"]:
            rows.append((float(v), b["multiplicity"], f"{b['irrep']}{b['sign']}"))
    rows.sort()
    merged = []
    for v, mlt, lab in rows:
        if merged and abs(v - merged[-1][0]) <= rtol * max(1.0, abs(v)):
            merged[-1] = (merged[-1][0], merged[-1][1] + mlt, merged[-1][2] + "+" + lab)
        else:
            merged.append((v, mlt, lab))
    return merged


# --- continuation in real k ------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(2,))
def _residual_jac(z, k, small):
    f = lambda z, k: jax.grad(lambda zz: restricted_loss(zz, _sizes_fn(small, k), _has_off(small), "relu"))(z)
    return f(z, k), jax.jacfwd(f, argnums=0)(z, k), jax.jacfwd(f, argnums=1)(z, k)


def _loss(z, k, small):
    return float(restricted_loss(jnp.asarray(z), _sizes_fn(small, jnp.asarray(float(k))), _has_off(small), "relu"))


def _correct(small, y_pred, t, tol=1e-13, max_steps=30):
    """Newton on [∇L_r(z; k) = 0, tᵀ(y − y_pred) = 0]; returns (y, converged)."""
    y = np.array(y_pred, dtype=float)
    for _ in range(max_steps):
        F, Fz, Fk = (np.asarray(a) for a in _residual_jac(jnp.asarray(y[:-1]), jnp.asarray(y[-1]), small))
        r = np.concatenate([F, [t @ (y - y_pred)]])
        if np.max(np.abs(F)) < tol and abs(r[-1]) < 1e-12:
            return y, True
        J = np.vstack([np.hstack([Fz, Fk[:, None]]), t[None, :]])
        try:
            y = y - np.linalg.solve(J, r)
        except np.linalg.LinAlgError:
            return y, False
        if not np.all(np.isfinite(y)):
            return y, False
    F = np.asarray(_residual_jac(jnp.asarray(y[:-1]), jnp.asarray(y[-1]), small)[0])
    return y, bool(np.max(np.abs(F)) < 1e-10)


def _tangent(small, y, prev=None):
    _, Fz, Fk = (np.asarray(a) for a in _residual_jac(jnp.asarray(y[:-1]), jnp.asarray(y[-1]), small))
    J = np.hstack([Fz, Fk[:, None]])
    t = np.linalg.svd(J)[2][-1]
    if prev is not None and t @ prev < 0:
        t = -t
    return t


@dataclasses.dataclass(frozen=True)
class FractionalBranch:
    """A family followed in real k (pseudo-arclength), with isotypic eigenvalues along it.

    **Fields:** `family`, `small`, `k` (per step), `z` (per step), `loss`,
    `min_eigenvalue` (smallest isotypic eigenvalue), `index` (Σ multiplicity
    of negative eigenvalues, real for real k), `blocks` (per step: {component:
    eigenvalues}), `folds` (list of dicts: k, loss of turning points in k),
    `crossings` (list of dicts: k, component, direction, loss), `k_star`
    (where the family turns from saddle into minimum as k increases, or None),
    `k_star_component`, `status` (a RESULTS name: 'converged', or 'failed'
    when the corrector lost the branch before the end of the range).
    """

    family: str
    small: tuple
    k: np.ndarray
    z: np.ndarray
    loss: np.ndarray
    min_eigenvalue: np.ndarray
    index: np.ndarray
    blocks: list
    folds: list
    crossings: list
    k_star: float | None
    k_star_component: str | None
    status: str

    def to_dict(self) -> dict:
        return {"family": self.family, "small": list(self.small), "k": self.k.tolist(),
                "loss": self.loss.tolist(), "min_eigenvalue": self.min_eigenvalue.tolist(),
                "index": self.index.tolist(), "folds": self.folds, "crossings": self.crossings,
                "k_star": self.k_star, "k_star_component": self.k_star_component, "status": self.status}


def _components(small, z, k):
    return {f"{b['irrep']}{b['sign']}": (b["eigenvalues"], b["multiplicity"]) for b in isotypic_blocks(small, z, k)}


def isotypic_index(components, k: float) -> float:
    """The Hessian index at real k: Σ multiplicity · #(λ < −tol) over the isotypic blocks.

    **Arguments:** `components` ({label: (eigenvalues, multiplicity)}, as from
    `isotypic_blocks`), `k`.

    **Returns:** the index (real for real k). tol is `zero_tolerance` of all the
    blocks' eigenvalues with n = ⌈k²⌉, the Hessian's dimension at integer k.

    Example:
        >>> isotypic_index({"a": (np.array([-5e-12, 100.0]), 2.0), "b": (np.array([-0.5]), 1.5)}, 5.0)
        1.5
    """
    eig = np.concatenate([np.ravel(v) for v, _ in components.values()])
    tol = zero_tolerance(eig, n=max(1, int(np.ceil(k * k))))
    return float(sum(m * float(np.sum(np.asarray(v) < -tol)) for v, m in components.values()))


def _signed_nearest_zero(vals):
    return float(vals[np.argmin(np.abs(vals))])


def follow_fractional_family(name: str, k_range=(5.0, 20.0), *, h: float = 0.05, max_points: int = 4000,
                             progress=None) -> FractionalBranch:
    """Follow a family of `SPURIOUS_FAMILIES` in real k by pseudo-arclength continuation.

    Starts at its integer point (k0, z0), goes both ways in arclength until k
    leaves `k_range` (the lower end is raised to Σ small + 3.05 where the model
    stops), through turning points (folds) in k. Records the loss and the
    eigenvalues of every isotypic block (`isotypic_blocks`); locates folds
    (sign change of dk/ds) and zero crossings of isotypic eigenvalues with
    `brentq` along the arclength step.

    **Returns:** a `FractionalBranch` sorted by arclength (low k end first).
    """
    from symland.gaussian._families import SPURIOUS_FAMILIES, solve_on_subspace

    check_family(name)
    small = FRACTIONAL_FAMILIES[name][0]
    lo = max(float(k_range[0]), sum(small) + 3.05)
    hi = float(k_range[1])
    if not hi > lo:
        raise ValueError(f"k_range: empty range {k_range!r} (the model needs k > {sum(small) + 3})")
    isotropy, z0, k0, _ = SPURIOUS_FAMILIES[name]
    z0, gn = solve_on_subspace(fixed_point_subspace(k0, isotropy), np.asarray(z0)[None])
    y0 = np.concatenate([z0[0], [float(k0)]])
    y0, ok = _correct(small, y0, np.zeros_like(y0))
    t0 = _tangent(small, y0)
    halves = []
    failed = False
    for direction in (-1.0, 1.0):
        ys, y, t, step = [y0], y0, direction * t0, h
        while len(ys) < max_points:
            y_new, ok = _correct(small, y + step * t, t)
            if not ok or np.linalg.norm(y_new - y) > 3 * step:
                step /= 2
                if step < 1e-6:
                    failed = True
                    break
                continue
            t = _tangent(small, y_new, t)
            y = y_new
            ys.append(y)
            if progress is not None:
                progress()
            step = min(h, step * 1.5)
            if not lo <= y[-1] <= max(hi, k0 + h):
                break
        halves.append(ys)
    path = halves[0][::-1] + halves[1][1:]
    path = [y for y in path if lo <= y[-1] <= hi]
    if not path:
        raise ValueError(f"k_range: the branch of {name} does not reach {k_range!r}")
    if path[0][-1] > path[-1][-1]:
        path = path[::-1]
    ks = np.array([y[-1] for y in path])
    zs = np.array([y[:-1] for y in path])
    comps = [_components(small, y[:-1], y[-1]) for y in path]
    losses = np.array([_loss(y[:-1], y[-1], small) for y in path])
    min_eig = np.array([min(float(v[0].min()) for v in c.values()) for c in comps])
    index = np.array([isotypic_index(c, y[-1]) for c, y in zip(comps, path)])
    folds, crossings = [], []
    for i in range(len(path) - 1):
        ya, yb = path[i], path[i + 1]
        sec = yb - ya
        hstep = np.linalg.norm(sec)
        tsec = sec / hstep

        def at(sig):
            return _correct(small, ya + sig * tsec, tsec)[0]

        # fold: dk/ds changes sign, i.e. a triv eigenvalue of the restricted Hessian crosses zero
        for lab in comps[i]:
            va, vb = comps[i][lab][0], comps[i + 1][lab][0]
            if np.sum(va < 0) == np.sum(vb < 0):
                continue
            f = lambda sig: _signed_nearest_zero(_components(small, at(sig)[:-1], at(sig)[-1])[lab][0])
            try:
                sig = brentq(f, 0.0, hstep, xtol=1e-13)
            except ValueError:
                sig = 0.5 * hstep
            y = at(sig)
            is_fold = lab.startswith("t") and lab in ("t", "t+")
            rec = {"k": float(y[-1]), "component": lab, "loss": _loss(y[:-1], y[-1], small),
                   "negative_before": int(np.sum(va < 0)), "negative_after": int(np.sum(vb < 0))}
            if is_fold:
                folds.append(rec)
            else:
                rec["direction"] = "stabilising" if np.sum(vb < 0) < np.sum(va < 0) else "destabilising"
                crossings.append(rec)
    # k*: the saddle → minimum transition with k increasing, on the part of the branch that reaches k = hi
    k_star = comp_star = None
    order = np.argsort(ks) if not folds else np.arange(len(ks))
    ks_o, idx_o = ks[order], index[order]
    upper = ks_o[-1] >= ks_o[0]
    if upper and idx_o[-1] == 0:
        j = len(idx_o) - 1
        while j > 0 and idx_o[j - 1] == 0:
            j -= 1
        if j > 0:
            cands = [c for c in crossings + folds if min(ks_o[j - 1], ks_o[j]) - 1e-9 <= c["k"] <= max(ks_o[j - 1], ks_o[j]) + 1e-9]
            if cands:
                k_star, comp_star = cands[0]["k"], cands[0]["component"]
    blocks = [{lab: v[0].tolist() for lab, v in c.items()} for c in comps]
    return FractionalBranch(name, tuple(small), ks, zs, losses, min_eig, index, blocks, folds, crossings,
                            k_star, comp_star, "failed" if failed else "converged")


# --- is there a branch point at a crossing? ------------------------------------------

# extra fixed blocks split off the big block: the Fix of the kernel vector's isotropy
_KERNEL_BLOCKS = {"t": (), "s": (1,), "(m-2,2)": (2,), "(m-2,1,1)": (1, 1)}


@functools.partial(jax.jit, static_argnums=(2,))
def _grad_hess(z, k, blocks):
    f = lambda zz: restricted_loss(zz, _sizes_fn(blocks, k), _has_off(blocks), "relu")
    return jax.grad(f)(z), jax.hessian(f)(z)


def _newton(blocks, z, k, steps=40, tol=1e-12):
    z = np.array(z, dtype=float)
    for _ in range(steps):
        g, H = (np.asarray(a) for a in _grad_hess(jnp.asarray(z), jnp.asarray(float(k)), blocks))
        if np.max(np.abs(g)) < tol:
            return z, True
        try:
            z = z - np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            return z, False
        if not np.all(np.isfinite(z)):
            return z, False
    g = np.asarray(_grad_hess(jnp.asarray(z), jnp.asarray(float(k)), blocks)[0])
    return z, bool(np.max(np.abs(g)) < 1e-10)


def branch_point_check(name: str, branch: FractionalBranch, crossing: dict, *,
                       deltas=(0.04, 0.02, 0.01), amplitudes=(0.005, 0.02, 0.05, 0.1, 0.2, 0.4)) -> dict:
    """Look for critical points of lower symmetry that meet the family where an isotypic eigenvalue crosses zero.

    The kernel vector at the crossing is fixed by a subgroup K ⊂ H; on Fix(K)
    (the family's blocks plus a split-off block: `_KERNEL_BLOCKS`) the crossing
    eigenvalue is simple, so by Crandall–Rabinowitz a branch of critical points
    with isotropy K passes through the family there: transcritical when the
    cubic term along the kernel vector is non-zero (the standard
    representation, with its quadratic equivariant), a pitchfork when a swap
    maps the kernel vector to its negative. Numerically: at k = k* ± δ, Newton
    on Fix(K) from the family point plus ± amplitude × kernel vector; the
    nearest converged critical point other than the family point is recorded.

    **Returns:** ``{"k", "component", "fix_blocks", "cubic_coefficient",
    "rows": [{"delta", "distance", "loss_gap"}…], "branch_point": bool,
    "scaling_exponent"}`` where distance is ‖W_branch − W_family‖_F (metric of
    the orbit sizes) and the exponent is fitted to distance ∝ |δ|^p (≈1
    transcritical, ≈½ pitchfork).
    """
    small = branch.small
    lab = crossing["component"]
    irrep = lab.rstrip("+−")
    sign = lab[len(irrep):]
    base = (1,) * int(sum(small)) if sign == "−" else tuple(small)
    blocks = base + _KERNEL_BLOCKS[irrep]
    if sum(blocks) + 2 >= crossing["k"]:
        return {"k": crossing["k"], "component": lab, "fix_blocks": list(blocks), "rows": [], "branch_point": None}
    E = _embedding(blocks, tuple(small))
    k_star = crossing["k"]
    j = int(np.argmin(np.abs(branch.k - k_star)))
    z_star, _ = _newton(tuple(small), branch.z[j], k_star)
    zK = E @ z_star
    _, H = (np.asarray(a) for a in _grad_hess(jnp.asarray(zK), jnp.asarray(k_star), blocks))
    Msz = _orbit_sizes(blocks, k_star)
    u = np.sqrt(Msz)
    w, V = np.linalg.eigh((H / np.outer(u, u) + (H / np.outer(u, u)).T) / 2)
    i0 = int(np.argmin(np.abs(w)))
    v = V[:, i0] / u  # z-direction of the kernel vector, ‖W(v)‖_F = 1
    f = lambda t: restricted_loss(jnp.asarray(zK) + t * jnp.asarray(v), _sizes_fn(blocks, jnp.asarray(k_star)),
                                  _has_off(blocks), "relu")
    c3 = float(jax.grad(jax.grad(jax.grad(f)))(0.0))
    rows = []
    for delta in sorted({s * d for d in deltas for s in (-1.0, 1.0)}):
        k = k_star + delta
        zf, ok = _newton(tuple(small), z_star, k)
        zfK = E @ zf
        best = None
        for a in amplitudes:
            for s in (-1.0, 1.0):
                z, ok2 = _newton(blocks, zfK + s * a * v, k)
                dist = float(np.sqrt(np.sum(Msz * (z - zfK) ** 2))) if ok2 else np.inf
                if ok2 and 1e-7 < dist < 1.0 and (best is None or dist < best[0]):
                    best = (dist, _loss(z, k, blocks) - _loss(zf, k, tuple(small)))
        rows.append({"delta": delta, "distance": None if best is None else best[0],
                     "loss_gap": None if best is None else best[1]})
    found = [r for r in rows if r["distance"] is not None]
    exponent = None
    if len(found) >= 3:
        dd = np.abs([r["delta"] for r in found])
        ds = np.array([r["distance"] for r in found])
        exponent = float(np.polyfit(np.log(dd), np.log(ds), 1)[0])
    shrinking = bool(found) and min(r["distance"] for r in found) < 0.2
    return {"k": k_star, "component": lab, "fix_blocks": list(blocks), "cubic_coefficient": c3,
            "rows": rows, "branch_point": shrinking, "scaling_exponent": exponent}
