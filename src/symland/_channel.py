"""Channels to infinity: the limit network of an escaping fixed-δ step (Martinelli et al. 2025).

When a fixed-δ step of the permutation path (Brea et al. 2019, §4.1) has no
finite minimiser (status `escape`), neuron m and a third neuron j run off
together: ϑ_m − ϑ_j → 0 and a_m ≈ −a_j → ∞ with v = a_m (ϑ_m − ϑ_j)
bounded, while the loss creeps down. Martinelli, van Meegen, Şimşek,
Gerstner & Brea (NeurIPS 2025, "Flat channels to infinity in neural loss
landscapes") identify the limit: with w the common limit of ϑ_m and ϑ_j,

    a_m g(ϑ_m·x̃) + a_j g(ϑ_j·x̃) → c g(w·x̃) + (v·x̃) g′(w·x̃),   c = a_m + a_j,

(first-order Taylor expansion of g(ϑ_m·x̃) about ϑ_j·x̃, x̃ = (x, 1)): a
gated linear unit. The paper writes the unit with c = 1 absorbed; here c
is kept as a free output weight. The asymptotic loss of the channel is the
minimum of the limit network, in which the pair (m, j) is replaced by this
unit, under the same constraint ‖ϑ_l − w‖ = δ (ϑ_m → w). `channel_of`
names the channel of an escaped point; `channel_limit` builds and minimises
the limit network. One hidden layer only.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._network import ACTIVATIONS, MLP, Params
from ._results import result_name
from ._solver import minimise_flat
from ._symmetry import check_neuron_pair


@dataclasses.dataclass(frozen=True)
class Channel:
    """The channel an escaping pair runs along.

    **Fields:** `l`, `m`, `j` (the third neuron m merges with), `w` (the
    midpoint (ϑ_m + ϑ_j)/2, the limit of both), `c` (a_m + a_j, per
    output), `v` (a_m (ϑ_m − ϑ_j), one row per output), `gap`
    (‖ϑ_m − ϑ_j‖), `output_weight` (|a_m|).
    """

    l: int
    m: int
    j: int
    w: np.ndarray
    c: np.ndarray
    v: np.ndarray
    gap: float
    output_weight: float

    def to_dict(self) -> dict:
        return {"l": self.l, "m": self.m, "j": self.j, "w": self.w.tolist(), "c": self.c.tolist(),
                "v": self.v.tolist(), "gap": self.gap, "output_weight": self.output_weight,
                "v_norm": float(np.linalg.norm(self.v))}


def _check_two_layer(model: MLP):
    if model.depth != 2:
        raise ValueError(f"model: channels are built for one hidden layer, got widths {model.widths}")


def _vectors(params):
    W, b = params[0]
    return W if b is None else jnp.concatenate([W, b[:, None]], axis=1)


def channel_of(model: MLP, params: Params, l: int, m: int) -> Channel:
    """The channel at an escaped point θ: j = argmin_{j ∉ {l, m}} ‖ϑ_m − ϑ_j‖ and v = a_m (ϑ_m − ϑ_j).

    **Arguments:** `model`, `params` (a point along the escape, e.g. the
    last iterate of an `escape` step), `l`, `m` (the pair of the path).

    **Returns:** a `Channel`.
    """
    _check_two_layer(model)
    check_neuron_pair(params, 1, l, m)
    T = np.asarray(_vectors(params))
    A = np.asarray(params[1][0])
    n = T.shape[0]
    if n < 3:
        raise ValueError("model: a channel needs a third neuron (at least 3 hidden neurons)")
    dist = np.linalg.norm(T - T[m], axis=1)
    dist[[l, m]] = np.inf
    j = int(np.argmin(dist))
    v = A[:, m][:, None] * (T[m] - T[j])[None, :]
    return Channel(l, m, j, 0.5 * (T[m] + T[j]), A[:, m] + A[:, j], v, float(dist[j]),
                   float(np.max(np.abs(A[:, m]))))


def glu_network(model: MLP, params: Params, channel: Channel):
    """The limit network as a pytree {"net": θ without neuron j, "v": v}; neuron m carries (w, c).

    f(x) = Σ_{i ≠ j} a_i g(ϑ_i·x̃) + (v·x̃) g′(w·x̃) + bias, with ϑ_m = w,
    a_m = c.
    """
    _check_two_layer(model)
    (W, b), (A, c0) = params
    m, j = channel.m, channel.j
    d = W.shape[1]
    keep = [i for i in range(W.shape[0]) if i != j]
    W = W.at[m].set(channel.w[:d])
    b = None if b is None else b.at[m].set(channel.w[d])
    A = A.at[:, m].set(channel.c)
    idx = jnp.asarray(keep)
    net = [(W[idx], None if b is None else b[idx]), (A[:, idx], c0)]
    return {"net": net, "v": jnp.asarray(channel.v)}


def glu_apply(model: MLP, glu, m_new: int, x):
    """f(x) of the limit network; `m_new` is neuron m's index after removing j."""
    g = ACTIVATIONS[model.activation]
    dg = jax.grad(g)
    (W, b), (A, c0) = glu["net"]
    z = x @ W.T + (0.0 if b is None else b)
    out = g(z) @ A.T
    if c0 is not None:
        out = out + c0
    xt = x if b is None else jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
    gate = jax.vmap(dg)(z[:, m_new])
    return out + (xt @ glu["v"].T) * gate[:, None]


