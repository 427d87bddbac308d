"""Permutation symmetry of hidden neurons (Brea et al. 2019, eq. 2).

Permuting the neurons of hidden layer k permutes the rows of W^(k) and b^(k)
and the columns of W^(k+1); the network function does not change. Layers are
numbered as in the paper (hidden layers k = 1…d−1); neurons are 0-based.
"""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp
from scipy.optimize import linear_sum_assignment

from ._network import Params


def check_hidden_layer(params: Params, layer) -> int:
    """`ValueError` unless `layer` is a hidden layer k ∈ {1, …, d−1}; returns its width."""
    d = len(params)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= layer <= d - 1:
        raise ValueError(
            f"layer: {layer!r} is not a hidden layer; hidden layers are 1…{d - 1} (paper numbering)"
        )
    return int(jnp.shape(params[layer - 1][0])[0])


def check_neuron_index(i, n: int, name: str = "m", layer=None) -> int:
    """A 0-based neuron index in 0…n−1 as an int.

    **Arguments:** `i` (the index), `n` (the layer's width), `name` (the
    argument to blame), `layer` (for the message).

    **Returns:** `int(i)`. `ValueError` naming `name` for a non-integer (a
    float, even 1.0, a bool, a string) or an index out of range.
    """
    where = "" if layer is None else f" for layer {layer}"
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise ValueError(f"{name}: neuron index must be an integer, got {i!r}")
    if not 0 <= i < n:
        raise ValueError(f"{name}: neuron index {i!r} out of range 0…{n - 1}{where}")
    return int(i)


def check_neuron_pair(params: Params, layer, l, m) -> None:
    """`ValueError` unless l ≠ m are valid 0-based neuron indices of hidden layer `layer`."""
    n = check_hidden_layer(params, layer)
    for name, i in (("l", l), ("m", m)):
        check_neuron_index(i, n, name, layer)
    if l == m:
        raise ValueError(f"l, m: need two different neurons, got l == m == {l}")


def _check_indices(values, name: str, n: int) -> np.ndarray:
    """Integer neuron indices in 0…n−1 as an int array; `ValueError` naming `name` otherwise.

    Floats (even 1.0), booleans and out-of-range values are refused rather
    than truncated.
    """
    a = np.asarray(values)
    if a.ndim != 1 or (a.size and (a.dtype == bool or not np.issubdtype(a.dtype, np.integer))):
        raise ValueError(f"{name}: neuron indices must be integers, got {values!r}")
    if a.size and (a.min() < 0 or a.max() >= n):
        raise ValueError(f"{name}: indices must lie in 0…{n - 1}, got {a.tolist()}")
    return a.astype(int)


def permute_layer(params: Params, layer: int, perm) -> Params:
    """Apply a permutation σ to hidden layer `layer`: new neuron i is old neuron perm[i].

    Rows of W^(k), b^(k) and columns of W^(k+1) are permuted (eq. 2), so
    f(·; θ) is unchanged.
    """
    n = check_hidden_layer(params, layer)
    perm_np = _check_indices(perm, "perm", n)
    if perm_np.shape != (n,) or sorted(perm_np.tolist()) != list(range(n)):
        raise ValueError(f"perm: {perm!r} is not a permutation of 0…{n - 1}")
    perm_j = jnp.asarray(perm_np)
    out = list(params)
    W, b = params[layer - 1]
    out[layer - 1] = (W[perm_j], None if b is None else b[perm_j])
    W2, b2 = params[layer]
    out[layer] = (W2[:, perm_j], b2)
    return out


def swap_neurons(params: Params, layer: int, l: int, m: int) -> Params:
    """σ^(k)_{l⇔m}(θ): exchange neurons l and m of hidden layer `layer`."""
    check_neuron_pair(params, layer, l, m)
    n = check_hidden_layer(params, layer)
    perm = np.arange(n)
    perm[[l, m]] = [m, l]
    return permute_layer(params, layer, perm)


