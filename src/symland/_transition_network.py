"""Transition networks: minima joined through permutation saddles by descent paths, modulo neuron permutations.

Brea et al. 2019 ask how high the lowest path from θ* to σ(θ*) goes (§4.1,
Suppl. Fig. 4). On the 2-5-1 toys the lowest path we find is rarely one
saddle between the two minima. On the tanh toy (seed 2, 1000 samples) the
descent from the permutation point θ_{0⇔1} along its unstable direction
ends in a spurious minimum q (L = 1.690e−3, just below the saddle's
1.7408e−3), not in θ*; the path is θ* → S → q → θ_{0⇔1} → σq → σS → σθ*.
A nudged elastic band started near such a chain must find the intermediate
minima itself: from a straight band θ* → q, 20,000 FIRE steps per
relaxation did not converge for 3 of 4 such pairs, the band stretched
through losses of 1e4 (BENCHMARKS.md, issue 9).

This module builds the chain from the saddles down, as kinetic transition
networks are built (Wales 2003, *Energy Landscapes*, §8.3; Becker & Karplus
1997 for the disconnectivity graphs they are drawn as):

1. **Plateaus of permutation points.** For every pair (i, j) of the layer,
   the minimum p_ij of L on Fix(σ_ij) = {ϑ_i = ϑ_j, a_i = a_j}, from the
   merged configuration, by Newton on L(½(y + σy)). At a σ-fixed point ∇L
   is σ-even, so a critical point of the restricted loss is one of L: p_ij
   is a permutation point. Its whole plateau (Brea et al. §4.2 (i)), the
   line a_i = λ·s, a_j = (1 − λ)·s with s = a_i + a_j and ϑ_i = ϑ_j fixed,
   consists of critical points of one loss (the network function does not
   change along it), so a path may run along it at no cost in height.
2. **Descents.** At the plateau points λ ∈ `PLATEAU_LAMBDAS` (½), λ* =
   the split of θ*'s output weights and their mirror images 1 − λ, the dense
   Hessian gives the unstable directions (the `MAX_DIRECTIONS` most
   negative). From each point ± ε v (+ε v alone at λ = ½, where −ε v is
   its mirror image), `descent_trail` goes down
   (monotone in L at its points) to a point near a minimum, which
   `minimise_flat` refines. The plateau point at 1 − λ is σ_ij of the one
   at λ, so its descents are the mirror images and cost nothing.
3. **Minima modulo permutations.** A minimum is identified with an earlier
   one r_A when a permutation g of the layer's neurons maps one onto the
   other (Hungarian matching, then every parameter within `SAME_MINIMUM`):
   it is g·r_A. θ* is r_0.
4. **Lowest path.** Every two descent ends u = g_u·r_A, w = g_w·r_B of one
   plateau are joined over the plateau at its loss: up u's descent, along
   the plateau, down w's. Permuted by π the same holds for π·u and π·w (L is
   invariant), so the walk lives on states (minimum class, permutation).
   The lowest path from θ* = (0, id) to σθ* = (0, σ) is a bottleneck
   (minimax) shortest path: Dijkstra with the highest plateau so far as the
   cost (ties: fewer plateaus).

The path returned is the concatenation of the permuted pieces, continuous,
from θ* exactly to σθ* exactly (consecutive pieces share their refined
minima exactly). Its highest points are on its highest plateau, critical
points to machine precision, up to the discretisation error between the
sampled points (measured by `segment_losses`).

5. **Links** (`links=True`, smooth activations). Where no descent from any
   plateau ends in θ*'s class (softplus toys 4, 5, 12, 15 of seeds 1–20),
   `plateau_links` looks for a path from θ* up to a point of each plateau
   line that nowhere rises above the plateau's loss by more than
   `LINK_RISE` (`sublevel_path`, a smoothed minimax path). Such a link takes
   the place of a descent to θ*'s class, so the lowest path and the valley
   then reach every pair. Its rise above the plateau is measured and
   reported as the path's discretisation error.

What it does not do: find saddles that are not permutation points, or
join minima that the plateaus do not connect other than θ* by a link;
`permutation_saddles` then falls back to an elastic band. The network is the
lowest path among the paths it contains, not a proof that no lower path
exists.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
from typing import NamedTuple

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from scipy.optimize import linear_sum_assignment

from ._mep import SAME_POINT, SUBLEVEL_SAMPLES, MinimumEnergyPath, descent_trail, segment_losses, sublevel_path
from ._results import CriticalPointReport, result_code, result_name
from ._solver import hessian_eigh, minimise_flat
from ._symmetry import permute_layer

FIX_GTOL = 1e-13  # ‖∇L‖∞ for the minimum on Fix(σ): a saddle certified at 1e−10 needs margin
FIX_STEPS = 200  # Newton steps for the minimum on Fix(σ)
TRAIL_STEPS = 200  # steps of each descent trail (with 100, the straight finish to the minimum rose above the saddle)
TRAIL_STEP = 1.0 / 40  # longest trail step, as a fraction of ‖θ* − p‖
TRAIL_START = 1e-3  # the trail starts TRAIL_START·step along v from p
MINIMUM_GTOL = 1e-12  # ‖∇L‖∞ of a refined minimum at the end of a trail
MINIMUM_STEPS = 100
CRITICAL_GTOL = 1e-10  # ‖∇L‖∞ at which a plateau point or a minimum counts as critical
MAX_DIRECTIONS = 1  # unstable directions followed per plateau point
PLATEAU_LAMBDAS = (0.5,)  # output-weight splits descended from, besides λ* (and 1 − λ, by mirroring)
SAME_MINIMUM = 1e-5  # relative max-norm distance under which two minima are one
MAX_STATES = 200_000  # states the lowest-path search may visit


def flat_permutation(unravel, n_params: int, layer: int, perm) -> np.ndarray:
    """The index array P with ravel(g·θ) = ravel(θ)[P] for the permutation `perm` of hidden layer `layer`.

    g·θ is `permute_layer(θ, layer, perm)`: new neuron i is old neuron perm[i],
    so g₂·(g₁·θ) = (g₁[g₂])·θ.
    """
    idx = unravel(jnp.arange(n_params, dtype=jnp.float64))
    return np.asarray(ravel_pytree(permute_layer(idx, layer, perm))[0]).astype(np.int64)


def neuron_blocks(unravel, n_params: int, layer: int) -> np.ndarray:
    """(n_k, entries) flat indices of each neuron's parameters: ϑ_i = (W_i, b_i) and its column W^(k+1)_{:,i}."""
    idx = unravel(jnp.arange(n_params, dtype=jnp.float64))
    (W, b), (W2, _) = idx[layer - 1], idx[layer]
    parts = [W] + ([] if b is None else [b[:, None]]) + [W2.T]
    return np.asarray(jnp.concatenate(parts, axis=1)).astype(np.int64)


