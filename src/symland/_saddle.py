"""The lowest path from θ* to σ(θ*) and the saddle on top of it (Brea et al. 2019, §4.1, Suppl. Fig. 4).

For a pair (l, m) of hidden layer k, `permutation_saddle` computes the
minimum-energy path (`minimum_energy_path`, climbing-image NEB) from θ* to
σ^(k)_{l⇔m}(θ*), certifies its saddles, and says how the highest saddle S
relates to the permutation point θ_{l⇔m} (Suppl. Fig. 4):

- `top` (Fig. 4 A): S is a permutation point (ϑ_l = ϑ_m to `SAME`) of the
  loss of θ_{l⇔m}: the same point up to the plateau of permutation points
  (a_l + a_m fixed, any split, all critical at one loss); or the path
  passes through θ_{l⇔m} at the height of S (losses equal to round-off).
- `below` (Fig. 4 B, C): the path passes through a permutation point that
  lies lower than an intermediate saddle S (it may be a minimum along the
  path, Fig. 4 C; its `CriticalPointReport` says).
- `off`: the lowest path found does not pass through the permutation point.

Which permutation point: the fixed-δ path's (`find_permutation_paths`,
route `fixed-delta`) where every δ step converged; otherwise the point where
the MEP crosses the subspace Fix(σ) = {ϑ_l = ϑ_m, a_l = a_m} (route `mep`).
On a converged band that is symmetric under σ with reversal, that crossing
is a critical point: there ∇L is σ-even and the tangent σ-odd, so ∇L ⊥ τ and
a vanishing perpendicular force means ∇L = 0; it is refined and classified
like a saddle.

Routes (`init="auto"`): a band through the fixed-δ path and its mirror
image where that path is complete (`fixed-delta`); elsewhere, and wherever
that band does not certify its saddle, the lowest path in the transition
network of the layer (`symland._transition_network`: descents from the
plateaus of permutation points to minima identified modulo the symmetry
group, joined over plateaus, `network`, or along the equal-loss valley of
§4.2 (ii), `valley`; for smooth activations, where no descent reaches θ*, a
path from θ* that stays below a plateau's loss, `plateau_links`, takes its
place); where the network does not join θ* to σ(θ*), the
`descent` band: from the minimum p of L on Fix(σ) a descent along its
unstable σ-odd direction and its mirror image give θ* → p → σ(θ*), which
the elastic band then relaxes. The raw merged configuration
(`init="merged"`: θ* → merged point → σ(θ*), two straight segments) lies
far above the valleys; on random tanh teachers 3,000 FIRE steps did not pull
such bands down for 7 of 10 pairs. Every band image gets a seeded
perturbation of relative size `perturb`, so that the band is not held in
the σ-symmetric paths by its start: a lower asymmetric path can be found.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._critical import two_layer_mse_hessian
from ._loss import LOSSES, check_data, mse, nmse
from ._mep import (MinimumEnergyPath, assemble_path, check_images, check_mep_options, mep_kernels,
                   pad_band, resample_band, run_bands)
from ._network import MLP, ODD_ACTIVATIONS, Params, check_finite_params
from ._path import PermutationPath, check_pairs, find_permutation_paths
from ._results import CriticalPointReport, check_tolerance, result_name
from ._symmetry import check_neuron_pair, neuron_distance
from ._transition_network import (SAME_LOSS, TRAIL_START, TRAIL_STEP, dedupe_points, flat_permutation,
                                  network_candidates, network_gap, network_kernels, pair_permutation,
                                  paths_as_meps, transition_network)

SAME = 1e-6  # relative distance below which two points count as one (and a point as σ-fixed)
KINK_TOL = 1e-8  # as in `_path`: a sample this close (relative) to a ReLU hyperplane is on a kink
CERTIFIED_GTOL = 1e-10  # a certified saddle has ‖∇L‖∞ at most this
CERTIFIED_RISE = 0.1  # …and the path rises above it by at most this fraction of the barrier (as sampled)
RELATIONS = ("top", "below", "off", "undetermined")


def certifies(mep: MinimumEnergyPath, status: str) -> bool:
    """Whether `mep` certifies its highest saddle: `status` `converged`, the saddle a strict saddle
    with ‖∇L‖∞ ≤ `CERTIFIED_GTOL`, and the sampled loss along the path at most
    `CERTIFIED_RISE`·barrier above it (`discretisation_error`)."""
    r = mep.saddle_report
    return (status == "converged" and r is not None and str(r.kind) == "strict saddle"
            and r.grad_norm <= CERTIFIED_GTOL
            and mep.discretisation_error <= CERTIFIED_RISE * max(abs(mep.barrier), 1e-300))


def kink_distance(model: MLP, params: Params, x) -> float:
    """min over hidden neurons and samples of |z_μj| / max_μ |z_μj|: how close a sample is to a kink."""
    return float(min(jnp.min(jnp.abs(z) / jnp.maximum(jnp.max(jnp.abs(z), axis=0), 1e-300))
                     for z in model.preactivations(params, x)))


def merged_configuration(params: Params, layer: int, l: int, m: int) -> Params:
    """ϑ_l = ϑ_m = their mean and W^(k+1)_{:,l} = W^(k+1)_{:,m} = their mean (a point of Fix(σ))."""
    check_neuron_pair(params, layer, l, m)
    (W, b), (W2, b2) = params[layer - 1], params[layer]
    w = 0.5 * (W[l] + W[m])
    out = list(params)
    out[layer - 1] = (W.at[l].set(w).at[m].set(w),
                      None if b is None else b.at[l].set(0.5 * (b[l] + b[m])).at[m].set(0.5 * (b[l] + b[m])))
    a = 0.5 * (W2[:, l] + W2[:, m])
    out[layer] = (W2.at[:, l].set(a).at[:, m].set(a), b2)
    return out


def swap_permutation(params: Params, layer: int, l: int, m: int) -> np.ndarray:
    """The index permutation P with ravel(σθ) = ravel(θ)[P]."""
    check_neuron_pair(params, layer, l, m)
    flat, unravel = ravel_pytree(params)
    n = params[layer - 1][0].shape[0]
    return flat_permutation(unravel, flat.size, layer, np.asarray(pair_permutation((l, m), n)[0]))


def fix_crossing(images, perm):
    """The point of the polyline `images` closest to Fix(σ), and its distance ‖θ − σθ‖/√2.

    θ − σθ is linear in θ, so along each segment the distance is the norm of
    a linear function of t and its minimum is found in closed form.
    """
    X = np.asarray(images)
    best = (np.inf, None)
    for i in range(X.shape[0] - 1):
        a = X[i] - X[i][perm]
        d = (X[i + 1] - X[i + 1][perm]) - a
        t = 0.0 if d @ d == 0 else float(np.clip(-(a @ d) / (d @ d), 0.0, 1.0))
        dist = float(np.linalg.norm(a + t * d)) / np.sqrt(2.0)
        if dist < best[0]:
            best = (dist, (1.0 - t) * X[i] + t * X[i + 1])
    return best


def path_resolution(mep: MinimumEnergyPath) -> float:
    """The band's mean segment length: a point closer than this to the band lies on the path."""
    return float(mep.arclength[-1]) / (len(mep.arclength) - 1)