def rescale_neurons(params: Params, layer: int, neurons, c: float) -> Params:
    """ϑ_j^(k) → c·ϑ_j^(k) and W^(k+1)_{:,j} → W^(k+1)_{:,j}/c for j in `neurons`, c > 0.

    The positive-homogeneity symmetry of ReLU networks (relu(c z) = c relu(z)):
    f is unchanged for `relu` and changed for every other activation. It makes
    the paper's fixed-δ problem (§4.1) degenerate for ReLU: rescaling the pair
    l, m of a minimum θ* by c = δ/δ₀ gives a point at distance δ with the same
    loss, so the constrained minimum is L(θ*) at every δ > 0 and the output
    weights grow as δ₀/δ (see README, "Corrections to the sources").
    """
    n = check_hidden_layer(params, layer)
    if isinstance(c, bool) or not isinstance(c, (int, float, np.floating)) or not c > 0:
        raise ValueError(f"c: the scale must be a positive number, got {c!r}")
    idx = _check_indices(list(neurons), "neurons", n)
    (W, b), (W_next, b_next) = params[layer - 1], params[layer]
    out = list(params)
    out[layer - 1] = (W.at[idx].multiply(c), None if b is None else b.at[idx].multiply(c))
    out[layer] = (W_next.at[:, idx].divide(c), b_next)
    return out


def neuron_log_scales(params: Params, layers=None):
    """θ in rescaling coordinates: (θ̂, σ) with σ^(k)_j = log ‖ϑ_j^(k)‖ and those hidden neurons of unit norm.

    Layer by layer, from k = 1 up, each neuron j of hidden layer k in
    `layers` (default: every hidden layer; σ has one entry per layer in it) is
    rescaled (`rescale_neurons`) by c = 1/‖ϑ_j^(k)‖ (ϑ_j^(k) = (W^(k)_{j,:},
    b^(k)_j), taken after the layers below were normalised), so
    ‖ϑ̂_j^(k)‖ = 1, and σ^(k)_j = log ‖ϑ_j^(k)‖. `from_neuron_log_scales`
    inverts it exactly. A rescaling orbit ϑ_j → cϑ_j, W^(k+1)_{:,j} →
    W^(k+1)_{:,j}/c, a hyperbola in θ, is the straight line σ^(k)_j + log c
    here, with θ̂ fixed. Along the Fig. 3 path the constrained minimum runs off
    along such an orbit of the layer below the pair (`upstream_scale`,
    docs/mnist.md), so the matrix-free path's trust region takes its steps
    linearly in these coordinates (`path_problem`'s `retract`). Needs
    ϑ_j ≠ 0 (a zero neuron gets σ = −∞).

    Example:
        >>> import jax, symland as s
        >>> p = s.MLP((3, 4, 2, 1), "softplus").init(jax.random.PRNGKey(0))
        >>> hat, sigma = s.neuron_log_scales(p)
        >>> [t.shape for t in sigma]
        [(4,), (2,)]
        >>> q = s.from_neuron_log_scales(hat, sigma)
        >>> max(float(abs(a - b).max()) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q))) < 1e-12
        True
        >>> hat2, sigma2 = s.neuron_log_scales(s.rescale_neurons(p, 1, [3], 5.0))
        >>> import numpy as np; d = np.asarray(sigma2[0] - sigma[0]); bool(np.allclose(d, [0, 0, 0, np.log(5.0)]))
        True
    """
    out = [tuple(t) for t in params]
    layers = range(1, len(out)) if layers is None else layers
    sigma = []
    for k in sorted(layers):
        norm = jnp.linalg.norm(neuron_vectors(out, k), axis=1)
        _scale_layer(out, k, 1.0 / norm)
        sigma.append(jnp.log(norm))
    return out, sigma


def from_neuron_log_scales(hat: Params, sigma, layers=None) -> Params:
    """θ from its rescaling coordinates (θ̂, σ), the inverse of `neuron_log_scales(θ, layers)`."""
    out = [tuple(t) for t in hat]
    layers = sorted(range(1, len(out)) if layers is None else layers)
    for k, sig in reversed(list(zip(layers, sigma))):
        _scale_layer(out, k, jnp.exp(sig))
    return out