def pair_permutation(pair, n: int) -> tuple:
    """σ_ij as a group element (perm, signs): 0…n−1 with i and j exchanged, no sign flips."""
    g = list(range(n))
    g[pair[0]], g[pair[1]] = pair[1], pair[0]
    return tuple(g), (1,) * n


def nearest_element(rep, x, blocks, signed: bool):
    """The group element g = (perm, signs) that brings g·rep nearest to x, neuron by neuron.

    Neurons are matched by a Hungarian assignment on the distance between
    their parameter blocks (with `signed`, the smaller of ‖x_i − r_j‖ and
    ‖x_i + r_j‖).
    """
    X, R = x[blocks], rep[blocks]
    plus = np.linalg.norm(X[:, None, :] - R[None, :, :], axis=-1)
    minus = np.linalg.norm(X[:, None, :] + R[None, :, :], axis=-1) if signed else np.full_like(plus, np.inf)
    _, perm = linear_sum_assignment(np.minimum(plus, minus))
    rows = np.arange(len(perm))
    signs = np.where(minus[rows, perm] < plus[rows, perm], -1, 1)
    return tuple(int(t) for t in perm), tuple(int(t) for t in signs)


def match_minimum(rep, x, blocks, act, tol, signed: bool):
    """The group element g = (perm, signs) with g·rep = x within `tol` (max norm), or None.

    g is `nearest_element`'s; then every parameter is compared.
    """
    g = nearest_element(rep, x, blocks, signed)
    return g if np.max(np.abs(act(rep, g) - x)) <= tol else None


def compose(g1, g2):
    """g₂ after g₁ as one element: (g₂·(g₁·θ)), for g = (perm, signs) acting by new neuron i = s_i · old neuron perm[i]."""
    p1, s1 = g1
    p2, s2 = g2
    return tuple(p1[i] for i in p2), tuple(s2[k] * s1[i] for k, i in enumerate(p2))


def inverse(g):
    """g⁻¹ for g = (perm, signs)."""
    p, s = g
    q = tuple(int(t) for t in np.argsort(p))
    return q, tuple(s[i] for i in q)


def dedupe_points(points, eps):
    """Drop points within `eps` of the previous kept one (the first and last are kept)."""
    keep = [points[0]]
    for p in points[1:-1]:
        if np.linalg.norm(p - keep[-1]) > eps:
            keep.append(p)
    keep.append(points[-1])
    return np.stack(keep)