def distance_to_polyline(images, p) -> float:
    """min over segments of ‖θ(t) − p‖ for the polyline `images`."""
    X = np.asarray(images)
    best = np.inf
    for i in range(X.shape[0] - 1):
        d = X[i + 1] - X[i]
        t = 0.0 if d @ d == 0 else float(np.clip((p - X[i]) @ d / (d @ d), 0.0, 1.0))
        best = min(best, float(np.linalg.norm(X[i] + t * d - p)))
    return best


@dataclasses.dataclass(frozen=True)
class PermutationSaddle:
    """The lowest path found for one pair and how its saddle relates to θ_{l⇔m}.

    **Fields:**
    - `layer`, `l`, `m`, `init` (the route of the path: `fixed-delta`,
      `network`, `valley`, `valley-chain`, each with `+link` where the
      path climbs from θ* by a `plateau_links` path, `descent`,
      `fix-minimum` or `merged`), `mep` (the
      `MinimumEnergyPath`, from θ* exactly to σ(θ*); `mep.method` says
      whether a band was relaxed).
    - `status`: a `RESULTS` name: the MEP's, except `kink` for a ReLU saddle
      with a sample on a hyperplane (never `converged` there).
    - `certified`: `converged`, the highest saddle a `strict saddle` with
      ‖∇L‖∞ ≤ `CERTIFIED_GTOL` (dense-Hessian index in its report), and the
      path nowhere more than `CERTIFIED_RISE` (10 %) of the barrier above it
      at its sampled points (`mep.discretisation_error`).
    - `permutation_point`: the fixed-δ path's `CriticalPointReport` of
      θ_{l⇔m}, or None where that path did not converge at every step;
      `fixed_delta` (the `PermutationPath`, or None where not computed).
    - `mep_permutation_point`: (params, `CriticalPointReport`) of the
      refined point where the MEP crosses Fix(σ), or None.
    - `relation`: dict with `relation` (`top`, `below`, `off`,
      `undetermined`), `route` (`fixed-delta` or `mep`: which permutation
      point it is measured against), `loss_difference` (L(S) − L(θ_{l⇔m})),
      `distance` (min ‖S − θ_{l⇔m}‖, ‖σS − θ_{l⇔m}‖), `figure` (Suppl.
      Fig. 4 panel) and `kink_distance` (ReLU).
    - `network`: what the transition network gave this pair: `joined` (its
      path certified the saddle), `not certified` (it had a path, which did
      not), `no plateau reaches θ*` or `σ(θ*) not reached`
      (`network_gap`), or None where it was not consulted (`init`
      `descent` or `merged`, or a certified fixed-δ band).
    """

    layer: int
    l: int
    m: int
    init: str
    mep: MinimumEnergyPath
    status: str
    permutation_point: CriticalPointReport | None
    fixed_delta: PermutationPath | None
    mep_permutation_point: tuple | None
    relation: dict
    network: str | None = None

    @property
    def saddle(self):
        return self.mep.saddle

    @property
    def saddle_report(self) -> CriticalPointReport | None:
        return self.mep.saddle_report

    @property
    def barrier(self) -> float:
        return self.mep.barrier

    @property
    def certified(self) -> bool:
        return certifies(self.mep, self.status)

    def to_dict(self) -> dict:
        mpp = self.mep_permutation_point
        return {
            "layer": self.layer, "pair": [self.l, self.m], "init": self.init, "status": self.status,
            "certified": self.certified, "barrier": self.barrier,
            "saddle": None if self.saddle_report is None else self.saddle_report.to_dict(),
            "permutation_point": None if self.permutation_point is None
            else self.permutation_point.to_dict(),
            "fixed_delta_complete": None if self.fixed_delta is None else self.fixed_delta.all_converged,
            "mep_permutation_point": None if mpp is None else mpp[1].to_dict(),
            "relation": self.relation, "network": self.network, "mep": self.mep.to_dict(),
        }