@dataclasses.dataclass(frozen=True)
class ChannelLimit:
    """The minimised limit network of a channel.

    **Fields:** `channel`, `loss` (the asymptotic loss of the channel: the
    limit network's constrained minimum), `start_loss` (limit network at the
    escaped point, before minimising), `grad_norm`, `status` (a `RESULTS`
    name), `delta`, `params` (the minimised limit network).
    """

    channel: Channel
    loss: float
    start_loss: float
    grad_norm: float
    status: str
    delta: float
    params: object

    def to_dict(self) -> dict:
        return {"channel": self.channel.to_dict(), "loss": self.loss, "start_loss": self.start_loss,
                "grad_norm": self.grad_norm, "status": self.status, "delta": self.delta}


def channel_limit(model: MLP, params: Params, x, y, l: int, m: int, delta: float, *,
                  gtol: float = 1e-10, max_steps: int = 500) -> ChannelLimit:
    """Name the channel at an escaped point, build its GLU limit network and minimise it at fixed δ.

    The limit network's free variables are all its parameters, with w
    reparametrised as w = ϑ_l + δ u/‖u‖ (the path's constraint, since
    ϑ_m → w); minimised by `minimise_flat` (exact-Hessian Newton).

    **Arguments:** `model`, `params` (the escaped point), `x`, `y`, `l`,
    `m`, `delta` (the δ of the step), `gtol`, `max_steps`.

    **Returns:** a `ChannelLimit`; `loss` is the MSE the escape approaches.
    """
    ch = channel_of(model, params, l, m)
    glu = glu_network(model, params, ch)
    m_new = m - (1 if ch.j < m else 0)
    l_new = l - (1 if ch.j < l else 0)
    d = model.widths[0]

    def to_net(z):
        (W, b), out = z["net"]
        tl = W[l_new] if b is None else jnp.concatenate([W[l_new], b[l_new][None]])
        u = z["u"]
        w = tl + delta * u / jnp.linalg.norm(u)
        W = W.at[m_new].set(w[:d])
        b = None if b is None else b.at[m_new].set(w[d])
        return {"net": [(W, b), out], "v": z["v"]}

    (W, b) = glu["net"][0]
    tl = W[l_new] if b is None else jnp.concatenate([W[l_new], b[l_new][None]])
    z0 = {"net": glu["net"], "v": glu["v"], "u": jnp.asarray(ch.w) - tl}
    flat, unravel = ravel_pytree(z0)
    y2 = jnp.asarray(y)
    f = lambda v: jnp.mean(jnp.sum((glu_apply(model, to_net(unravel(v)), m_new, x) - y2) ** 2, axis=1))
    start = float(f(flat))
    out = jax.jit(lambda v: minimise_flat(f, v, gtol=gtol, max_steps=max_steps))(flat)
    return ChannelLimit(ch, float(out.loss), start, float(out.grad_norm), result_name(out.status),
                        float(delta), to_net(unravel(out.x)))