@functools.lru_cache(maxsize=16)
def network_kernels(pair_loss, closed_form_hessian: bool):
    """Jitted, vmapped: minima of L on Fix(σ); spectra; descent trails; minimum refinement; losses.

    `pair_loss(x, data)` is the loss of a flat vector; with
    `closed_form_hessian`, `pair_loss.hessian(x, data)` gives its Hessian.
    Cached per loss, so every call with data of the same shapes reuses one
    compilation (per batch size).
    """
    hessian_of = pair_loss.hessian if closed_form_hessian else None

    def hess(data):
        return None if hessian_of is None else (lambda x: hessian_of(x, data))

    def fix_point(y0, perm, data):
        f = lambda x: pair_loss(x, data)
        n = y0.shape[0]
        S = 0.5 * (jnp.eye(n) + jnp.eye(n)[perm])
        sym = lambda y: 0.5 * (y + y[perm])
        hs = None if hessian_of is None else (lambda y: S @ hessian_of(sym(y), data) @ S)
        out = minimise_flat(lambda y: f(sym(y)), y0, gtol=FIX_GTOL, max_steps=FIX_STEPS, hessian=hs)
        return sym(out.x), result_code(out.status)

    def spectrum(x, data):
        f = lambda x: pair_loss(x, data)
        lam, Q = hessian_eigh(f, x, hess(data))
        return f(x), jnp.max(jnp.abs(jax.grad(f)(x))), lam, Q

    def trail(x0, step, data):
        return descent_trail(lambda x: pair_loss(x, data), x0, step=step, n_steps=TRAIL_STEPS,
                             hessian=hess(data))

    def minimum(x0, data):
        f = lambda x: pair_loss(x, data)
        out = minimise_flat(f, x0, gtol=MINIMUM_GTOL, max_steps=MINIMUM_STEPS, hessian=hess(data),
                            final_spectrum=True)
        return out.x, out.loss, out.grad_norm, result_code(out.status), out.eigenvalues

    def segments(A, B, data):  # the segments [A_i, B_i]: (N, PATH_SEGMENT_SAMPLES) losses
        f = lambda x: pair_loss(x, data)
        return jax.vmap(lambda a, b: segment_losses(f, jnp.stack([a, b]), PATH_SEGMENT_SAMPLES)[0])(A, B)

    def losses(X, data):
        return jax.vmap(lambda x: pair_loss(x, data))(X)

    return NetworkKernels(jax.jit(jax.vmap(fix_point, in_axes=(0, 0, None))),
                          jax.jit(jax.vmap(spectrum, in_axes=(0, None))),
                          jax.jit(jax.vmap(trail, in_axes=(0, 0, None))),
                          jax.jit(jax.vmap(minimum, in_axes=(0, None))),
                          jax.jit(segments), jax.jit(losses))


class NetworkKernels(NamedTuple):
    fix_point: object  # (Y0[B,P], perm[B,P], data) -> (p, status)
    spectrum: object  # (X[B,P], data) -> (loss, ‖∇L‖∞, λ, Q)
    trail: object  # (X0[B,P], step[B], data) -> (B, TRAIL_STEPS + 1, P)
    minimum: object  # (X0[B,P], data) -> (x, loss, ‖∇L‖∞, status, λ)
    segments: object  # (A[N,P], B[N,P], data) -> (N, PATH_SEGMENT_SAMPLES): L inside [A_i, B_i]
    losses: object  # (X[N,P], data) -> (N,)


def _batched(fn, X, *args, size: int):
    """`fn` on the rows of X (and of the NumPy arrays among `args`), in batches of `size`.

    The last batch is padded by repeating its last row, so there is one
    compilation per `size`.
    """
    n = X.shape[0]
    pad = (-n) % size
    grow = lambda A: np.concatenate([A, np.repeat(A[-1:], pad, 0)]) if pad else A
    Xp = grow(X)
    rows = [grow(a) if isinstance(a, np.ndarray) else None for a in args]
    outs = [fn(jnp.asarray(Xp[i:i + size]),
               *[a if r is None else jnp.asarray(r[i:i + size]) for a, r in zip(args, rows)])
            for i in range(0, Xp.shape[0], size)]
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate([np.asarray(o[k]) for o in outs])[:n] for k in range(len(outs[0])))
    return np.concatenate([np.asarray(o) for o in outs])[:n]


@dataclasses.dataclass(frozen=True)
class DescentEnd:
    """One descent from a plateau point: to the minimum g·r_node.

    `points` run from the plateau point (first row, a critical point) down
    to the exact minimum g·r_node (last row); `lam` is the split λ. With
    `kind` `link` they are a `plateau_links` path to θ*'s class instead:
    not monotone, but nowhere above the plateau's loss by more than
    `LINK_RISE` (relative, on the sampling of `paths_as_meps`).
    """

    plateau: int
    lam: float
    node: int
    g: tuple
    points: np.ndarray
    report: CriticalPointReport  # of the plateau point
    kind: str = "descent"  # or "link": a `plateau_links` path, below L_plateau·(1 + LINK_RISE), not monotone


@dataclasses.dataclass(frozen=True)
class NetworkPath:
    """A path found in a `TransitionNetwork`.

    **Fields:** `points` (flat polyline from θ* to the target, both exact),
    `saddles` (list of (flat point, `CriticalPointReport`, pair): the
    plateau points where the path enters and leaves each plateau, in path
    order), `plateaus` (pair (i, j) of each plateau crossed, in order, as
    labelled before permutation), `top` (the highest plateau loss),
    `linked` (some piece is a `plateau_links` path, not a descent).
    """

    points: np.ndarray
    saddles: list
    plateaus: list
    top: float
    linked: bool = False