class _PairLoss:
    """(x_flat, (x, y)) ↦ loss of the MLP at unravel(x_flat); hashable for the kernel cache."""

    def __init__(self, model: MLP, kind: str, params: Params):
        self.model, self.kind = model, kind
        self.unravel = ravel_pytree(params)[1]
        leaves, treedef = jax.tree_util.tree_flatten(params)
        self._key = (model, kind, treedef, tuple(jnp.shape(a) for a in leaves))

    def __call__(self, v, data):
        loss_of = mse if self.kind == "mse" else nmse
        return loss_of(self.model, self.unravel(v), data[0], data[1])

    def hessian(self, v, data):
        x, y = data
        H = two_layer_mse_hessian(self.model, self.unravel(v), x, y)
        return H if self.kind == "mse" else H / jnp.mean(y * y)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, _PairLoss) and other._key == self._key


INITS = ("auto", "fixed-delta", "network", "descent", "merged")
ODD = 0.5  # an eigenvector is σ-odd when its σ-odd part has at least this norm


def unstable_odd_direction(lam, Q, perm):
    """The σ-odd part of the eigenvector of the most negative eigenvalue whose σ-odd part is large.

    At a point of Fix(σ) the Hessian commutes with σ, so its eigenspaces split
    into σ-even and σ-odd vectors; a negative σ-odd direction leads off Fix(σ)
    towards θ* on one side and σ(θ*) on the other. None if there is none.
    """
    lam, Q = np.asarray(lam), np.asarray(Q)
    tol = 1e-8 * max(float(np.max(np.abs(lam))), 1e-300)
    for j in np.argsort(lam):
        if lam[j] >= -tol:
            return None
        odd = 0.5 * (Q[:, j] - Q[perm, j])
        if np.linalg.norm(odd) >= ODD:
            return odd / np.linalg.norm(odd)
    return None


