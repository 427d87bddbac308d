"""Permutation points and their plateaus (Brea et al. 2019, §4.2 (i), Prop. 2, App. D).

At a permutation point θ_{l⇔m} of layer k the neurons l and m have the same
incoming vector ϑ and the same outgoing weights. Shifting outgoing weight
between them, W_{n,l} + s_n and W_{n,m} − s_n for every neuron n of layer
k+1, does not change the network function: the point lies on an
n_{k+1}-dimensional affine plane of equal loss. For a K-th order point
(groups of neurons with equal ϑ, §4.3) the plane has K·n_{k+1} dimensions
(Prop. 2).

**Where the paper is wrong (checked numerically, see `verify_plateau`).**
§4.2 (i) says the whole plane consists of critical points and that the
Hessian has at least n_{k+1} zero eigenvalues. That holds for n_{k+1} = 1
(the Fukumizu–Amari line), not in general: on the plane the gradient with
respect to ϑ_l is Σ_n s_n g_n with g_n = Σ_μ δ_n^μ g'(ϑ·h̃^μ) h̃^μ, which
vanishes only for Σ_n s_n g_n = 0. Criticality of the narrow network only
gives Σ_n W_{n,l} g_n = 0. The critical points on the plane therefore form
an affine subspace of dimension K·n_{k+1} − rank(H·D) (generically K), the
Hessian nullity is bounded below by that number, and since the quadratic
form of ∇²L vanishes on the whole equal-loss plane (an isotropic subspace),
nullity + min(index, n_positive) ≥ K·n_{k+1}: a permutation point with
n_{k+1} > 1 outgoing weights is in general a saddle of index > 1,
contrary to "at most one negative eigenvalue" (Fukumizu & Amari's Th. 3 is
for a scalar output).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._critical import (DENSE_THRESHOLD, hessian_spectrum, hessian_vector_product,
                        loss_and_gradient_norm)
from ._results import CriticalPointReport, zero_tolerance
from ._network import Params
from ._symmetry import check_hidden_layer, check_neuron_pair, neuron_vectors
from ._transition_network import neuron_blocks


def _check_incoming(params, layer, l, m, atol):
    V = np.asarray(neuron_vectors(params, layer))
    d_in = float(np.max(np.abs(V[l] - V[m])))
    if not d_in <= atol:
        raise ValueError(
            f"params: not a permutation point of layer {layer}: incoming vectors of neurons "
            f"{l} and {m} differ (max |ϑ_l − ϑ_m| = {d_in:.3g} > atol = {atol:.3g})")


def check_permutation_point(params: Params, layer: int, l: int, m: int, *, loss_fn=None,
                            atol: float = 1e-8, gtol: float = 1e-8) -> None:
    """`ValueError` unless θ is a permutation point θ_{l⇔m} of layer k (§4.1–4.2).

    Three properties are checked in turn, and the message names the first
    that fails: the incoming vectors ϑ_l, ϑ_m agree within `atol`; the
    outgoing weights W^(k+1)_{:,l}, W^(k+1)_{:,m} agree within `atol`; and,
    when `loss_fn` is given, ‖∇L(θ)‖∞ ≤ `gtol` · max(1, |L|).
    """
    check_neuron_pair(params, layer, l, m)
    _check_incoming(params, layer, l, m, atol)
    W2 = np.asarray(params[layer][0])
    d_out = float(np.max(np.abs(W2[:, l] - W2[:, m])))
    if not d_out <= atol:
        raise ValueError(
            f"params: not a permutation point of layer {layer}: outgoing weights of neurons "
            f"{l} and {m} differ (max |W_{{:,l}} − W_{{:,m}}| = {d_out:.3g} > atol = {atol:.3g})")
    if loss_fn is not None:
        loss, gn = loss_and_gradient_norm(loss_fn, params)
        tol = gtol * max(1.0, abs(loss))
        if not gn <= tol:
            raise ValueError(
                f"params: not a permutation point of layer {layer}: gradient not zero "
                f"(‖∇L‖∞ = {gn:.3g} > {tol:.3g})")


def is_permutation_point(params: Params, layer: int, l: int, m: int, *, loss_fn=None,
                         atol: float = 1e-8, gtol: float = 1e-8) -> bool:
    """Whether `check_permutation_point` passes (bad indices still raise)."""
    check_neuron_pair(params, layer, l, m)
    try:
        check_permutation_point(params, layer, l, m, loss_fn=loss_fn, atol=atol, gtol=gtol)
    except ValueError as err:
        if "not a permutation point" in str(err):
            return False
        raise
    return True


def identical_neuron_groups(params: Params, layer: int, *, atol: float = 1e-8) -> list[list[int]]:
    """Groups (size ≥ 2) of neurons of layer k whose incoming vectors agree within `atol`.

    These are the merged neurons of a K-th order permutation point (§4.3);
    K = Σ (size − 1).
    """
    n = check_hidden_layer(params, layer)
    V = np.asarray(neuron_vectors(params, layer))
    seen, groups = set(), []
    for i in range(n):
        if i in seen:
            continue
        g = [j for j in range(i, n) if j not in seen and np.max(np.abs(V[j] - V[i])) <= atol]
        seen.update(g)
        if len(g) > 1:
            groups.append(g)
    return groups


def plateau_directions(params: Params, layer: int, groups) -> np.ndarray:
    """A basis of the equal-loss plane of Prop. 2, as rows in `ravel_pytree` order.

    For every group (j_0, j_1, …) of identical neurons, every j_i (i ≥ 1) and
    every neuron n of layer k+1 one direction: +1 on W^(k+1)_{n,j_0},
    −1 on W^(k+1)_{n,j_i}. There are Σ (|group| − 1)·n_{k+1} = K·n_{k+1}.
    The one builder of this output-weight split basis: the copy part of an
    over-parameterised minimum's subspace (`minimum_subspace_directions`) is
    the same plane.
    """
    check_hidden_layer(params, layer)
    W2 = params[layer][0]
    n_next = W2.shape[0]
    rows = [np.zeros((0, ravel_pytree(params)[0].size))]
    for g in groups:
        for j in g[1:]:
            for n in range(n_next):
                D = jnp.zeros_like(W2).at[n, g[0]].set(1.0).at[n, j].set(-1.0)
                tree = jax.tree_util.tree_map(jnp.zeros_like, params)
                tree = list(tree)
                tree[layer] = (D, tree[layer][1])
                rows.append(np.asarray(ravel_pytree(tree)[0])[None])
    return np.vstack(rows)


@dataclasses.dataclass(frozen=True)
class PlateauReport:
    """The plateau of a (K-th order) permutation point, measured.

    **Fields:**
    - `point`: a `CriticalPointReport` of θ (loss, ‖∇L‖∞, Hessian index,
      nullity, verdict at ‖∇L‖∞ ≤ `gtol`) from the dense spectrum, or None
      above `DENSE_THRESHOLD` parameters.
    - `loss`: L(θ); `grad_norm`: ‖∇L(θ)‖∞ (also known without the spectrum).
    - `groups`: the groups of identical neurons; `order` K = Σ(|g| − 1).
    - `plane_dimension`: K·n_{k+1}, the dimension of the equal-loss plane (Prop. 2).
    - `plateau_dimension`: how many of the plane's basis directions were
      found flat (loss constant within `rtol` at every sample along them).
    - `max_rel_loss_change`: max |L(θ') − L(θ)| / max(|L(θ)|, tiny) over all samples θ'.
    - `critical_dimension`: dimension of the critical points within the plane,
      K·n_{k+1} − rank(∇²L·D) (n_{k+1} = 1: the whole plane; in general less).
    - `plane_grad_norm`: max ‖∇L‖∞ over random points of the plane.
    - `critical_grad_norm`: max ‖∇L‖∞ over random points of the critical part.
    - `n_samples`, `radius`: the sampling used.

    `hessian_index`, `hessian_nullity` and `zero_tol` read `point` (None
    without it).
    """

    loss: float
    groups: list
    order: int
    plane_dimension: int
    plateau_dimension: int
    max_rel_loss_change: float
    critical_dimension: int
    plane_grad_norm: float
    critical_grad_norm: float
    grad_norm: float
    point: CriticalPointReport | None
    n_samples: int
    radius: float

    @property
    def hessian_index(self) -> int | None:
        return None if self.point is None else self.point.index

    @property
    def hessian_nullity(self) -> int | None:
        return None if self.point is None else self.point.nullity

    @property
    def zero_tol(self) -> float | None:
        return None if self.point is None else self.point.zero_tol

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "point"}
        out["point"] = None if self.point is None else self.point.to_dict()
        return out


def verify_plateau(loss_fn, params: Params, layer: int, groups=None, *, n_samples: int = 16,
                   radius: float = 1.0, rtol: float = 1e-12, seed: int = 0,
                   atol: float = 1e-8, gtol: float = 1e-8) -> PlateauReport:
    """Measure the equal-loss plane of a permutation point (§4.2 (i), Prop. 2, App. D).

    Samples points θ + Σ_i s_i D_i of the plane spanned by
    `plateau_directions` (s_i uniform in [−radius, radius] times the size of
    the outgoing weights), checks the loss, the gradient and the Hessian.

    **Arguments:**
    - `loss_fn`: θ ↦ L(θ).
    - `params`: a (K-th order) permutation point.
    - `layer`: the hidden layer k.
    - `groups`: groups of identical neurons, e.g. `[[l, m]]`; default: found
      by `identical_neuron_groups`.
    - `n_samples`: random points of the plane (plus 2 per basis direction).
    - `rtol`: relative loss change that still counts as flat.
    - `atol`: how close incoming vectors must be to count as identical.
    - `gtol`: ‖∇L‖∞ up to which θ counts as critical in `point`.

    **Returns:** a `PlateauReport`.
    """
    n = check_hidden_layer(params, layer)
    if groups is None:
        groups = identical_neuron_groups(params, layer, atol=atol)
    groups = [list(map(int, g)) for g in groups]
    if not groups:
        raise ValueError(
            f"params: not a permutation point of layer {layer}: no two neurons share an "
            "incoming vector")
    for g in groups:
        if len(g) < 2 or len(set(g)) != len(g) or not all(0 <= j < n for j in g):
            raise ValueError(f"groups: {groups!r} must be groups of ≥ 2 distinct neurons of 0…{n - 1}")
        for j in g[1:]:  # only ϑ must agree: an unequal output split is still on the plane
            _check_incoming(params, layer, g[0], j, atol)
    x0, unravel = ravel_pytree(params)
    D = jnp.asarray(plateau_directions(params, layer, groups))
    p = D.shape[0]
    vg = jax.jit(jax.vmap(jax.value_and_grad(lambda x: loss_fn(unravel(x)))))
    loss0, g0 = jax.value_and_grad(lambda x: loss_fn(unravel(x)))(x0)
    loss0 = float(loss0)
    scale = radius * max(float(jnp.max(jnp.abs(params[layer][0]))), 1.0)
    rng = np.random.default_rng(seed)
    denom = max(abs(loss0), np.finfo(np.float64).tiny)

    # Along each basis direction, both ways.
    axis_pts = jnp.concatenate([x0 + scale * D, x0 - scale * D])
    axis_loss, _ = vg(axis_pts)
    axis_rel = np.abs(np.asarray(axis_loss) - loss0) / denom
    flat = (axis_rel[:p] <= rtol) & (axis_rel[p:] <= rtol)
    plateau_dim = int(np.linalg.matrix_rank(np.asarray(D)[flat])) if flat.any() else 0

    # Random points of the plane.
    S = rng.uniform(-scale, scale, size=(n_samples, p))
    pts = x0 + jnp.asarray(S) @ D
    pl_loss, pl_grad = vg(pts)
    rel = max(float(np.max(axis_rel)), float(np.max(np.abs(np.asarray(pl_loss) - loss0)) / denom))
    plane_gn = float(jnp.max(jnp.abs(pl_grad)))

    # The gradient is affine on the plane: ∇L(θ + Ds) = ∇L(θ) + H D s.
    hvp = jax.vmap(hessian_vector_product(loss_fn, params))
    HD = np.asarray(hvp(D)).T  # (P, p)
    if x0.size <= DENSE_THRESHOLD:
        eig = hessian_spectrum(loss_fn, params, method="dense")
        point = CriticalPointReport.from_spectrum(loss0, float(jnp.max(jnp.abs(g0))), eig, gtol=gtol)
        h_scale = float(np.max(np.abs(eig)))
    else:
        point = None
        probe = hvp(jnp.asarray(rng.standard_normal((4, x0.size))))
        h_scale = float(jnp.max(jnp.linalg.norm(probe, axis=1))) / np.sqrt(x0.size)
    sv = np.linalg.svd(HD, compute_uv=False) if p else np.zeros(0)
    rank_tol = zero_tolerance([], n=x0.size, scale=h_scale)
    crit_dim = p - int(np.sum(sv > rank_tol))
    if crit_dim > 0:
        _, _, Vt = np.linalg.svd(HD)
        null = Vt[p - crit_dim:]
        C = rng.uniform(-scale, scale, size=(n_samples, crit_dim)) @ null
        _, c_grad = vg(x0 + jnp.asarray(C) @ D)
        crit_gn = float(jnp.max(jnp.abs(c_grad)))
    else:
        crit_gn = float("nan")
    order = sum(len(g) - 1 for g in groups)
    return PlateauReport(
        loss=loss0, groups=groups, order=order, plane_dimension=p, plateau_dimension=plateau_dim,
        max_rel_loss_change=rel, critical_dimension=crit_dim, plane_grad_norm=plane_gn,
        critical_grad_norm=crit_gn, grad_norm=float(jnp.max(jnp.abs(g0))),
        point=point, n_samples=n_samples,
        radius=radius)


def _odd_directions(params: Params, layer: int, l: int, m: int) -> np.ndarray:
    """The σ_{l⇔m}-odd directions of θ as orthonormal columns (n × p): each pair of matching entries
    of neurons l and m of layer k (incoming row, bias, outgoing column), (e_l − e_m)/√2."""
    flat, unravel = ravel_pytree(params)
    il, im = neuron_blocks(unravel, flat.size, layer)[[l, m]]
    Q = np.zeros((flat.size, il.size))
    Q[il, np.arange(il.size)], Q[im, np.arange(il.size)] = 2 ** -0.5, -2 ** -0.5
    return Q


def odd_block_spectrum(loss_fn, params: Params, layer: int, l: int, m: int, *,
                       atol: float = 1e-8) -> np.ndarray:
    """The eigenvalues of ∇²L(θ_{l⇔m}) on the σ_{l⇔m}-odd subspace, exactly, from p HVPs.

    At a permutation point (ϑ_l = ϑ_m, W^(k+1)_{:,l} = W^(k+1)_{:,m};
    `check_permutation_point`) the swap σ = σ^(k)_{l⇔m} fixes θ, and
    L∘σ = L gives σ ∇²L(θ) σ = ∇²L(θ). So ∇²L maps σ-odd vectors (σv = −v:
    opposite changes of the two neurons' incoming rows and outgoing columns,
    nothing else) to σ-odd vectors, and its spectrum is that of the
    p × p block on the odd subspace, p = n_{k−1} + 1 + n_{k+1} (n_{k−1} +
    n_{k+1} without biases), together with that of the block on its
    complement. The odd block holds the directions the paper's claims are
    about: the n_{k+1} outgoing ones span the equal-loss plane of §4.2 (i),
    an isotropic subspace of ∇²L (`verify_plateau`), and the incoming ones
    split the merged neuron. It costs p Hessian-vector products at any size;
    its eigenvalues carry no Lanczos error.

    **Returns:** the p eigenvalues, ascending. `ValueError` naming `params`
    unless θ is a permutation point of layer k within `atol`.

    Example:
        >>> import jax, jax.numpy as jnp, symland as s
        >>> model = s.MLP((2, 3, 1), "tanh")
        >>> (W, b), (a, c) = model.init(jax.random.PRNGKey(0))
        >>> p = [(W.at[1].set(W[0]), b.at[1].set(b[0])), (a.at[:, 1].set(a[:, 0]), c)]
        >>> x = jax.random.normal(jax.random.PRNGKey(1), (20, 2))
        >>> loss = lambda q: s.mse(model, q, x, jnp.sin(x[:, :1]))
        >>> s.odd_block_spectrum(loss, p, 1, 0, 1).shape
        (4,)
    """
    check_permutation_point(params, layer, l, m, atol=atol)
    Q = _odd_directions(params, layer, l, m).T
    HQ = np.asarray(jax.vmap(hessian_vector_product(loss_fn, params))(jnp.asarray(Q)))
    B = Q @ HQ.T
    return np.linalg.eigvalsh(0.5 * (B + B.T))


def classify_permutation_point(loss_fn, params: Params, layer: int, l: int, m: int, *,
                               gtol: float = 1e-8, method: str = "auto", k: int = 20,
                               max_hvps: int | None = None, atol: float = 1e-8,
                               even=True) -> CriticalPointReport:
    """`classify_critical_point` for a permutation point θ_{l⇔m}, its σ-odd block solved exactly.

    ∇²L(θ_{l⇔m}) splits into its σ_{l⇔m}-odd block, whose p eigenvalues
    `odd_block_spectrum` finds exactly from p HVPs, and its σ-even block on
    the orthogonal complement (coordinates w: every other parameter as is,
    each pair entry θ_l = θ_m shifted together by w/√2), which
    `classify_critical_point` treats as it would any Hessian: `method`
    (dense up to `DENSE_THRESHOLD` even coordinates, the `k` smallest by
    Lanczos above, within `max_hvps` HVPs per run). The report holds both
    parts' eigenvalues, which are eigenvalues of ∇²L with no double count
    since the blocks are orthogonal invariant subspaces: `part` is `all`
    when the even block was dense, `smallest` (the union cut at the k-th
    even eigenvalue, so that nothing is missing below it) or `partial` as
    Lanczos ended. So a negative odd eigenvalue decides `strict saddle`
    even where Lanczos converged nothing, as on the Fig. 3 permutation
    point (docs/mnist.md). `zero_tol` is `zero_tolerance` of the union at
    the full dimension n; `grad_norm` is the full ‖∇L‖∞. `even` may also
    be an `EvenBlockSpectrum` of the same point (`even_block_spectrum`,
    where Lanczos fails): its k smallest eigenvalues and its `n_flat`
    exact zeros then stand for the even block, `part="smallest"` if it
    converged (the odd values and zeros above its largest cut, as above)
    and `partial` if not; or `False`: the odd block alone, `partial`.
    Without a dense even block the zero tolerance scales with the largest
    eigenvalue of ∇²L, from Lanczos within `max_hvps`, as
    `classify_critical_point` does.

    **Returns:** a `CriticalPointReport`. `ValueError` naming `params`
    unless θ is a permutation point of layer k within `atol`.

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np, symland as s
        >>> model = s.MLP((2, 3, 1), "tanh")
        >>> (W, b), (a, c) = model.init(jax.random.PRNGKey(0))
        >>> p = [(W.at[1].set(W[0]), b.at[1].set(b[0])), (a.at[:, 1].set(a[:, 0]), c)]
        >>> x = jax.random.normal(jax.random.PRNGKey(1), (20, 2))
        >>> loss = lambda q: s.mse(model, q, x, jnp.sin(x[:, :1]))
        >>> r = s.classify_permutation_point(loss, p, 1, 0, 1)
        >>> r.part, bool(np.allclose(r.eigenvalues, s.hessian_spectrum(loss, p, method="dense")))
        ('all', True)
    """
    from ._critical import classify_critical_point

    if not isinstance(even, (bool, EvenBlockSpectrum)):
        raise ValueError(f"even: must be True, False or an EvenBlockSpectrum, got {even!r}")
    odd = odd_block_spectrum(loss_fn, params, layer, l, m, atol=atol)
    if even is not True:  # the tolerance still scales with ‖H‖₂: the largest eigenvalue, as classify_critical_point
        from ._critical import largest_eigenvalue

        loss, grad_norm = loss_and_gradient_norm(loss_fn, params)
        n = int(ravel_pytree(params)[0].size)
        top, known = largest_eigenvalue(loss_fn, params, method="lanczos" if n > DENSE_THRESHOLD else "dense",
                                        max_hvps=max_hvps)
        eig, part = (odd, "partial") if even is False else even.join(odd)
        return CriticalPointReport.from_spectrum(loss, grad_norm, eig, gtol=gtol, part=part if known else "partial",
                                                 n=n, zero_tol=zero_tolerance(np.concatenate([eig, top]), n=n))
    flat, unravel = ravel_pytree(params)
    il, im = neuron_blocks(unravel, flat.size, layer)[[l, m]]
    keep = np.setdiff1d(np.arange(flat.size), np.concatenate([il, im]))
    n, q = flat.size, keep.size

    def embed(w):  # the σ-even coordinates w ↦ θ (an isometry onto θ + even subspace)
        pair = w[q:] / np.sqrt(2.0)
        return unravel(flat.at[keep].add(w[:q]).at[il].add(pair).at[im].add(pair))

    even = classify_critical_point(lambda w: loss_fn(embed(w)), jnp.zeros(n - odd.size, flat.dtype),
                                   gtol=gtol, method=method, k=k, max_hvps=max_hvps)
    loss, grad_norm = loss_and_gradient_norm(loss_fn, params)
    if even.part == "smallest":
        odd = odd[odd <= even.eigenvalues[-1]]
    # zero_tolerance is 100·dim·ε·max|λ|: the even block's at dimension n, then the union's
    zero_tol = max(even.zero_tol * n / even.n, zero_tolerance(odd, n=n))
    return CriticalPointReport.from_spectrum(loss, grad_norm, np.concatenate([even.eigenvalues, odd]),
                                             gtol=gtol, part=even.part, n=n, zero_tol=zero_tol)


@dataclasses.dataclass(frozen=True)
class EvenBlockSpectrum:
    """The smallest eigenvalues of the σ-even Hessian block at a permutation point (`even_block_spectrum`).

    **Fields:** `eigenvalues` (the k smallest of the even block off its
    exactly flat directions, ascending: eigenvalues of ∇²L), `residuals`
    (‖Hv − λv‖ of each unit Ritz vector: an eigenvalue lies within it of
    λ), `status` (a `RESULTS` name: `converged` when every residual is
    below |λ|, so that each sign is certain, otherwise `max_steps`),
    `hvps`, and `n_flat`: the even directions left out because the loss is
    exactly flat along them, the first-layer rows along the input
    directions without energy (n₁ per such direction, `DARK_RTOL`), each a
    zero eigenvalue of ∇²L whatever the point. Ritz values bound the
    eigenvalues from above (the i-th smallest eigenvalue off those
    directions is at most the i-th Ritz value, Courant–Fischer), so the
    count of negative values is a lower bound on the even block's index
    whatever the status. `classify_permutation_point(even=…)` joins them
    with the exact odd block into one report.
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    status: str
    hvps: int
    n_flat: int

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    @property
    def n_flat_joined(self) -> int:
        """How many of the `n_flat` zeros `join` keeps: all, unless the solve converged with every
        value found negative (the zeros then lie above them and are cut)."""
        return 0 if self.converged and self.eigenvalues[-1] < 0 else self.n_flat

    def join(self, odd) -> tuple[np.ndarray, str]:
        """(eigenvalues, part) of ∇²L from these and the exact odd block's `odd`: `smallest` when
        converged, the odd values above the largest even one cut (nothing is missing below it), with
        the kept flat zeros (`n_flat_joined`); `partial` otherwise, all of them."""
        odd = np.asarray(odd, dtype=np.float64)
        part = "smallest" if self.converged else "partial"
        if part == "smallest":
            odd = odd[odd <= self.eigenvalues[-1]]
        return np.concatenate([odd, np.zeros(self.n_flat_joined), self.eigenvalues]), part

    def to_dict(self) -> dict:
        return {"eigenvalues": self.eigenvalues.tolist(), "residuals": self.residuals.tolist(),
                "status": self.status, "hvps": self.hvps, "n_flat": self.n_flat}


EVEN_BLOCK_BATCH = 8
"""Columns per batched product in `even_block_spectrum` (`jax.vmap`): each product reads the data
and the preconditioner's factor once for 8 vectors instead of once per vector (on a σ-fixed Fig. 3
point 8 HVPs took 0.126 s batched against 0.202 s, 8 preconditioner applications 0.052 s against
0.158 s; BENCHMARKS.md)."""

EVEN_BLOCK_K = 16
"""How many of the even block's smallest eigenvalues `even_block_spectrum` finds by default."""


def even_block_spectrum(model, params: Params, x, y, layer: int, l: int, m: int, *, loss: str = "mse",
                        k: int = EVEN_BLOCK_K, max_iter: int = 200, seed: int = 0,
                        atol: float = 1e-8, problem=None) -> EvenBlockSpectrum:
    """The k smallest eigenvalues of ∇²L's σ_{l⇔m}-even block, matrix-free, preconditioned exactly.

    Where Lanczos on the even block converges nothing (the Fig. 3
    permutation point: `classify_permutation_point` with Lanczos then
    reports its index as a lower bound and its near-zero count as
    unknown), this finds them by LOBPCG (`scipy.sparse.linalg.lobpcg`, at
    most `max_iter` iterations, a random start from `seed`) on ∇²L itself,
    constrained to the even subspace (orthogonal to the p σ-odd directions
    of `odd_block_spectrum`), with a preconditioner that Lanczos cannot
    use. At δ = 0 the free parameters s of the fixed-δ problem (Brea et
    al. 2019, §4.1; `path_problem`, whitened first layer; row m of layer k
    holds a direction u that δ = 0 multiplies by zero) map linearly onto θ,
    θ = As (ϑ_m = ϑ_l, output weights a_l and a_m free), and A maps the
    s-space off its exactly flat directions (u, and the output differences
    a_l − a_m) one-to-one onto the even subspace E. So the even block's
    inverse is A(Aᵀ∇²L A)⁻¹Aᵀ on E, and with the fixed-δ problem's exact
    Gauss–Newton factors M̃ ≈ (Aᵀ∇²L A)⁻¹ (`gauss_newton_preconditioner`,
    λ = `GN_DAMPING_NEAR`) the preconditioner is Π_E A M̃ Aᵀ Π_E. M̃ also
    keeps the iteration off the first-layer directions along input
    directions without energy (`DARK_RTOL`), where the loss is exactly flat:
    they are `n_flat` zero eigenvalues of the even block, counted, not
    iterated on. The method suits points near a minimum of the merged
    network, where the residuals are small and the Gauss–Newton matrix is
    close to the Hessian; far from one LOBPCG may stop short, and says so
    (`max_steps`). On the Fig. 3 permutation point the 16 smallest came
    out positive, 1.1e−9 to 2.6e−8, eight of them below the report's zero
    tolerance (BENCHMARKS.md, "The even block of the Fig. 3 permutation
    point, by its own eigenvalues"). As with any iterative eigensolver,
    the smallest could in principle be missed by the start;
    `benchmarks/diagnose_permutation_point.py` repeats them with another k.

    **Arguments:** `model` (with biases, split layer k ≥ 2, which the
    Gauss–Newton preconditioner needs), a permutation point `params` of
    layer k within `atol` (`check_permutation_point`), the data `x`, `y`
    and `loss` (`mse` or `nmse`) of L; `k` ≥ 1 with 5k at most the
    dimension of the even subspace (LOBPCG's own limit). `problem`: the
    fixed-δ problem of this model, layer, loss and data with the Gauss–Newton
    preconditioner (`path_problem(..., preconditioner="gauss-newton")`;
    default: built here), so that a caller that has one (`matrix_free_paths`)
    does not compile a second (only the preconditioner comes from it: the
    products and residuals are of ∇²L itself). The factors are built at `params` either way:
    on the Fig. 3 permutation point those of the δ = 0 solve's last
    factorisation, seven trust-region iterations earlier, took LOBPCG 2,111
    HVPs against 146 (BENCHMARKS.md, issue 10).

    **Returns:** an `EvenBlockSpectrum`. `ValueError` naming the argument,
    before any computation.

    Example (a σ-fixed point fitting its targets up to small residuals;
    tests/test_plateau.py compares the eigenvalues with a dense computation):
        >>> import jax, jax.numpy as jnp, symland as s
        >>> model = s.MLP((3, 4, 3, 2), "softplus")
        >>> (W1, b1), (W2, b2), (W3, b3) = model.init(jax.random.PRNGKey(3))
        >>> a = 0.5 * (W3[:, 0] + W3[:, 2])
        >>> p = [(W1, b1), (W2.at[2].set(W2[0]), b2.at[2].set(b2[0])), (W3.at[:, 0].set(a).at[:, 2].set(a), b3)]
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (60, 3))
        >>> y = model.apply(p, x) + 0.0003 * jnp.sin(x[:, :2])
        >>> r = s.even_block_spectrum(model, p, x, y, 2, 0, 2, k=3)
        >>> r.status, r.eigenvalues.shape, r.n_flat
        ('converged', (3,), 0)
    """
    from scipy.sparse.linalg import LinearOperator, lobpcg

    from ._loss import LOSSES, check_data, mse, nmse
    from ._newton_krylov import GN_DAMPING_NEAR, FlatProblem, dark_input_directions, path_problem
    from ._path import effective_params

    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer < 2:
        raise ValueError(f"layer: the Gauss–Newton preconditioner's free rows lie in layer k ≥ 2, got {layer!r}")
    check_permutation_point(params, layer, l, m, atol=atol)
    if not model.bias:
        raise ValueError("model: the Gauss–Newton preconditioner needs biases")
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    x, y = check_data(model, x, y)
    flat, unravel = ravel_pytree(params)
    Q = _odd_directions(params, layer, l, m)
    n, p = Q.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= (n - p) // 5:
        raise ValueError(f"k: need an integer in [1, {(n - p) // 5}] (5k at most the {n - p} even "
                         f"coordinates), got {k!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter: must be a positive integer, got {max_iter!r}")
    if problem is not None and getattr(problem, "factorise", None) is None:
        raise ValueError("problem: needs the Gauss–Newton preconditioner "
                         "(path_problem(..., preconditioner='gauss-newton'))")
    free = list(params)  # δ = 0 free parameters: row m of layer k holds u (any unit vector)
    W, b = params[layer - 1]
    free[layer - 1] = (W.at[m].set(jnp.ones(W.shape[1]) / np.sqrt(W.shape[1])), b.at[m].set(0.0))
    v, unravel_free = ravel_pytree(free)
    if problem is None:
        problem = path_problem(model, layer, loss, x, preconditioner="gauss-newton")
    args = (0.0, l, m, x, y)
    factors = problem.factorise(v, *args, damping=GN_DAMPING_NEAR)
    s0 = problem.to_s(v)
    # A: s ↦ θ at δ = 0, linear (u enters multiplied by zero), linearised at s0 as a pytree of its residuals
    # (jit returns a `Partial`), so that it is an argument of the batched products below; Aᵀ by transposition
    A = jax.jit(lambda s: jax.linearize(lambda s_: ravel_pytree(effective_params(
        unravel_free(problem.to_v(s_)), layer, l, m, 0.0, None))[0], s)[1])(s0)
    s_shape = jax.ShapeDtypeStruct(s0.shape, s0.dtype)
    loss_of = mse if loss == "mse" else nmse
    apply_H, operands_H = FlatProblem(lambda t, x, y: loss_of(model, unravel(t), x, y)).hvp_operator(flat, x, y)

    def apply_M(operands, r):
        A_, factors_ = operands
        return A_(problem.apply_preconditioner(factors_, jax.linear_transpose(A_, s_shape)(r)[0]))

    count = [0]
    even = lambda X: X - Q @ (Q.T @ X)

    def columns(apply, operands):
        """X ↦ Π_E apply(operands, ·) Π_E on each column, EVEN_BLOCK_BATCH at a time: one jitted, vmapped
        program (padded: one compilation), its operands passed, not compiled in."""
        fX = jax.jit(jax.vmap(apply, in_axes=(None, 1), out_axes=1))

        def on(X):
            X = even(np.asarray(X).reshape(n, -1))
            c = X.shape[1]
            pad = np.zeros((n, -c % EVEN_BLOCK_BATCH))
            out = [np.asarray(fX(operands, chunk)) for chunk in
                   np.split(np.concatenate([X, pad], axis=1), (c + pad.shape[1]) // EVEN_BLOCK_BATCH, axis=1)]
            return even(np.concatenate(out, axis=1)[:, :c])

        return on

    H_columns = columns(apply_H, operands_H)

    def H(X):
        count[0] += np.asarray(X).reshape(n, -1).shape[1]
        return H_columns(X)

    M = columns(apply_M, (A, factors))
    op = lambda f: LinearOperator((n, n), matvec=f, matmat=f, dtype=np.float64)
    X0 = M(np.random.default_rng(seed).standard_normal((n, k)))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lobpcg warns when it stops short; the residuals say so below
        vals, vecs = lobpcg(op(H), X0, M=op(M), Y=Q, largest=False, tol=1e-9, maxiter=int(max_iter))
    order = np.argsort(vals)
    vals, vecs = vals[order], vecs[:, order]
    res = np.linalg.norm(H(vecs) - vecs * vals, axis=0) / np.linalg.norm(vecs, axis=0)
    status = "converged" if bool(np.all(res < np.abs(vals))) else "max_steps"
    n_flat = int(model.widths[1]) * dark_input_directions(x).shape[1]
    return EvenBlockSpectrum(vals, res, status, count[0], n_flat)