@dataclasses.dataclass(frozen=True)
class TransitionNetwork:
    """Minima (modulo permutations of one layer) joined over plateaus of permutation points.

    **Fields:**
    - `layer`, `n_neurons`; `minima` (K, P): one representative per class,
      `minima[0]` is θ*; `minima_reports` (`CriticalPointReport`s).
    - `plateau_pairs` ((i, j) per plateau), `plateau_loss`,
      `plateau_points` (the point at λ = ½ of each).
    - `ends`: list of `DescentEnd`; `rejected`: reason per pair or descent
      left out: `not critical` (the minimum on Fix(σ) did not converge),
      `minimum` (no unstable direction), `not a minimum` (the descent
      ended elsewhere).
    - `signed`: whether sign flips of a neuron are symmetries too (odd
      activations); group elements are g = (perm, signs).
    - `act(x, g)`: g·x for flat points x (rows of a 2-D array too).
    """

    layer: int
    n_neurons: int
    minima: np.ndarray
    minima_reports: list
    plateau_pairs: list
    plateau_loss: list
    plateau_points: list
    ends: list
    rejected: dict
    signed: bool
    act: object = dataclasses.field(repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON record: minima, plateaus and which minima each plateau joins."""
        joins = {}
        for e in self.ends:
            joins.setdefault(e.plateau, set()).add(e.node)
        return {"layer": self.layer,
                "minima": [None if r is None else {"loss": r.loss, "grad_norm": r.grad_norm, "kind": str(r.kind)}
                           for r in self.minima_reports],  # None: θ* was not refined (no plateau was critical)
                "plateaus": [{"pair": list(p), "loss": float(L), "minima": sorted(joins.get(k, ()))}
                             for k, (p, L) in enumerate(zip(self.plateau_pairs, self.plateau_loss))],
                "descents": sum(e.kind == "descent" for e in self.ends),
                "links": sum(e.kind == "link" for e in self.ends), "rejected": dict(self.rejected)}

    def lowest_path(self, target) -> NetworkPath | None:
        """The lowest path from θ* = (0, id) to (0, `target`·) for a neuron permutation `target`, or None.

        Bottleneck Dijkstra over (class, permutation) states; the cost of a
        path is (highest plateau loss, number of plateaus).
        """
        n = self.n_neurons
        start, goal = (0, (tuple(range(n)), (1,) * n)), (0, target)
        by_node, by_plateau = {}, {}
        for u, e in enumerate(self.ends):
            by_node.setdefault(e.node, []).append(u)
            by_plateau.setdefault(e.plateau, []).append(u)
        inv = [inverse(e.g) for e in self.ends]
        best = {start: (-np.inf, 0)}
        parent = {start: None}
        heap = [(-np.inf, 0, start)]
        seen = 0
        while heap:
            top, hops, state = heapq.heappop(heap)
            if best[state] < (top, hops):
                continue
            if state == goal:
                return self._path_to(goal, parent, top)
            seen += 1
            if seen > MAX_STATES:
                return None
            node, h = state
            for u in by_node.get(node, ()):
                eu = self.ends[u]
                pi = compose(inv[u], h)  # π with π·(g_u·r) = h·r: π·u is the current minimum
                cost = (max(top, float(self.plateau_loss[eu.plateau])), hops + 1)
                for w in by_plateau[eu.plateau]:
                    if w == u:
                        continue
                    ew = self.ends[w]
                    nxt = (ew.node, compose(ew.g, pi))
                    if cost < best.get(nxt, (np.inf, 0)):
                        best[nxt] = cost
                        parent[nxt] = (state, u, w, pi)
                        heapq.heappush(heap, (cost[0], cost[1], nxt))
        return None

    def _path_to(self, goal, parent, top) -> NetworkPath:
        steps, state = [], goal
        while parent[state] is not None:
            prev, u, w, pi = parent[state]
            steps.append((u, w, pi))
            state = prev
        steps.reverse()
        pieces, saddles, plateaus = [], [], []
        for u, w, pi in steps:
            eu, ew = self.ends[u], self.ends[w]
            piece = self.act(np.concatenate([eu.points[::-1], ew.points]), pi)
            pieces.append(piece if not pieces else piece[1:])
            pair = self.plateau_pairs[eu.plateau]
            saddles.append((self.act(eu.points[0], pi), eu.report, pair))
            if np.max(np.abs(ew.points[0] - eu.points[0])) > 0:
                saddles.append((self.act(ew.points[0], pi), ew.report, pair))
            plateaus.append(pair)
        linked = any(self.ends[u].kind == "link" or self.ends[w].kind == "link" for u, w, _ in steps)
        return NetworkPath(np.concatenate(pieces), saddles, plateaus, float(top), linked)


def plateau_point(p, out_i, out_j, lam):
    """The point of the plateau through p (flat) with W^(k+1)_{:,i} = λ·s, W^(k+1)_{:,j} = (1 − λ)·s."""
    x = np.array(p, dtype=np.float64)
    s = x[out_i] + x[out_j]
    x[out_i], x[out_j] = lam * s, (1.0 - lam) * s
    return x


def transition_network(pair_loss, x0, data, *, layer: int, n_neurons: int, unravel,
                       merged_points, pairs, closed_form_hessian: bool, signed: bool = False,
                       links: bool = False) -> TransitionNetwork:
    """Build the `TransitionNetwork` of hidden layer `layer` around the minimum θ* = `x0`.

    **Arguments:** `pair_loss` (flat x, data ↦ L, hashable), `x0` (flat θ*),
    `data`, `layer`, `n_neurons` (its width), `unravel`, `merged_points`
    (flat merged configuration per pair: the starts of the minima on
    Fix(σ)), `pairs` ((i, j) per entry), `closed_form_hessian`, `signed`
    (sign flips of a neuron are symmetries: odd activations), `links`
    (where no descent reaches θ*'s class, join θ* to the plateaus by
    `plateau_links`; for smooth losses: L-BFGS needs a gradient).

    **Returns:** a `TransitionNetwork`.
    """
    k = network_kernels(pair_loss, bool(closed_form_hessian))
    x0 = np.asarray(x0, dtype=np.float64)
    n_params = x0.size
    flat_perm = functools.lru_cache(maxsize=8192)(
        lambda perm: flat_permutation(unravel, n_params, layer, np.asarray(perm)))
    ident = (tuple(range(n_neurons)), (1,) * n_neurons)
    blocks = neuron_blocks(unravel, n_params, layer)

    def act(x, g):
        y = np.asarray(x)[..., flat_perm(g[0])]
        if any(t < 0 for t in g[1]):
            sign = np.ones(n_params)
            for i, t in enumerate(g[1]):
                sign[blocks[i]] = t
            y = y * sign
        return y

    out_cols = np.asarray(unravel(jnp.arange(n_params, dtype=jnp.float64))[layer][0]).astype(np.int64)
    sigmas = [pair_permutation(pair, n_neurons) for pair in pairs]
    perms = np.stack([flat_perm(g[0]) for g in sigmas])
    batch = len(pairs)
    P, status = _batched(k.fix_point, np.stack(merged_points), perms, data, size=batch)
    rejected, plateaus = {}, []
    lam_star = []
    for b, (i, j) in enumerate(pairs):
        s = x0[out_cols[:, i]] + x0[out_cols[:, j]]
        lam_star.append(float(np.clip(np.dot(x0[out_cols[:, i]], s) / max(np.dot(s, s), 1e-300), -2.0, 3.0)))
    # Plateau points to descend from: λ in the grid and λ*, for each pair (1 − λ by mirroring).
    cand, cand_b, cand_lam = [], [], []
    for b, (i, j) in enumerate(pairs):
        if result_name(int(status[b])) != "converged":
            rejected[str((i, j))] = "not critical"
            continue
        for lam in sorted(set(PLATEAU_LAMBDAS) | {round(min(lam_star[b], 1.0 - lam_star[b]), 12)}):
            cand.append(plateau_point(P[b], out_cols[:, i], out_cols[:, j], lam))
            cand_b.append(b)
            cand_lam.append(lam)
    if not cand:
        return TransitionNetwork(layer, n_neurons, x0[None], [None], [], [], [], [], rejected, signed, act)
    C = np.stack(cand)
    Lc, Gc, lam_c, Q_c = _batched(k.spectrum, C, data, size=len(pairs) * (len(PLATEAU_LAMBDAS) + 1))
    plateau_of = {}
    starts, steps, meta = [], [], []
    for c, b in enumerate(cand_b):
        rep = CriticalPointReport.from_spectrum(Lc[c], Gc[c], lam_c[c], gtol=CRITICAL_GTOL, n=n_params)
        if not rep.is_critical:
            rejected[f"{pairs[b]} λ={cand_lam[c]:g}"] = "not critical"
            continue
        if b not in plateau_of:
            plateau_of[b] = len(plateaus)
            plateaus.append((pairs[b], float(Lc[c]), P[b]))
        h = TRAIL_STEP * float(np.linalg.norm(x0 - C[c]))
        for jdir in np.argsort(lam_c[c])[:min(MAX_DIRECTIONS, rep.index)]:
            v = Q_c[c][:, jdir]
            # At λ = ½ the descent along −v is the mirror image of that along +v.
            for sign in (1.0,) if cand_lam[c] == 0.5 else (1.0, -1.0):
                starts.append(C[c] + sign * TRAIL_START * h * v)
                steps.append(max(h, 1e-300))
                meta.append((c, b, rep))
    if not starts:
        return TransitionNetwork(layer, n_neurons, x0[None], [None], [p[0] for p in plateaus],
                                 [p[1] for p in plateaus], [p[2] for p in plateaus], [], rejected, signed, act)
    size = 2 * MAX_DIRECTIONS * len(pairs)
    T = _batched(k.trail, np.stack(starts), np.asarray(steps), data, size=size)
    X, Lm, Gm, ms, lam_m = _batched(k.minimum, T[:, -1], data, size=size)
    X0, L0, G0, s0, lam0 = _batched(k.minimum, x0[None], data, size=1)
    reps = [x0]
    rep_reports = [CriticalPointReport.from_spectrum(L0[0], G0[0], lam0[0], gtol=CRITICAL_GTOL, n=n_params)]
    scale = max(1.0, float(np.max(np.abs(x0))))
    tol = SAME_MINIMUM * scale
    ends = []

    def identify(x, report):
        for node, r in enumerate(reps):
            g = match_minimum(r, x, blocks, act, tol, signed)
            if g is not None:
                return node, g
        reps.append(x)
        rep_reports.append(report)
        return len(reps) - 1, ident

    for t, (c, b, rep) in enumerate(meta):
        mrep = CriticalPointReport.from_spectrum(Lm[t], Gm[t], lam_m[t], gtol=CRITICAL_GTOL, n=n_params)
        if result_name(int(ms[t])) != "converged" or mrep.index > 0 or not mrep.is_critical:
            rejected[f"{pairs[b]} λ={cand_lam[c]:g} descent {t}"] = "not a minimum"
            continue
        node, g = identify(X[t], mrep)
        sigma = sigmas[b]
        pts = dedupe_points(np.concatenate([C[c][None], T[t], act(reps[node], g)[None]]), 1e-14 * scale)
        ends.append(DescentEnd(plateau_of[b], cand_lam[c], node, g, pts, rep))
        # The mirror image under σ: the descent from the plateau point at 1 − λ, to σ·(g·r).
        ends.append(DescentEnd(plateau_of[b], 1.0 - cand_lam[c], node, compose(g, sigma),
                               pts[:, perms[b]], rep))
    if links and not any(e.node == 0 for e in ends):
        found, failed = plateau_links(
            pair_loss, k, x0, data, [(kp, pairs[b], plateaus[kp][1], P[b], perms[b], sigmas[b])
                                     for b, kp in plateau_of.items()],
            act=act, blocks=blocks, out_cols=out_cols, signed=signed, batch=len(pairs) * (len(PLATEAU_LAMBDAS) + 1))
        ends += found
        rejected.update({f"{pair} link": why for pair, why in failed})
    return TransitionNetwork(layer, n_neurons, np.stack(reps), rep_reports, [p[0] for p in plateaus],
                             [p[1] for p in plateaus], [p[2] for p in plateaus], ends, rejected, signed, act)


LINK_LAMBDAS = tuple(np.linspace(-4.0, 5.0, 91))  # output-weight splits tried as the link's plateau end
LINK_RISE = 0.01  # a link may rise above its plateau's loss by this fraction (measured, then reported)
LINK_SUBDIVIDE = SUBLEVEL_SAMPLES + 1  # each link segment is cut in 4 (the same polyline): 16 loss samples per segment


def plateau_links(pair_loss, kernels, x0, data, plateaus, *, act, blocks, out_cols, signed: bool, batch: int):
    """Paths from θ* up to plateaus of permutation points that nowhere rise above the plateau.

    Where no descent from any plateau ends in θ*'s class (`network_gap`:
    `no plateau reaches θ*`, every failing softplus toy of seeds 1–20), θ*
    may still lie in one component of the sublevel set {L ≤ L_p} with a
    plateau point p. For each plateau: the point c(λ) of its line
    (λ ∈ `LINK_LAMBDAS`) and the group element g that bring g·c(λ) nearest
    to θ* (`nearest_element`); `sublevel_path` from θ* to g·c(λ); the path
    is cut into `LINK_SUBDIVIDE` pieces per segment and kept when the loss at
    all its points and inside all its segments stays at most
    L_p·(1 + `LINK_RISE`). It is then a `DescentEnd` of kind `link` (and its
    mirror image under σ, as for descents): c(λ) is a certified critical
    point at L_p, so a walk that uses the link has L_p as its top up to the
    measured rise, which `paths_as_meps` reports as the discretisation
    error. A link is a path below the plateau, not a minimum-energy path:
    the saddle it certifies is the plateau point, not one between θ* and it.

    **Arguments:** `plateaus`: (plateau index, pair, L_p, point at λ = ½,
    flat σ permutation, σ as a group element) per plateau; `batch`: the batch
    size of the spectrum kernel (one compilation with `transition_network`).

    **Returns:** (list of `DescentEnd`, [(pair, reason)] for the plateaus left out).
    """
    n_params = x0.size
    cands = []
    for kp, (i, j), level, p, perm, sigma in plateaus:
        best = None
        for lam in LINK_LAMBDAS:
            q = plateau_point(p, out_cols[:, i], out_cols[:, j], lam)
            g = nearest_element(q, x0, blocks, signed)
            d = float(np.linalg.norm(act(q, g) - x0))
            if best is None or d < best[0]:
                best = (d, float(lam), g, q)
        cands.append((kp, (i, j), level, perm, sigma) + best[1:])
    if not cands:
        return [], []
    L, G, lam, _ = _batched(kernels.spectrum, np.stack([c[-1] for c in cands]), data, size=batch)
    ends, failed = [], []
    for c, (kp, pair, level, perm, sigma, split, g, q) in enumerate(cands):
        report = CriticalPointReport.from_spectrum(L[c], G[c], lam[c], gtol=CRITICAL_GTOL, n=n_params)
        if not report.is_critical:
            failed.append((pair, "not critical"))
            continue
        X = sublevel_path(pair_loss, x0, act(q, g), level, data)
        w = np.arange(LINK_SUBDIVIDE)[None, :, None] / LINK_SUBDIVIDE
        X = np.concatenate([(X[:-1, None] * (1.0 - w) + X[1:, None] * w).reshape(-1, n_params), X[-1:]])
        top = max(float(_batched(kernels.losses, X, data, size=PATH_CHUNK).max()),
                  float(_batched(kernels.segments, X[:-1], X[1:], data, size=PATH_CHUNK).max()))
        if not top <= level * (1.0 + LINK_RISE):
            failed.append((pair, f"above the plateau ({top / level:.3g}·L_p)"))
            continue
        ginv = inverse(g)
        pts = act(X[::-1], ginv)  # from c(λ) in the plateau's frame to g⁻¹·θ*
        pts[0] = q
        ends.append(DescentEnd(kp, split, 0, ginv, pts, report, kind="link"))
        ends.append(DescentEnd(kp, 1.0 - split, 0, compose(ginv, sigma), pts[:, perm], report, kind="link"))
    return ends, failed


SAME_LOSS = 1e-10  # relative: two plateaus of the same function differ by round-off only
VALLEY_SAMPLES = 4  # samples per straight move of an equal-loss valley (the loss is constant on each)


def valley_path(net: TransitionNetwork, target, unravel) -> NetworkPath | None:
    """The lowest path θ* → target·θ* that climbs to one plateau and permutes along its equal-loss valley.

    Brea et al. 2019, §4.2 (ii): at a permutation point every permutation of
    the layer is reached at constant loss (`equal_loss_permutation`, the six
    moves). So if a descent from plateau k ends at π⁻¹·θ*, the path
    θ* → π·(plateau point) → [plateau line to π·p_k] → [valley realising
    ρ = π σ π⁻¹ in p_k's frame] → … → σ·θ* has height L_k. Among all
    plateaus with such a descent the lowest is taken (ties: the first).
    Where π carries sign flips that do not cancel in ρ, that descent is
    skipped: the valley realises permutations, not sign flips.

    **Returns:** a `NetworkPath`, or None when no plateau has a descent to θ*'s class.
    """
    from ._valley import equal_loss_permutation

    best, key = None, None
    for u, e in enumerate(net.ends):
        if e.node != 0:
            continue
        pi = inverse(e.g)  # π·(g_u·r_0) = r_0 = θ*
        rho = compose(compose(pi, target), inverse(pi))  # ρ' with π·ρ'·π⁻¹ = target, in the plateau's frame
        if any(t < 0 for t in rho[1]):
            continue
        # Lowest plateau; plateaus of one loss (to round-off, `SAME_LOSS`) by index, then order.
        L = float(net.plateau_loss[e.plateau])
        k = (L, e.report.index, u)
        if key is None or L < key[0] * (1.0 - SAME_LOSS) - 1e-300 or \
                (abs(L - key[0]) <= SAME_LOSS * abs(key[0]) and k[1:] < key[1:]):
            best, key = (u, pi, rho), k
    if best is None:
        return None
    u, pi, rho = best
    e = net.ends[u]
    i, j = net.plateau_pairs[e.plateau]
    p = net.plateau_points[e.plateau]
    valley = equal_loss_permutation(unravel(jnp.asarray(p)), net.layer, np.asarray(rho[0]), l=i, m=j,
                                    samples_per_move=VALLEY_SAMPLES).points
    valley[-1] = net.act(p, rho)
    up = e.points[::-1]  # from g_u·r_0 up to the plateau point c(λ_u)
    down = net.act(e.points, rho)  # from ρ'·c(λ_u) down to ρ'·g_u·r_0
    chain = np.concatenate([up, p[None], valley[1:], down])
    points = net.act(chain, pi)
    points[0] = net.minima[0]
    points[-1] = net.act(net.minima[0], target)
    top = float(net.plateau_loss[e.plateau])
    saddles = [(net.act(e.points[0], pi), e.report, (i, j)),
               (net.act(down[0], pi), e.report, (i, j))]
    return NetworkPath(points, saddles, [(i, j)], top, e.kind == "link")


def valley_chain(net: TransitionNetwork, target, unravel) -> NetworkPath | None:
    """θ* → σθ* for a transposition σ = (l m) as three valley paths: σ = τ·σ′·τ, τ and σ′ transpositions.

    For k ∉ {l, m}, (l m) = (m k)(l k)(m k) = (l k)(m k)(l k). If P_τ and
    P_σ′ are valley paths (`valley_path`) θ* → τθ* and θ* → σ′θ*, then
    P_τ, τ·P_σ′, τσ′·P_τ is a continuous path θ* → τθ* → τσ′θ* → σθ*
    (L is invariant under the layer's permutations, so a permuted path has
    the same losses). Its top is the higher of the two valleys' plateaus.
    This reaches pairs whose own valley is barred by sign flips (odd
    activations: every descent from a plateau to θ*'s class may carry one;
    on the tanh toy of seed 15, pairs 0 & 2, 1 & 2 and 2 & 4). The lowest
    such chain over k and both factorisations (ties: the first).

    **Returns:** a `NetworkPath`, or None when `target` is not a transposition or no chain exists.
    """
    n = net.n_neurons
    perm, signs = target
    moved = [i for i in range(n) if perm[i] != i]
    if any(t < 0 for t in signs) or len(moved) != 2:
        return None
    l, m = moved
    cache = {}

    def valley_of(pair):
        if pair not in cache:
            cache[pair] = valley_path(net, pair_permutation(pair, n), unravel)
        return cache[pair]

    best = None
    for k in range(n):
        if k in (l, m):
            continue
        for outer, inner in (((min(m, k), max(m, k)), (min(l, k), max(l, k))),
                             ((min(l, k), max(l, k)), (min(m, k), max(m, k)))):
            p_out, p_in = valley_of(outer), valley_of(inner)
            if p_out is None or p_in is None:
                continue
            tau, sig = pair_permutation(outer, n), pair_permutation(inner, n)
            top = max(p_out.top, p_in.top)
            if best is not None and top >= best[0] * (1.0 - SAME_LOSS):
                continue
            frames = [(p_out, None), (p_in, tau), (p_out, compose(sig, tau))]
            pieces, saddles, plateaus, joined = [], [], [], True
            for path, g in frames:
                pts = path.points if g is None else net.act(path.points, g)
                joined &= not pieces or bool(np.array_equal(pts[0], pieces[-1][-1]))
                pieces.append(pts if not pieces else pts[1:])
                saddles += [(x if g is None else net.act(x, g), rep, pair) for x, rep, pair in path.saddles]
                plateaus += path.plateaus
            points = np.concatenate(pieces)
            end = net.act(net.minima[0], target)
            if not joined or not np.array_equal(points[-1], end):  # pieces meet, and end, exactly
                continue
            best = (top, NetworkPath(points, saddles, plateaus, top, p_out.linked or p_in.linked))
    return None if best is None else best[1]


PATH_CHUNK = 256  # points per batched loss evaluation of paths (one compilation for every length)
PATH_SEGMENT_SAMPLES = 4  # loss samples inside each segment of a network path (its descents take short
#                           steps, its valley moves are at constant loss; the tests check against 9–33)


def paths_as_meps(found, kernels: NetworkKernels, data, unravel, *, gtol: float) -> list:
    """`NetworkPath`s (with their methods, `network` or `valley`) as `MinimumEnergyPath`s.

    The losses at every point and inside every segment (the discretisation
    error) of all paths are evaluated in one batched pass.
    """
    X = np.concatenate([path.points for path, _ in found])
    ends = np.cumsum([len(path.points) for path, _ in found])
    loss_all = _batched(kernels.losses, X, data, size=PATH_CHUNK)
    seg_all = _batched(kernels.segments, X[:-1], X[1:], data, size=PATH_CHUNK)
    out, first = [], 0
    for (path, method), last in zip(found, ends):
        out.append(_as_mep(path, method, loss_all[first:last], seg_all[first:last - 1], unravel, gtol))
        first = last
    return out


def _as_mep(path: NetworkPath, method, loss, seg, unravel, gtol) -> MinimumEnergyPath:
    X = path.points
    scale = max(1.0, float(np.max(np.abs(X))))
    saddles, refinements, kept = [], [], []
    for x, report, _pair in path.saddles:
        if any(np.max(np.abs(x - y)) <= SAME_POINT * scale for y in kept):
            continue
        kept.append(x)
        saddles.append((unravel(jnp.asarray(x)), report))
        image = int(np.argmin(np.max(np.abs(X - x[None]), axis=1)))
        refinements.append({"image": image, "refine_status": "converged", "moved": 0.0,
                            "refine_steps": 0, "image_loss": float(loss[image])})
    order = sorted(range(len(saddles)), key=lambda j: -saddles[j][1].loss)
    saddles = [saddles[j] for j in order]
    refinements = [refinements[j] for j in order]
    # The rise above the highest certified saddle, at the points and inside the segments (a `link`
    # may rise a little above its plateau between the plateau point and θ*).
    top = max(r.loss for _, r in saddles) if saddles else float(loss.max())
    disc = float(max(seg.max(), loss.max()) - top)
    arclength = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(X, axis=0), axis=1))])
    return MinimumEnergyPath(images=X, loss=loss, arclength=arclength, saddles=saddles,
                             status="converged", band_status=None, band_force=None, ftol=None,
                             steps=0, rounds=0, refinements=refinements, discretisation_error=disc,
                             gtol=float(gtol), unravel=unravel, method=method)


def network_gap(net: TransitionNetwork, target) -> str:
    """Why `net` has no path θ* → `target`·θ*, for a report.

    `no plateau reaches θ*`: no descent from any plateau ends in θ*'s class
    and no `plateau_links` path joins it (softplus toys 12 and 15 of seeds
    1–20: their links rise above the plateaus; on seed 4, before links, θ*'s
    index-1 exit found by `benchmarks/diagnose_exits.py` led to a spurious
    minimum that no plateau reaches). `σ(θ*) not reached`: θ* is on the
    network, but no walk over its plateaus ends at `target`·θ* (for odd
    activations, possibly only at a sign-flipped copy of it).
    """
    if not any(e.node == 0 for e in net.ends):
        return "no plateau reaches θ*"
    return "σ(θ*) not reached"


def network_candidates(net: TransitionNetwork, target, unravel) -> list:
    """The candidate paths to `target`: [(path, method)] for `net.lowest_path` (`network`),
    `valley_path` (`valley`) and, where there is no valley, `valley_chain` (`valley-chain`), those that
    exist; `+link` is appended to the method of a path that uses a `plateau_links` path."""
    valley = valley_path(net, target, unravel)
    out = [(net.lowest_path(target), "network"), (valley, "valley")]
    if valley is None:
        out.append((valley_chain(net, target, unravel), "valley-chain"))
    return [(p, m + "+link" if p.linked else m) for p, m in out if p is not None]