def descent_bands(pair_loss, params, x0, perms, pairs, layer, data, closed_form_hessian):
    """Initial bands through the minimum p of L on Fix(σ) (route `descent`), one per pair.

    p is found from the merged configuration by minimising L(½(y + σy)): at a
    point of Fix(σ) the gradient is σ-even, so a critical point of the
    restricted loss is one of L (a permutation point of Brea et al. 2019).
    From p ± ε v, v its unstable σ-odd direction, `descent_trail` goes down
    one side; its mirror image under σ goes down the other, so the band
    θ* → trail → p → σ(trail) → σ(θ*) is symmetric and passes through p. Where
    p has no unstable σ-odd direction the band is θ* → p → σ(θ*).

    **Returns:** (bands as lists of points, init names).
    """
    k = network_kernels(pair_loss, bool(closed_form_hessian))
    Y0 = np.stack([np.asarray(ravel_pytree(merged_configuration(params, layer, l, m))[0]) for l, m in pairs])
    P, _ = (np.asarray(a) for a in k.fix_point(jnp.asarray(Y0), jnp.asarray(np.stack(perms)), data))
    _, _, lam, Q = (np.asarray(a) for a in k.spectrum(jnp.asarray(P), data))
    scale = max(1.0, float(np.max(np.abs(x0))))
    starts, steps, dirs = [], [], []
    for b, perm in enumerate(perms):
        v = unstable_odd_direction(lam[b], Q[b], perm)
        h = TRAIL_STEP * float(np.linalg.norm(x0 - P[b]))
        dirs.append(v)
        starts.append(P[b] if v is None else P[b] + TRAIL_START * h * v)
        steps.append(max(h, 1e-300))
    T = np.asarray(k.trail(jnp.asarray(np.stack(starts)), jnp.asarray(steps), data))
    bands, inits = [], []
    for b, perm in enumerate(perms):
        x1 = x0[perm]
        if dirs[b] is None:
            bands.append(np.stack([x0, P[b], x1]))
            inits.append("fix-minimum")
            continue
        t = T[b]
        if np.linalg.norm(t[-1][perm] - x0) < np.linalg.norm(t[-1] - x0):
            t = t[:, perm]  # this side came down nearer σ(θ*): use its mirror image
        pts = np.concatenate([x0[None], t[::-1], t[:, perm], x1[None]])
        bands.append(dedupe_points(pts, 1e-12 * scale))
        inits.append("descent")
    return bands, inits