def _scale_layer(out: list, layer: int, c) -> None:
    """In place: neuron j of hidden layer `layer` scaled by c_j and its output weights by 1/c_j
    (`rescale_neurons` with one c per neuron)."""
    (W, b), (W_next, b_next) = out[layer - 1], out[layer]
    out[layer - 1] = (W * c[:, None], None if b is None else b * c)
    out[layer] = (W_next / c[None, :], b_next)


def neuron_vector(params: Params, layer: int, m: int):
    """ϑ_m^(k) = (W^(k)_{m,:}, b^(k)_m), the incoming parameter vector of neuron m."""
    check_neuron_index(m, check_hidden_layer(params, layer), "m", layer)
    W, b = params[layer - 1]
    return W[m] if b is None else jnp.concatenate([W[m], b[m:m + 1]])


def neuron_vectors(params: Params, layer: int):
    """All ϑ_m^(k) of hidden layer `layer` as rows of an (n_k, n_{k−1}+1) array."""
    check_hidden_layer(params, layer)
    W, b = params[layer - 1]
    return W if b is None else jnp.concatenate([W, b[:, None]], axis=1)


def neuron_distance(params: Params, layer: int, l: int, m: int):
    """d^(k)_{l,m}(θ) = ‖ϑ_l^(k) − ϑ_m^(k)‖₂ (Brea et al. 2019, §4.1)."""
    check_neuron_pair(params, layer, l, m)
    return jnp.linalg.norm(neuron_vector(params, layer, l) - neuron_vector(params, layer, m))


def canonical_permutation(params: Params, layer: int) -> np.ndarray:
    """The permutation that sorts layer `layer` lexicographically by (ϑ_m, W^(k+1)_{:,m})."""
    check_hidden_layer(params, layer)
    keys = np.concatenate(
        [np.asarray(neuron_vectors(params, layer)), np.asarray(params[layer][0]).T], axis=1
    )
    return np.lexsort(keys.T[::-1])


def canonical_order(params: Params) -> Params:
    """θ with every hidden layer in canonical order, layer 1 first.

    Two points of one permutation set P(θ) (eq. 2) with distinct neurons map
    to the same canonical point.
    """
    out = list(params)
    for layer in range(1, len(params)):
        out = permute_layer(out, layer, canonical_permutation(out, layer))
    return out


def permutation_between(params_a: Params, params_b: Params, *, atol: float = 1e-8):
    """The permutations σ^(1…d−1) with σ(θ_a) = θ_b within `atol`, or None.

    Layer by layer, neurons are matched by a Hungarian assignment on the
    distance of their incoming vectors (after the previous layer's matching)
    and outgoing weights; the result is then checked entry by entry.

    **Returns:** a list of index arrays, `perm[k-1][i]` = the neuron of θ_a that
    sits at position i in θ_b, or `None` when no permutation matches.
    """
    if len(params_a) != len(params_b):
        raise ValueError("params_b: depth differs from params_a")
    for (Wa, _), (Wb, _) in zip(params_a, params_b):
        if jnp.shape(Wa) != jnp.shape(Wb):
            raise ValueError(f"params_b: shape {jnp.shape(Wb)} differs from {jnp.shape(Wa)}")
    perms, a = [], list(params_a)
    for layer in range(1, len(params_a)):
        va = np.concatenate([np.asarray(neuron_vectors(a, layer)), np.asarray(a[layer][0]).T], 1)
        vb = np.concatenate(
            [np.asarray(neuron_vectors(params_b, layer)), np.asarray(params_b[layer][0]).T], 1
        )
        cost = np.linalg.norm(vb[:, None, :] - va[None, :, :], axis=-1)
        _, cols = linear_sum_assignment(cost)
        perms.append(cols)
        a = permute_layer(a, layer, cols)
    for (Wa, ba), (Wb, bb) in zip(a, params_b):
        if not np.allclose(Wa, Wb, rtol=0, atol=atol):
            return None
        if (ba is None) != (bb is None) or (ba is not None and not np.allclose(ba, bb, rtol=0, atol=atol)):
            return None
    return perms


def are_permutation_equivalent(params_a: Params, params_b: Params, *, atol: float = 1e-8) -> bool:
    """Whether θ_b ∈ P(θ_a) (eq. 2) up to `atol` in every parameter."""
    return permutation_between(params_a, params_b, atol=atol) is not None
