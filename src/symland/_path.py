"""Low-loss permutation paths through permutation points (Brea et al. 2019, §4.1).

Neuron m of hidden layer k is reparametrised as ϑ_m = ϑ_l + δ·e with
e = u/‖u‖. Starting at δ₀ = ‖ϑ_l − ϑ_m‖ at θ*, δ is decreased along a
log-spaced schedule to δ₀·ratio and finally to 0; at each δ the loss is
minimised over all free parameters (ϑ_l and u included), warm-started from the
previous step. At δ = 0 the output weights of l and m are moved to equality at
constant loss (their sum fixed), which reaches the permutation point θ_{l⇔m}.
The second half of the path is the first half mirrored with l and m swapped, so
γ(1) = σ^(k)_{l⇔m}(θ*).

Path parameter t: [0, ¼] is the δ schedule (δ = 0 at t = ¼), [¼, ½] the
output-weight equalisation, [½, 1] the mirror image.

All pairs of a layer are solved in one `jax.vmap`-ed call; one pair's whole
path is a single jitted `lax.scan` over δ with a trust-region Newton solve
(`symland._solver`) at every step.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import NamedTuple

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

from ._critical import (DENSE_THRESHOLD, LANCZOS_HVP_BUDGET, classify_critical_point,
                        two_layer_mse_hessian)
from ._loss import LOSSES, check_data, mse, nmse
from ._network import ACTIVATIONS, MLP, Params, check_finite_params
from ._plateau import EvenBlockSpectrum
from ._results import CriticalPointReport, check_hvp_budget, result_code, result_names
from ._solver import check_solver_args, hessian_eigh, minimise_flat
from ._symmetry import check_hidden_layer, check_neuron_pair, neuron_distance, swap_neurons


@dataclasses.dataclass(frozen=True)
class PermutationPath:
    """A permutation path γ: [0, 1] → Θ for neurons l, m of hidden layer `layer`.

    **Fields (per δ step, first half; index 0 is θ*, the last is δ = 0):**
    `delta`, `loss`, `grad_norm` (‖∇L‖∞ over the free parameters), `status`
    (`RESULTS` names: `converged`, or why the step has no certified
    constrained minimum: `kink` when, in a ReLU network, a sample lies on a
    neuron's hyperplane (|z_μj| ≤ 1e−8·max_μ|z_μj|; the loss is not
    differentiable there), `escape` when the output weights of l or m grew
    beyond 100× their start (no finite constrained minimiser: m and a third
    neuron j merge into a derivative unit a·(g(ϑ_m·x̃) − g(ϑ_j·x̃)) with
    a → ∞ and a‖ϑ_m − ϑ_j‖ fixed while the loss creeps down), `rescaling`
    for the same in a ReLU network (by positive homogeneity ϑ → cϑ,
    a → a/c reaches any δ at the same loss, see `rescale_neurons`) and for
    a step that stopped with a neuron of layer k − 1 rescaled beyond
    `UPSTREAM_FACTOR` × its start (`upstream_scale`), or the
    solver's own `max_steps`, `stalled`, `diverged`), `converged` (booleans),
    `steps` (Newton steps tried), `hessians` (Hessian eigendecompositions
    used; Hessian-vector products when `method` is `matrix-free`), `params` (list of pytrees θ(δ)), `min_abs_preactivation` (that
    relative distance to a kink), `output_weight_max`, and the property
    `upstream_scale`.

    **Other fields:** `model`, `layer`, `l`, `m`, `start` (θ*), `gtol` and
    `max_newton_steps` (what every δ step was solved with),
    `permutation_point` (the parameters θ_{l⇔m}) and
    `permutation_point_report` (a `CriticalPointReport` of θ_{l⇔m}: loss,
    full-gradient ‖∇L‖∞, dense-Hessian index and nullity, verdict at
    ‖∇L‖∞ ≤ `CRITICAL_GTOL`; from the `k` smallest Lanczos eigenvalues when
    `method` is `matrix-free`), `method` (`dense` or `matrix-free`),
    `solver` (the δ step's solver: `newton` when dense, else one of
    `symland._newton_krylov.PATH_SOLVERS`), `factorisations` (Gauss–Newton
    preconditioners factorised; `trust-gn` only), `gauge` (how `delta` is
    measured, `pair_distance`: None for the paper's δ, `balanced`, `upstream`),
    `even_block` (an `EvenBlockSpectrum` when the smallest eigenvalues of
    the σ-even block of the permutation point's Hessian came from
    `even_block_spectrum` instead of Lanczos, `matrix_free_paths(even_block=…)`;
    the report holds them with the exact σ-odd block).
    """

    model: MLP
    layer: int
    l: int
    m: int
    delta: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    status: tuple
    steps: np.ndarray
    hessians: np.ndarray
    params: list
    start: Params
    permutation_point: Params
    permutation_point_report: CriticalPointReport
    min_abs_preactivation: np.ndarray
    output_weight_max: np.ndarray
    gtol: float
    max_newton_steps: int
    loss_fn: object = dataclasses.field(repr=False, compare=False)
    method: str = "dense"
    solver: str = "newton"
    factorisations: int = 0
    gauge: str | None = None
    even_block: EvenBlockSpectrum | None = None

    @property
    def permutation_point_index(self) -> tuple[int, bool]:
        """(index, exact): the Hessian index of θ_{l⇔m} and whether it is exact or a lower bound.

        The report's index, exact when its spectrum decides it
        (`CriticalPointReport.decided`: complete, or the smallest
        eigenvalues with a positive one among them). On the Fig. 3
        permutation point the even block's smallest eigenvalues come from
        `even_block_spectrum` (`even_block`), and this is (9, True) where
        Lanczos left index ≥ 9 (docs/mnist.md).
        """
        r = self.permutation_point_report
        return r.index, r.decided

    @property
    def converged(self) -> np.ndarray:
        """Per δ step: did the step converge?"""
        return np.array([s == "converged" for s in self.status])

    @property
    def upstream_scale(self) -> np.ndarray:
        """Per δ step: `upstream_scale` of θ(δ) against θ* (how far a neuron of layer k − 1 has rescaled)."""
        return np.array([float(upstream_scale(p, self.start, self.layer)) for p in self.params])

    @property
    def all_converged(self) -> bool:
        return bool(np.all(self.converged))

    @property
    def end(self) -> Params:
        """γ(1) = σ^(k)_{l⇔m}(θ*)."""
        return swap_neurons(self.start, self.layer, self.l, self.m)

    def _first_half(self):
        """Knots (t, θ) on [0, ½]: the δ schedule then the equalisation end."""
        n = len(self.params)
        ts = list(np.linspace(0.0, 0.25, n)) + [0.5]
        return ts, list(self.params) + [self.permutation_point]

    def __call__(self, t: float) -> Params:
        """γ(t), piecewise linear between the computed knots; mirrored on [½, 1]."""
        t = float(t)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t: must lie in [0, 1], got {t}")
        if t > 0.5:
            return swap_neurons(self(1.0 - t), self.layer, self.l, self.m)
        ts, knots = self._first_half()
        i = min(int(np.searchsorted(ts, t, side="right")) - 1, len(ts) - 2)
        w = (t - ts[i]) / (ts[i + 1] - ts[i])
        return jax.tree_util.tree_map(lambda a, b: (1 - w) * a + w * b, knots[i], knots[i + 1])

    def full_path(self, n_samples: int = 401):
        """Sample γ(t) on [0, 1]: returns `(t, params_list, loss)`."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
            raise ValueError(f"n_samples: must be an integer ≥ 2, got {n_samples!r}")
        t = np.linspace(0.0, 1.0, n_samples)
        pts = [self(ti) for ti in t]
        loss = np.array([float(self.loss_fn(p)) for p in pts])
        return t, pts, loss

    def highest_point(self):
        """The highest-loss computed point of the path and its Hessian index.

        **Returns:** dict with `t`, `loss`, `delta` (None at the permutation
        point), `index`, `index_exact` (False: a lower bound), `nullity`,
        `part` (of the spectrum: `all` when dense; above `DENSE_THRESHOLD`
        parameters the smallest Lanczos eigenvalues, each run within
        `LANCZOS_HVP_BUDGET` HVPs, or `partial` when it did not converge —
        index and nullity then count only what converged; at the permutation
        point the index is `permutation_point_index`), `params`.
        """
        ts, knots = self._first_half()
        losses = list(self.loss) + [self.permutation_point_report.loss]
        i = int(np.argmax(losses))
        if i == len(losses) - 1:  # the permutation point: its spectrum is known already
            report = self.permutation_point_report
        else:  # dense up to DENSE_THRESHOLD parameters, else the smallest Lanczos eigenvalues
            n = int(ravel_pytree(knots[i])[0].size)
            report = classify_critical_point(self.loss_fn, knots[i], gtol=CRITICAL_GTOL, method="auto",
                                             k=min(20, n - 1), max_hvps=LANCZOS_HVP_BUDGET)
        return {"t": ts[i], "loss": float(losses[i]),
                "delta": float(self.delta[i]) if i < len(self.delta) else None,
                "index": report.index, "index_exact": report.decided, "nullity": report.nullity,
                "part": report.part,
                "params": knots[i]}

    def checks(self) -> dict:
        """The claims of §4.2 at θ_{l⇔m}, each True or False.

        `critical` (‖∇L‖∞ ≤ `CRITICAL_GTOL`), `at_most_one_negative`
        (Fukumizu & Amari Th. 3 as cited; fails in general, see
        `splitting_matrix`) and `at_least_n_next_zero` (§4.2 (i); fails for
        n_{k+1} > 1 in general, see `plateau_directions`). The Hessian claims
        are only judged at a critical point: elsewhere they are None. From a
        spectrum that may miss eigenvalues below its largest (`part`
        `partial`, or `smallest` with none of them positive) index and
        nullity are lower bounds: a claim they refute is False, one they
        cannot decide None (the Fig. 3 point: index ≥ 9 from its σ-odd block
        refutes the first; its 1 zero of the 21 found decides nothing; with
        the even block's smallest eigenvalues from `even_block_spectrum` both
        are decided). The zeros that `even_block.n_flat` counts (first-layer
        directions along inputs without energy) are left out of the second
        claim: they come from the data, not from the symmetry (on Fig. 3, 210
        of them beside 9 others at the report's zero tolerance).
        """
        r = self.permutation_point_report
        n_next = int(self.model.widths[self.layer + 1])
        critical = r.is_critical
        index, exact = self.permutation_point_index
        nullity = r.nullity - (0 if self.even_block is None else self.even_block.n_flat_joined)
        decide = lambda holds, refuted: (None if not critical else False if refuted
                                         else True if holds else None)
        return {
            "critical": bool(critical),
            "at_most_one_negative": decide(exact and index <= 1, index > 1),
            "at_least_n_next_zero": decide(nullity >= n_next, r.decided and nullity < n_next),
        }

    def to_dict(self) -> dict:
        """The JSON record of the path (schema in README.md); 0-based neuron indices."""
        top = self.highest_point()
        return {
            "layer": self.layer,
            "pair": [self.l, self.m],
            "method": self.method,
            "solver": self.solver,
            "factorisations": self.factorisations,
            "gauge": self.gauge,
            "gtol": self.gtol,
            "max_newton_steps": self.max_newton_steps,
            "distance": self.delta.tolist(),
            "loss": self.loss.tolist(),
            "grad_norm": self.grad_norm.tolist(),
            "status": list(self.status),
            "converged": self.converged.tolist(),
            "newton_steps": self.steps.tolist(),
            "hessians": self.hessians.tolist(),
            "upstream_scale": self.upstream_scale.tolist(),
            "all_converged": self.all_converged,
            "permutation_point": {**self.permutation_point_report.to_dict(),
                                  "index": self.permutation_point_index[0],
                                  "index_exact": self.permutation_point_index[1],
                                  "even_block": None if self.even_block is None else self.even_block.to_dict(),
                                  "checks": self.checks()},
            "highest_point": {k: top[k] for k in ("t", "loss", "delta", "index", "index_exact", "nullity",
                                                  "part")},
        }


def _row(W, b, i):
    """ϑ_i = (W_{i,:}, b_i) with a traced index i."""
    return W[i] if b is None else jnp.concatenate([W[i], b[i][None]])


def _with_row(params, layer, i, v):
    """θ with ϑ_i of layer k set to v (traced index i)."""
    W, b = params[layer - 1]
    n_in = W.shape[1]
    out = list(params)
    out[layer - 1] = (W.at[i].set(v[:n_in]), None if b is None else b.at[i].set(v[n_in]))
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class UpstreamGauge:
    """`gauge="upstream"` resolved for a start θ* and data x (`upstream_gauge`).

    `C` = mean over the data of ã ãᵀ, ã = (input of layer k − 1 at θ*, 1):
    the metric in which d_j = (ϑ_jᵀ C ϑ_j)^½ measures neuron j of layer
    k − 1, i.e. the rms of its pre-activation over the data (for k = 2
    exactly; for k ≥ 3 with the layers below held at θ*). Compared by
    identity (it is a cache key of the jitted path kernels).
    """

    C: object
    layer: int


def upstream_gauge(model: MLP, params: Params, x, layer: int):
    """The `UpstreamGauge` of hidden layer `layer` at θ* = `params` on inputs `x`; None for layer 1.

    For layer 1 the distance's entries are inputs, not neurons, so the
    gauge is the paper's δ there.
    """
    if layer == 1:
        return None
    h = jnp.asarray(x)
    if layer > 2:
        h = ACTIVATIONS[model.activation](model.preactivations(params, h)[layer - 3])
    if params[layer - 2][1] is not None:
        h = jnp.concatenate([h, jnp.ones((h.shape[0], 1), h.dtype)], axis=1)
    return UpstreamGauge(C=h.T @ h / h.shape[0], layer=int(layer))


def _upstream_weights(z, layer, gauge):
    """d = (d_1, …, d_{n_{k−1}}, 1), d_j = (ϑ_j^(k−1)ᵀ C ϑ_j^(k−1))^½: the weights of the upstream δ.

    Entry j of a layer-k row ϑ_i is W^(k)_{i,j}, which the rescaling
    ϑ_j^(k−1) → cϑ_j^(k−1), W^(k)_{:,j} → W^(k)_{:,j}/c divides by c while
    d_j is multiplied by c, so d ⊙ ϑ_i is invariant to every such rescaling
    (bias entries weigh 1). Why C and not the Euclidean ‖ϑ_j‖: first-layer
    weights along input directions with almost no energy hardly change
    the function, and the solver moves them freely; a Euclidean d_j would
    follow them, and on the Fig. 3 path its fixed-δ steps then failed
    (trust-region steps of ‖Δs‖ ≈ 0.05 raised L by 3e−4 where the
    quadratic model predicted a decrease of 4e−8; docs/mnist.md).
    """
    W, b = z[layer - 1]
    Wb, bb = z[layer - 2]
    rows = Wb if bb is None else jnp.concatenate([Wb, bb[:, None]], axis=1)
    d = jnp.sqrt(jnp.sum((rows @ gauge.C) * rows, axis=1))
    return d if b is None else jnp.concatenate([d, jnp.ones(1, W.dtype)])


def _effective(z, layer, l, m, delta, gauge=None):
    """θ from free variables z: row m of layer k holds u; ϑ_m = ϑ_l + δ u/‖u‖.

    With `gauge="balanced"` (see `balance_neurons`) neuron l is first
    replaced by its balanced representative and a_m gets the length ‖ϑ_m‖
    (its direction is free), so δ is the distance of balanced neurons.
    With an `UpstreamGauge`, ϑ_m = ϑ_l + δ (u/‖u‖) ⊘ d (`_upstream_weights`),
    so that δ = ‖d ⊙ (ϑ_m − ϑ_l)‖ (`pair_distance`).
    """
    if gauge == "balanced":
        z = _balance(z, layer, l)
    W, b = z[layer - 1]
    u = _row(W, b, m)
    e = u / jnp.linalg.norm(u)
    if isinstance(gauge, UpstreamGauge):
        e = e / _upstream_weights(z, layer, gauge)
    theta = _with_row(z, layer, m, _row(W, b, l) + delta * e)
    if gauge == "balanced":
        W2, b2 = theta[layer]
        Wm, bm = theta[layer - 1]
        a = W2[:, m]
        theta = list(theta)
        theta[layer] = (W2.at[:, m].set(a * jnp.linalg.norm(_row(Wm, bm, m)) / jnp.linalg.norm(a)), b2)
    return theta


def _balance(params, layer, j):
    """Neuron j of layer k scaled to ‖ϑ_j‖ = ‖W^(k+1)_{:,j}‖ (ReLU: same function)."""
    (W, b), (W2, b2) = params[layer - 1], params[layer]
    c = jnp.sqrt(jnp.linalg.norm(W2[:, j]) / jnp.linalg.norm(_row(W, b, j)))
    out = list(params)
    out[layer - 1] = (W.at[j].multiply(c), None if b is None else b.at[j].multiply(c))
    out[layer] = (W2.at[:, j].divide(c), b2)
    return out


GAUGES = (None, "balanced", "upstream")


def pair_distance(params: Params, layer: int, l: int, m: int, gauge=None, *, model: MLP | None = None,
                  x=None):
    """δ of neurons l, m of hidden layer k, as the fixed-δ path measures it in `gauge`.

    None or `balanced`: d^(k)_{l,m} = ‖ϑ_l − ϑ_m‖ (Brea et al. 2019, §4.1;
    `neuron_distance`; the balanced gauge measures it after
    `balance_neurons`). `upstream` (needs `model` and the inputs `x`, or an
    `UpstreamGauge` from `upstream_gauge`): ‖d ⊙ (ϑ_l − ϑ_m)‖ with d_j the
    rms over the data of the pre-activation of neuron j of layer k − 1
    (`_upstream_weights`), i.e. the paper's δ after every neuron of layer
    k − 1 is rescaled to unit rms. A deviation from the paper: its δ shrinks
    when a neuron j of layer k − 1 grows (ϑ_j → cϑ_j, W^(k)_{:,j} →
    W^(k)_{:,j}/c), at no cost in loss for ReLU and little for softplus in
    its linear regime, which is how the Fig. 3 path runs off
    (docs/mnist.md); this δ does not change under that rescaling. For layer
    1 both are the same.

    Example:
        >>> import jax.numpy as jnp, symland as s
        >>> model = s.MLP((1, 2, 2, 1), "relu")
        >>> p = [(jnp.array([[1.0], [2.0]]), jnp.zeros(2)),
        ...      (jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.zeros(2)), (jnp.ones((1, 2)), jnp.zeros(1))]
        >>> x = jnp.array([[1.0], [-1.0]])  # pre-activations ±1 and ±2: rms 1 and 2
        >>> float(s.pair_distance(p, 2, 0, 1)), float(s.pair_distance(p, 2, 0, 1, "upstream", model=model, x=x))
        (1.4142135623730951, 2.23606797749979)
        >>> q = s.rescale_neurons(p, 1, [1], 10.0)  # neuron 1 of layer 1 grows 10×
        >>> d = lambda g=None: round(float(s.pair_distance(q, 2, 0, 1, g, model=model, x=x)), 6)
        >>> d(), d("upstream")
        (1.004988, 2.236068)
    """
    check_neuron_pair(params, layer, l, m)
    if gauge not in GAUGES and not isinstance(gauge, UpstreamGauge):
        raise ValueError(f"gauge: unknown gauge {gauge!r}; choose None, 'balanced' or 'upstream'")
    if gauge == "upstream":
        if model is None or x is None:
            raise ValueError("x: gauge 'upstream' measures neurons of the layer below on the data; "
                             "pass model= and x=")
        gauge = upstream_gauge(model, params, x, layer)
    if not isinstance(gauge, UpstreamGauge):
        return neuron_distance(params, layer, l, m)
    W, b = params[layer - 1]
    return jnp.linalg.norm(_upstream_weights(params, layer, gauge) * (_row(W, b, l) - _row(W, b, m)))


def balance_neurons(params, layer: int):
    """Every neuron j of hidden layer k rescaled to ‖ϑ_j‖ = ‖W^(k+1)_{:,j}‖ (the balanced gauge).

    For ReLU, ϑ_j → cϑ_j, W^(k+1)_{:,j} → W^(k+1)_{:,j}/c leaves f unchanged
    (`rescale_neurons`), so each rescaling orbit is a line of equal loss, and
    the fixed-δ problem of §4.1 is degenerate (README). The balanced gauge
    picks one point per orbit, c² = ‖W^(k+1)_{:,j}‖/‖ϑ_j‖. Why this gauge and
    not a distance between normalised vectors ϑ_j/‖ϑ_j‖: gradient flow
    conserves ‖ϑ_j‖² − ‖W^(k+1)_{:,j}‖² for ReLU (Du, Hu & Lee 2018, Th. 2.1),
    so networks trained from small balanced initialisations stay balanced,
    and the gauge keeps δ a distance of parameter vectors as in the paper
    (normalised vectors would also lose the neuron's scale, so δ = 0 would
    not merge the two neurons). Defined for neurons with ϑ_j ≠ 0 and
    W^(k+1)_{:,j} ≠ 0.
    """
    check_hidden_layer(params, layer)
    out = params
    for j in range(int(jnp.shape(params[layer - 1][0])[0])):
        out = _balance(out, layer, j)
    return out


def _to_free(params, layer, l, m, gauge=None):
    """Free variables at θ: row m of layer k replaced by u = ϑ_m − ϑ_l (so e = u/‖u‖).

    With an `UpstreamGauge`, u = d ⊙ (ϑ_m − ϑ_l) (`_upstream_weights`), the inverse of `_effective`.
    """
    W, b = params[layer - 1]
    u = _row(W, b, m) - _row(W, b, l)
    if isinstance(gauge, UpstreamGauge):
        u = u * _upstream_weights(params, layer, gauge)
    return _with_row(params, layer, m, u)


def _rescale_direction(z, layer, m, norm):
    """Scale the stored direction u (row m of layer k) to length `norm`.

    Keeping ‖u‖ = δ makes a tangential move of u change ϑ_m by about the same
    amount, so the trust region is isotropic in the effect of each variable;
    with ‖u‖ = 1 the curvature along u would scale as δ² and stall Newton.
    """
    W, b = z[layer - 1]
    nrm = jnp.linalg.norm(W[m]) if b is None else jnp.sqrt(jnp.sum(W[m] ** 2) + b[m] ** 2)
    c = norm / nrm
    out = list(z)
    out[layer - 1] = (W.at[m].multiply(c), None if b is None else b.at[m].multiply(c))
    return out


def _pair_output_weight(theta, layer, l, m):
    """max |W^(k+1)_{:,l}|, |W^(k+1)_{:,m}|: the size of the pair's output weights."""
    W_next = theta[layer][0]
    return jnp.maximum(jnp.max(jnp.abs(W_next[:, l])), jnp.max(jnp.abs(W_next[:, m])))


def _equalise(theta, layer, l, m):
    """Set both outgoing weight vectors of l and m to their mean (sum kept)."""
    W2, b2 = theta[layer]
    mean = 0.5 * (W2[:, l] + W2[:, m])
    out = list(theta)
    out[layer] = (W2.at[:, l].set(mean).at[:, m].set(mean), b2)
    return out


# Plain names for the matrix-free path finder (`symland._newton_krylov`).
effective_params = _effective
free_parameters = _to_free
rescale_direction = _rescale_direction
pair_output_weight = _pair_output_weight
equalise_output_weights = _equalise


def _free_hessian(model: MLP, kind: str, to_theta, unravel_theta, x, y):
    """v ↦ ∇²_v L(θ(v)) for the path's free variables v, or None (use `jax.hessian`).

    Chain rule: ∇²_v L = Jᵀ ∇²_θL J + Σ_i ∂L/∂θ_i ∇²_v θ_i with J = ∂θ/∂v; the
    second term involves only the reparametrisation ϑ_m = ϑ_l + δu/‖u‖, no
    data. For a one-hidden-layer network ∇²_θL is the closed form
    `two_layer_mse_hessian` (scaled by 1/⟨y²⟩ for `nmse`), ≈ 5× faster than
    `jax.hessian` on the toy; deeper networks return None.
    """
    if model.depth != 2:
        return None
    loss_of = mse if kind == "mse" else nmse
    scale = 1.0 if kind == "mse" else 1.0 / jnp.mean(y * y)

    def hessian(v):
        theta = to_theta(v)
        H = scale * two_layer_mse_hessian(model, unravel_theta(theta), x, y)
        g = jax.lax.stop_gradient(jax.grad(lambda t: loss_of(model, unravel_theta(t), x, y))(theta))
        J = jax.jacfwd(to_theta)(v)
        return J.T @ H @ J + jax.hessian(lambda w: g @ to_theta(w))(v)

    return hessian


CHUNK = 25  # δ steps per jitted call; the progress bar advances per chunk
CRITICAL_GTOL = 1e-8  # θ_{l⇔m} counts as critical when its full ‖∇L‖∞ is at most this


class StepRecord(NamedTuple):
    """Per-δ-step outputs of the path scan (stacked over steps, then over pairs)."""

    loss: jnp.ndarray
    grad_norm: jnp.ndarray
    steps: jnp.ndarray
    status: jnp.ndarray  # `RESULTS` codes of the solver
    theta: jnp.ndarray
    kink: jnp.ndarray
    output_weight: jnp.ndarray
    hessians: jnp.ndarray


class Continuation(NamedTuple):
    """The state carried from one δ step to the next (per pair; flat θ vectors)."""

    prev: jnp.ndarray  # θ at the step before the last
    curr: jnp.ndarray  # θ at the last step
    s_prev: jnp.ndarray  # log δ at those two steps
    s_curr: jnp.ndarray
    norm: jnp.ndarray  # the last δ > 0: the scale of the free direction


@functools.lru_cache(maxsize=32)
def _path_kernels(model: MLP, layer: int, kind: str, gauge=None):
    """Jitted, pair-batched (`vmap`) pieces of the path computation.

    `start(params, ls, ms, deltas)` makes the continuation state,
    `advance(params, x, y, gtol, max_steps, ls, ms, state, deltas_chunk)`
    solves a chunk of δ steps, `finish(params, x, y, ls, ms, theta_last)`
    builds θ_{l⇔m} and its spectrum. `gtol` and `max_steps` are arguments,
    not constants, so one compiled `advance` serves every tolerance and step
    budget (it is the costliest program of a dense path: about 8 s to compile
    on the toy).
    """
    loss_of = mse if kind == "mse" else nmse

    def start(params, l, m, deltas):
        theta0 = ravel_pytree(params)[0]
        logd0 = jnp.log(deltas[0])
        return Continuation(theta0, theta0, logd0, logd0, deltas[0])

    def advance(params, x, y, gtol, max_steps, l, m, state, deltas):
        unravel_theta = ravel_pytree(params)[1]
        logd = jnp.log(jnp.where(deltas > 0, deltas, 1.0))

        def step(carry: Continuation, inp):
            prev, curr, s_prev, s_curr = carry.prev, carry.curr, carry.s_prev, carry.s_curr
            delta, s_next = inp
            # Secant predictor in log δ along the path (a first-order
            # continuation step); none at δ = 0 or before two points exist.
            w = jnp.where((delta > 0) & (s_curr != s_prev),
                          (s_next - s_curr) / jnp.where(s_curr != s_prev, s_curr - s_prev, 1.0), 0.0)
            guess = unravel_theta(curr + w * (curr - prev))
            norm = jnp.where(delta > 0, delta, carry.norm)  # at δ = 0 keep the last scale
            z = _rescale_direction(_to_free(guess, layer, l, m, gauge), layer, m, norm)
            unravel = ravel_pytree(z)[1]
            to_theta = lambda v: ravel_pytree(_effective(unravel(v), layer, l, m, delta, gauge))[0]
            f = lambda v: loss_of(model, unravel_theta(to_theta(v)), x, y)
            sol = minimise_flat(
                f, ravel_pytree(z)[0], gtol=gtol, max_steps=max_steps, history_length=1,
                hessian=_free_hessian(model, kind, to_theta, unravel_theta, x, y))
            eff = _effective(unravel(sol.x), layer, l, m, delta, gauge)
            theta = ravel_pytree(eff)[0]
            # Diagnostics for steps that fail: how close a sample sits to a
            # kink of g (ReLU), relative to the neuron's scale (so that the
            # rescaling ϑ → cϑ does not fake one), and how large the pair's
            # output weights grew.
            kink = jnp.min(jnp.stack([
                jnp.min(jnp.abs(z) / jnp.maximum(jnp.max(jnp.abs(z), axis=0), 1e-300))
                for z in model.preactivations(eff, x)]))
            out_w = _pair_output_weight(eff, layer, l, m)
            return (Continuation(curr, theta, s_curr, s_next, norm),
                    StepRecord(sol.loss, sol.grad_norm, sol.steps, result_code(sol.status), theta,
                               kink, out_w, sol.hessians))

        return jax.lax.scan(step, state, (deltas, logd))

    def finish(params, x, y, l, m, theta_last):
        unravel_theta = ravel_pytree(params)[1]
        pf = ravel_pytree(_equalise(unravel_theta(theta_last), layer, l, m))[0]
        full = lambda v: loss_of(model, unravel_theta(v), x, y)
        pl, pg = jax.value_and_grad(full)(pf)
        eig = hessian_eigh(full, pf)[0]
        return pf, pl, jnp.max(jnp.abs(pg)), eig

    return (jax.jit(jax.vmap(start, in_axes=(None, 0, 0, 0))),
            jax.jit(jax.vmap(advance, in_axes=(None, None, None, None, None, 0, 0, 0, 0))),
            jax.jit(jax.vmap(finish, in_axes=(None, None, None, 0, 0, 0))))


def _solve_paths(kernels, params, x, y, ls, ms, deltas, progress, *, gtol, max_steps):
    """Run the chunked, batched continuation; returns stacked per-step arrays."""
    start, advance, finish = kernels
    n = deltas.shape[1]
    n_chunks = -(-n // CHUNK)
    padded = np.concatenate([deltas, np.repeat(deltas[:, -1:], n_chunks * CHUNK - n, 1)], 1)
    state = start(params, ls, ms, jnp.asarray(padded))
    pieces = []
    bar = tqdm(total=n, desc=f"{len(ls)} path(s)", unit="δ", disable=not progress, leave=False)
    for c in range(n_chunks):
        state, out = advance(params, x, y, np.float64(gtol), np.int64(max_steps), ls, ms, state,
                             jnp.asarray(padded[:, c * CHUNK:(c + 1) * CHUNK]))
        pieces.append([np.asarray(a) for a in out])
        bar.update(min(CHUNK, n - c * CHUNK))
    bar.close()
    per_step = StepRecord(*[np.concatenate([p[i] for p in pieces], axis=1)[:, :n]
                            for i in range(len(pieces[0]))])
    fin = [np.asarray(a) for a in finish(params, x, y, ls, ms, jnp.asarray(per_step.theta[:, -1]))]
    return per_step, fin


KINK_TOL = 1e-8
ESCAPE_FACTOR = 100.0
# A neuron of layer k − 1 past this multiple of its scale at θ* ends a δ step as `rescaling`. Measured on
# the Fig. 3 pair (784-10-10-10 softplus, Fashion-MNIST, trust-gn; docs/mnist.md): layer-1 neuron 8 grew
# 1.0 → 9.7× over steps 0–18, each step converged, but steps 14–18 (3.7× → 9.7×) cost 205 → 5,412 HVPs;
# step 19 then ran 300 iterations (24,197 HVPs, 1,012 s) without converging.
UPSTREAM_FACTOR = 10.0


def upstream_scale(params: Params, start: Params, layer: int):
    """max_j ‖ϑ_j^(k−1)(θ)‖ / ‖ϑ_j^(k−1)(θ*)‖: how far a neuron of the layer below the pair has rescaled.

    The fixed-δ constraint of Brea et al. (2019, §4.1) measures
    δ = ‖ϑ_l − ϑ_m‖ in layer k's incoming weights, whose entry j multiplies
    the output of neuron j of layer k − 1. Scaling that neuron
    (ϑ_j → cϑ_j, W^(k)_{:,j} → W^(k)_{:,j}/c) shrinks entry j of ϑ_l − ϑ_m
    c-fold at no change of f for ReLU, and at a cost that vanishes as c → ∞
    for softplus on the samples in its linear regime (softplus(cz)/c →
    max(0, z)). A constrained minimiser can therefore meet a small δ by
    rescaling an upstream neuron instead of moving the pair: its δ-path runs
    off to infinity. This ratio (bias included; 1 for k = 1, whose inputs
    are data) watches for it; `UPSTREAM_FACTOR` is where a path step gives up.

    >>> import jax.numpy as jnp
    >>> import symland as s
    >>> from symland._path import upstream_scale
    >>> p = s.MLP((3, 4, 4, 2), "softplus").init(jax.random.PRNGKey(0))
    >>> (W1, b1), rest = p[0], p[1:]
    >>> q = [(W1.at[2].multiply(5.0), b1.at[2].multiply(5.0)), *rest]
    >>> round(float(upstream_scale(q, p, 2)), 12), float(upstream_scale(q, p, 1))
    (5.0, 1.0)
    """
    return jnp.max(upstream_ratios(params, start, layer))


def upstream_ratios(params: Params, start: Params, layer: int):
    """‖ϑ_j^(k−1)(θ)‖ / ‖ϑ_j^(k−1)(θ*)‖ for every neuron j of layer k − 1 (bias included); [1.] for k = 1.

    `upstream_scale` is their maximum.
    """
    if layer < 2:
        return jnp.ones(1)

    def norms(theta):
        W, b = theta[layer - 2]
        return jnp.sqrt(jnp.sum(W ** 2, axis=1) + (0.0 if b is None else b ** 2))

    return norms(params) / jnp.maximum(norms(start), 1e-300)


def step_status(solver_status, kinks, out_ws, out_w0, activation, upstream=None) -> tuple:
    """Per δ step, a `RESULTS` name: the solver's, or the landscape reason it failed.

    A ReLU step with a sample within `KINK_TOL` of a hyperplane (relative to
    the neuron's scale) is `kink`, converged or not (the loss is not
    differentiable there, so a small gradient certifies nothing); otherwise
    `converged` stays, and a failed step is `escape`
    (output weights beyond `ESCAPE_FACTOR` × their start) or, for ReLU,
    `rescaling` (the same run-away, by positive homogeneity), or
    `rescaling` when a neuron of layer k − 1 has grown beyond
    `UPSTREAM_FACTOR` × its scale at θ* (`upstream`, per step, from
    `upstream_scale`; None: not checked); otherwise the solver's status.
    """
    ups = [1.0] * len(kinks) if upstream is None else upstream
    out = []
    for st, kink, w, up in zip(result_names(solver_status), kinks, out_ws, ups):
        if activation == "relu" and kink < KINK_TOL:
            out.append("kink")
        elif st == "converged":
            out.append(st)
        elif w > ESCAPE_FACTOR * max(out_w0, 1e-12):
            out.append("rescaling" if activation == "relu" else "escape")
        elif up > UPSTREAM_FACTOR:
            out.append("rescaling")
        else:
            out.append(st)
    return tuple(out)


def check_schedule(steps, ratio) -> None:
    """`ValueError` unless steps ≥ 2 is an integer and 0 < ratio < 1."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps: need an integer ≥ 2, got {steps!r}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio: must lie in (0, 1), got {ratio!r}")


def check_pairs(params, layer: int, pairs) -> list[tuple[int, int]]:
    """`pairs` ("all" or (l, m) pairs of distinct neurons of hidden layer `layer`) as a list.

    `ValueError` naming `pairs` for anything else, including a pair whose two
    neurons coincide (δ₀ = 0: swapping them is the identity, so there is no path).
    """
    n = check_hidden_layer(params, layer)
    if isinstance(pairs, str):
        if pairs != "all":
            raise ValueError(f"pairs: expected 'all' or a list of (l, m), got {pairs!r}")
        pairs = list(itertools.combinations(range(n), 2))
    pairs = [tuple(p) for p in pairs]
    if not pairs:
        raise ValueError("pairs: no pair given")
    for p in pairs:
        if len(p) != 2:
            raise ValueError(f"pairs: each pair must be (l, m), got {p!r}")
        check_neuron_pair(params, layer, *p)
        if not float(neuron_distance(params, layer, *p)) > 0:
            raise ValueError(f"pairs: neurons {p[0]} and {p[1]} of layer {layer} coincide (δ₀ = 0); "
                             "the path is only defined for distinct neurons")
    return [(int(a), int(b)) for a, b in pairs]


def delta_schedule(delta0: float, steps: int, ratio: float) -> np.ndarray:
    """δ₀, …, δ₀·ratio in `steps` log-spaced values, then δ = 0."""
    check_schedule(steps, ratio)
    return np.concatenate([delta0 * np.logspace(0.0, np.log10(ratio), steps), [0.0]])


def find_permutation_paths(model: MLP, params: Params, x, y, layer: int, pairs, *,
                           steps: int = 200, ratio: float = 1e-4, loss: str = "mse",
                           gtol: float | None = None, max_newton_steps: int = 200,
                           max_hvps: int | None = None, gauge: str | None = "auto", method: str = "auto",
                           solver: str = "trust-ncg", progress: bool = False) -> list[PermutationPath]:
    """Permutation paths for several pairs (l, m) of one hidden layer, in one batched call.

    The pairs share one jitted, `jax.vmap`-ed computation; each pair has its
    own schedule δ₀·(1, …, `ratio`, 0) with its own δ₀.

    **Arguments:**
    - `model`, `params`: the network and the start θ* (usually a minimum).
    - `x`, `y`: the data; `loss`: `mse` or `nmse`.
    - `layer`: hidden layer k (1…d−1); `pairs`: iterable of (l, m), 0-based,
      or `"all"`.
    - `steps`: number of log-spaced δ values from δ₀ to δ₀·`ratio`
      (200 in Fig. 1, 100 in Fig. 3); a final step at δ = 0 is added.
    - `gtol`: each step is minimised until ‖∇L‖∞ ≤ `gtol` over the free
      parameters (dense; default 1e-10) or ‖∇L‖∞ ≤ `gtol`·max(1, L)
      (matrix-free; default 1e-8); `max_newton_steps` per δ.
    - `max_hvps` (matrix-free only): the most Hessian-vector products one δ
      step may spend (default None: no limit but `max_newton_steps`; the
      Fig. 3 runs use `FIG3_HVP_BUDGET`); a step that runs out reports
      `max_steps` with its last accepted iterate.
    - `gauge`: how δ is measured (`pair_distance`). `balanced` (δ between
      balanced neurons, `balance_neurons`; the path starts at the balanced
      θ*, which for ReLU computes the same function; matrix-free paths
      start there too but then measure the paper's δ), None (the paper's
      δ), `upstream` (entry j of ϑ_l − ϑ_m weighted by the rms over `x` of
      the pre-activation of neuron j of layer k − 1 at θ*: invariant to
      rescaling the layer below, which the paper's δ is not; a deviation
      from the paper, docs/mnist.md), or
      `auto` (`balanced` for ReLU, where the paper's fixed-δ problem is
      degenerate, None otherwise).
    - `method`: `dense` (exact-Hessian Newton, all pairs batched),
      `matrix-free` (trust-region Newton–Krylov on Hessian-vector
      products, `symland._newton_krylov`; no Hessian is formed) or `auto`
      (dense up to `DENSE_THRESHOLD` parameters, as `hessian_spectrum`).
      They differ after a run-off: a matrix-free step that escaped makes
      δ = 0 start from θ* with the pair merged (`matrix_free_paths`), and
      its permutation point is reported by `classify_permutation_point`;
      the dense scan always continues from the last step, and reports the
      full dense spectrum.
    - `solver` (matrix-free only): the δ step's solver, one of
      `symland._newton_krylov.PATH_SOLVERS`: `trust-ncg` (default),
      `trust-krylov`, `trust-pcg` (EKFAC-preconditioned) or `trust-gn`
      (preconditioned by the exact Gauss–Newton matrix, factorised now and
      then: fewer HVPs, but each costs more; measured in docs/mnist.md).
    - `progress`: show a progress bar over the δ schedule.

    **Returns:** a list of `PermutationPath`, one per pair.
    """
    model.check_params(params)
    check_hidden_layer(params, layer)
    check_schedule(steps, ratio)
    if method not in ("auto", "dense", "matrix-free"):
        raise ValueError(f"method: unknown method {method!r}; choose 'auto', 'dense' or 'matrix-free'")
    if method == "auto":
        method = "dense" if model.n_params <= DENSE_THRESHOLD else "matrix-free"
    if gtol is None:
        gtol = 1e-10 if method == "dense" else 1e-8
    check_solver_args(gtol, max_newton_steps, steps_name="max_newton_steps")
    check_hvp_budget(max_hvps)
    from ._newton_krylov import check_path_solver

    check_path_solver(solver)
    check_finite_params(params)
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    x, y = check_data(model, x, y)
    if gauge == "auto":
        gauge = "balanced" if model.activation == "relu" else None
    if gauge not in GAUGES:
        raise ValueError(f"gauge: unknown gauge {gauge!r}; choose 'auto', 'balanced', 'upstream' or None")
    if gauge == "balanced":
        params = balance_neurons(params, layer)
    pairs = check_pairs(params, layer, pairs)
    resolved = upstream_gauge(model, params, x, layer) if gauge == "upstream" else gauge
    if isinstance(resolved, UpstreamGauge) and not bool(jnp.all(_upstream_weights(params, layer, resolved) > 0)):
        raise ValueError(f"gauge: 'upstream' weighs by the rms pre-activations of layer {layer - 1}'s neurons, "
                         "and one of them is zero on these data")
    delta0 = np.array([float(pair_distance(params, layer, l, m, resolved)) for l, m in pairs])
    unit = delta_schedule(1.0, steps, ratio)
    if method == "matrix-free":
        from ._newton_krylov import matrix_free_paths

        return matrix_free_paths(model, params, x, y, int(layer), pairs, delta0[:, None] * unit[None, :],
                                 loss=loss, gtol=float(gtol), max_steps=int(max_newton_steps),
                                 max_hvps=None if max_hvps is None else int(max_hvps),
                                 solver=solver, gauge=(resolved if isinstance(resolved, UpstreamGauge)
                                                       else "upstream" if gauge == "upstream" else None),
                                 progress=progress)
    kernels = _path_kernels(model, int(layer), loss, resolved)
    ls = jnp.array([p[0] for p in pairs])
    ms = jnp.array([p[1] for p in pairs])
    rec, (pf, pl, pg, eig) = _solve_paths(
        kernels, params, x, y, ls, ms, delta0[:, None] * unit[None, :], progress,
        gtol=float(gtol), max_steps=int(max_newton_steps))
    unravel = ravel_pytree(params)[1]
    loss_of = mse if loss == "mse" else nmse
    loss_fn = lambda p: loss_of(model, p, x, y)
    n_params = int(pf.shape[1])
    paths = []
    for i, (l, m) in enumerate(pairs):
        paths.append(PermutationPath(
            model=model, layer=int(layer), l=l, m=m, delta=delta0[i] * unit,
            loss=rec.loss[i], grad_norm=rec.grad_norm[i],
            status=step_status(rec.status[i], rec.kink[i], rec.output_weight[i],
                               rec.output_weight[i][0], model.activation,
                               [float(upstream_scale(unravel(jnp.asarray(t)), params, layer))
                                for t in rec.theta[i]]),
            steps=rec.steps[i], hessians=rec.hessians[i],
            min_abs_preactivation=rec.kink[i], output_weight_max=rec.output_weight[i],
            params=[unravel(jnp.asarray(t)) for t in rec.theta[i]], start=params,
            permutation_point=unravel(jnp.asarray(pf[i])),
            permutation_point_report=CriticalPointReport.from_spectrum(
                pl[i], pg[i], eig[i], gtol=CRITICAL_GTOL, n=n_params),
            gtol=float(gtol), max_newton_steps=int(max_newton_steps), loss_fn=loss_fn, gauge=gauge))
    return paths


def find_permutation_path(model: MLP, params: Params, x, y, layer: int, l: int, m: int,
                          **kwargs) -> PermutationPath:
    """The permutation path of neurons l and m in hidden layer `layer` (Brea et al. 2019, §4.1).

    Keyword arguments are those of `find_permutation_paths`.
    """
    return find_permutation_paths(model, params, x, y, layer, [(l, m)], **kwargs)[0]