def permutation_saddles(model: MLP, params: Params, x, y, layer: int, pairs="all", *,
                        init: str = "auto", images: int = 11, max_images: int | None = None,
                        loss: str = "mse", gtol: float = 1e-12, ftol_rel: float = 1e-3,
                        max_steps: int = 3_000, resolution: float = 0.25, rounds: int = 1,
                        refine_steps: int = 100, perturb: float = 1e-3, seed: int = 0,
                        path_options: dict | None = None,
                        fixed_delta_paths=None) -> list[PermutationSaddle]:
    """Minimum-energy paths θ* → σ^(k)_{l⇔m}(θ*) and their saddles for several pairs, batched.

    All pairs' bands relax in one jitted `vmap`-ed call (and their maxima are
    refined in another), so 10 pairs cost little more than one.

    **Arguments:**
    - `model`, `params` (θ*, usually a minimum), `x`, `y`, `loss` (`mse`
      or `nmse`), `layer` (hidden layer k), `pairs` (list of (l, m) or
      `"all"`).
    - `init`: `auto` (module docstring: the fixed-δ band where that path is
      complete, else the transition network, else the `descent` band),
      `fixed-delta` (the same, always reporting the fixed-δ path), `network`
      (no fixed-δ path is computed), `descent` or `merged` (a band only:
      through the minimum of L on Fix(σ) and its descents, or straight
      segments through the merged configuration). `PermutationSaddle.init`
      says which route each pair's path came from (`fixed-delta`, `network`,
      `valley`, `valley-chain`, `descent`, `merged`, or `fix-minimum` where the minimum on
      Fix(σ) has no unstable σ-odd direction: θ* → it → σ(θ*)).
    - `path_options`: keyword arguments of `find_permutation_paths`
      (default `steps=100`); `fixed_delta_paths`: already computed
      `PermutationPath`s of these pairs, used instead.
    - `perturb`, `seed`: relative size and seed of the symmetry-breaking
      perturbation of the initial band.
    - the rest: as in `minimum_energy_path`.

    **Returns:** a list of `PermutationSaddle`, one per pair.
    """
    model.check_params(params)
    check_finite_params(params)
    pairs = check_pairs(params, layer, pairs)
    x, y = check_data(model, x, y)
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    if init not in INITS:
        raise ValueError(f"init: unknown initialisation {init!r}; choose one of {', '.join(INITS)}")
    max_images = images + 6 if max_images is None and isinstance(images, int) else max_images
    check_images(images, max_images)
    check_tolerance(gtol, "gtol")
    check_tolerance(ftol_rel, "ftol_rel")
    check_mep_options(max_steps=max_steps, resolution=resolution, rounds=rounds, ftol=None)
    if isinstance(perturb, bool) or not isinstance(perturb, (int, float)) or not perturb >= 0:
        raise ValueError(f"perturb: must be a non-negative number, got {perturb!r}")
    start = ravel_pytree(params)[0]
    x0 = np.asarray(start, dtype=np.float64)
    unravel = ravel_pytree(params)[1]
    paths = [None] * len(pairs)
    if fixed_delta_paths is not None:
        paths = list(fixed_delta_paths)
        if [(p.l, p.m) for p in paths] != pairs or any(p.layer != layer for p in paths):
            raise ValueError("fixed_delta_paths: must be the paths of exactly these pairs of this layer")
    elif init in ("auto", "fixed-delta"):
        opts = {"steps": 100, **(path_options or {})}
        paths = find_permutation_paths(model, params, x, y, layer, pairs, loss=loss, **opts)
    rng = np.random.default_rng(seed)
    pair_loss = _PairLoss(model, loss, params)
    data = (x, y)
    perms = [swap_permutation(params, layer, l, m) for l, m in pairs]
    polylines, inits = [None] * len(pairs), [None] * len(pairs)
    for i, ((l, m), path) in enumerate(zip(pairs, paths)):
        perm = perms[i]
        if path is not None and path.all_converged:
            first = [np.asarray(ravel_pytree(p)[0]) for p in path.params] + \
                    [np.asarray(ravel_pytree(path.permutation_point)[0])]
            polylines[i] = np.stack(first + [q[perm] for q in first[-2::-1]])
            inits[i] = "fixed-delta"
        elif init == "merged":
            merged = np.asarray(ravel_pytree(merged_configuration(params, layer, l, m))[0])
            polylines[i] = np.stack([x0, merged, x0[perm]])
            inits[i] = "merged"
    n_neurons = params[layer - 1][0].shape[0]
    network_paths = [None] * len(pairs)
    use_network = init in ("auto", "fixed-delta", "network")
    built = {}
    network_of = [None] * len(pairs)

    def network_paths_of(todo):
        """The lowest paths through the transition network (built once) for pairs `todo`: {i: MEP}."""
        if "net" not in built:
            all_pairs = [(a, b) for a in range(n_neurons) for b in range(a + 1, n_neurons)]
            built["net"] = transition_network(
                pair_loss, x0, data, layer=layer, n_neurons=n_neurons, unravel=unravel,
                merged_points=[np.asarray(ravel_pytree(merged_configuration(params, layer, a, b))[0])
                               for a, b in all_pairs],
                pairs=all_pairs, closed_form_hessian=model.depth == 2,
                signed=model.activation in ODD_ACTIVATIONS, links=model.activation != "relu")
        cands = []
        for i in todo:
            target = pair_permutation(pairs[i], n_neurons)
            found = network_candidates(built["net"], target, unravel)
            if not found:
                network_of[i] = network_gap(built["net"], target)
            cands += [(i, c) for c in found]
        if not cands:
            return {}
        kernels_net = network_kernels(pair_loss, model.depth == 2)
        meps = paths_as_meps([c for _, c in cands], kernels_net, data, unravel, gtol=CERTIFIED_GTOL)
        # Per pair the candidate that certifies its saddle with the lowest sampled top (barrier plus the
        # rise between samples); paths of one height prefer `network` (it comes first).
        best = {}
        for (i, _), mep in zip(cands, meps):
            key = (not certifies(mep, mep.status), mep.barrier + mep.discretisation_error)
            if i not in best or key[0] < best[i][0][0] or \
                    (key[0] == best[i][0][0] and key[1] < best[i][0][1] * (1.0 - SAME_LOSS)):
                best[i] = (key, mep)
        for i, (key, _) in best.items():
            network_of[i] = "not certified" if key[0] else "joined"
        return {i: mep for i, (_, mep) in best.items()}

    if use_network:
        got = network_paths_of([i for i in range(len(pairs)) if polylines[i] is None])
        for i, mep in got.items():
            network_paths[i] = mep
            inits[i] = mep.method
    rest = [i for i in range(len(pairs)) if polylines[i] is None and network_paths[i] is None]
    if rest:
        got, names = descent_bands(pair_loss, params, x0, [perms[i] for i in rest], [pairs[i] for i in rest],
                                      layer, data, model.depth == 2)
        for i, band, name in zip(rest, got, names):
            polylines[i], inits[i] = band, name
    banded = [i for i in range(len(pairs)) if network_paths[i] is None]
    meps = list(network_paths)
    runs = [None] * len(pairs)
    if banded:
        bands = []
        for i in banded:
            x1 = x0[perms[i]]
            band = resample_band(polylines[i], images)
            seg = np.linalg.norm(band[1] - band[0])
            band[1:-1] += perturb * seg * rng.standard_normal(band[1:-1].shape)
            band[0], band[-1] = x0, x1
            bands.append(pad_band(band, max_images))
        kernels = mep_kernels(pair_loss, max_steps=int(max_steps), climbing=True, gtol=float(gtol),
                              refine_steps=int(refine_steps),
                              closed_form_hessian=model.depth == 2)
        got = run_bands(kernels, bands, [images] * len(banded), data, ftol_rel=float(ftol_rel), ftol=None,
                        resolution=float(resolution), rounds=int(rounds), max_images=int(max_images),
                        extra_point=lambda b, band: fix_crossing(band, perms[banded[b]])[1])
        retry = []
        for i, r in zip(banded, got):
            runs[i] = r
            meps[i] = assemble_path(r, unravel, gtol=gtol)
            if use_network and not certifies(meps[i], meps[i].status):
                retry.append(i)
        # Where the band did not certify a saddle, the transition network may.
        for i, mep in (network_paths_of(retry) if retry else {}).items():
            meps[i], runs[i], inits[i] = mep, None, mep.method
    scale = max(1.0, float(np.max(np.abs(x0))))
    n_params = x0.size
    out = []
    for i, ((l, m), path, mep, perm) in enumerate(zip(pairs, paths, meps, perms)):
        # The MEP's crossing of Fix(σ), refined in the extra slot: it counts when it is
        # a critical point in Fix(σ) on the path.
        crossing = None
        if runs[i] is None:  # a network path: its saddles are certified points on it
            for sp, rep in mep.saddles:
                xs = np.asarray(ravel_pytree(sp)[0])
                if incoming_distance(xs, unravel, layer, l, m) <= SAME * scale and rep.is_critical:
                    crossing = (sp, rep, xs)
                    break
        else:
            ref = runs[i]["refined"]
            xr = ref.x[-1]
            if result_name(int(ref.status[-1])) == "converged" \
                    and incoming_distance(xr, unravel, layer, l, m) <= SAME * scale \
                    and distance_to_polyline(mep.images, xr) <= path_resolution(mep):
                rep = CriticalPointReport.from_spectrum(ref.loss[-1], ref.grad_norm[-1], ref.eigenvalues[-1],
                                                        gtol=float(ref.gtol[-1]), n=n_params)
                crossing = (unravel(jnp.asarray(xr)), rep, xr)
        status = mep.status
        kd = None
        if model.activation == "relu" and mep.saddle is not None:
            kd = kink_distance(model, mep.saddle, x)
            if kd < KINK_TOL:
                status = "kink"
        pp = path.permutation_point_report if path is not None and path.all_converged else None
        relation = _relation(mep, pp, path, crossing, perm, scale, layer, l, m)
        relation["kink_distance"] = kd
        out.append(PermutationSaddle(
            layer=int(layer), l=l, m=m, init=inits[i], mep=mep, status=status,
            permutation_point=pp, fixed_delta=path,
            mep_permutation_point=None if crossing is None else crossing[:2], relation=relation,
            network=network_of[i]))
    return out


def incoming_distance(x, unravel, layer, l, m) -> float:
    """‖ϑ_l − ϑ_m‖ at the flat point x."""
    return float(neuron_distance(unravel(jnp.asarray(x)), layer, l, m))


def _relation(mep: MinimumEnergyPath, pp, path, crossing, perm, scale, layer, l, m) -> dict:
    """Suppl. Fig. 4: where θ_{l⇔m} sits relative to the MEP's highest saddle S."""
    rec = {"relation": "undetermined", "route": None, "figure": None, "loss_difference": None,
           "distance": None, "permutation_point_kind": None}
    if mep.saddle is None or mep.status not in ("converged",):
        return rec
    s = np.asarray(ravel_pytree(mep.saddle)[0])
    L_s = mep.saddle_report.loss
    if pp is not None and pp.is_critical:
        p = np.asarray(ravel_pytree(path.permutation_point)[0])
        rec["route"], L_p, report = "fixed-delta", pp.loss, pp
    elif crossing is not None and crossing[1].is_critical:
        p = crossing[2]
        rec["route"], L_p, report = "mep", crossing[1].loss, crossing[1]
    else:
        rec["route"] = "mep"
        rec["relation"] = "off" if crossing is None else "undetermined"
        rec["figure"] = None
        return rec
    dist = min(float(np.linalg.norm(s - p)), float(np.linalg.norm(s[perm] - p)))
    dL = float(L_s - L_p)
    merged = incoming_distance(s, mep.unravel, layer, l, m)
    rec.update(loss_difference=dL, distance=dist, permutation_point_kind=str(report.kind),
               permutation_point_index=report.index, saddle_incoming_distance=merged)
    on_path = distance_to_polyline(mep.images, p) <= path_resolution(mep)
    # S is θ_{l⇔m} up to the plateau of permutation points (ϑ_l = ϑ_m, a_l + a_m fixed:
    # every split of the output weight is a critical point of the same loss), or the path
    # passes through θ_{l⇔m} at the height of S (equal to round-off, `SAME_LOSS` relative).
    level = abs(dL) <= SAME_LOSS * max(abs(L_p), abs(L_s), 1e-300)
    if level and (merged <= SAME * scale or on_path):
        rec.update(relation="top", figure="4A")
    elif on_path and dL > 0:
        rec.update(relation="below", figure="4C" if str(report.kind) == "minimum" else "4B")
    else:
        rec.update(relation="off")
    return rec


def permutation_saddle(model: MLP, params: Params, x, y, layer: int, l: int, m: int,
                       **options) -> PermutationSaddle:
    """The lowest path from θ* to σ^(k)_{l⇔m}(θ*), its certified saddle and its relation to θ_{l⇔m}.

    Keyword arguments are those of `permutation_saddles`.

    Example:
        >>> import symland as s
        >>> toy = s.toy_problem("tanh", seed=2)
        >>> r = s.permutation_saddle(toy.model, toy.teacher, toy.x, toy.y, 1, 2, 3)
        >>> r.status, r.certified, r.relation["relation"], r.relation["route"]
        ('converged', True, 'top', 'fixed-delta')
    """
    return permutation_saddles(model, params, x, y, layer, [(l, m)], **options)[0]
