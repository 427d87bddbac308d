"""Higher-order permutation points by embedding a narrower network (Brea et al. 2019, §4.3).

A K-th order permutation point at layer k of a network with n_k neurons there
simulates a network with n_k − K neurons: every neuron of the wide network
copies the incoming vector ϑ of one neuron of the narrow network (a surjection
of the n_k slots onto the n_k − K narrow neurons), and the outgoing weights of
each group of copies sum to the narrow neuron's outgoing weights (§4.3,
App. C–D). The network function is that of the narrow network.
"""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from ._network import Params
from ._symmetry import check_hidden_layer


def check_assignment(assignment, n_small: int) -> np.ndarray:
    """`ValueError` unless `assignment` is a surjection onto 0…n_small−1; returns it as ints."""
    a = np.asarray(assignment)
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"assignment: expected a 1-D sequence of integers, got {assignment!r}")
    if np.any(a < 0) or np.any(a >= n_small):
        raise ValueError(f"assignment: values must lie in 0…{n_small - 1}, got {a.tolist()}")
    missing = sorted(set(range(n_small)) - set(a.tolist()))
    if missing:
        raise ValueError(
            f"assignment: {a.tolist()} is not a surjection onto the {n_small} neurons of the "
            f"narrow layer; neurons {missing} get no copy"
        )
    return a.astype(int)


def equal_output_split(assignment) -> np.ndarray:
    """The default split: every copy of a neuron with s copies gets 1/s of its outgoing weight."""
    a = np.asarray(assignment)
    counts = np.bincount(a)
    return 1.0 / counts[a]


def neuron_groups_of(assignment) -> list[list[int]]:
    """The groups of slots that copy the same narrow neuron, ordered by narrow neuron."""
    a = np.asarray(assignment)
    return [np.flatnonzero(a == j).tolist() for j in range(int(a.max()) + 1)]


def embed_in_wider(params_small: Params, layer: int, assignment, output_split=None, *,
                   atol: float = 1e-12) -> Params:
    """A K-th order permutation point at layer k from a network with K fewer neurons there.

    Brea et al. 2019, §4.3 and App. D: wide neuron j gets the incoming vector
    ϑ_{assignment[j]} of the narrow network and the outgoing weights
    `output_split[j]` · W^(k+1)_{:, assignment[j]}; the splits of each group sum
    to 1, so each group's outgoing weights sum to the narrow neuron's and the
    network function is unchanged. K = len(assignment) − n_k(small).

    **Arguments:**
    - `params_small`: the narrow network's parameters.
    - `layer`: the hidden layer k (paper numbering).
    - `assignment`: length n_k, a surjection onto 0…n_k−K−1.
    - `output_split`: length n_k, any reals summing to 1 within each group
      (default: equal split 1/s for a group of s copies).
    - `atol`: tolerance on the group sums.

    **Returns:** the wide network's parameters (list of `(W, b)`).
    """
    n_small = check_hidden_layer(params_small, layer)
    a = check_assignment(assignment, n_small)
    if output_split is None:
        split = equal_output_split(a)
    else:
        split = np.asarray(output_split, dtype=np.float64)
        if split.shape != a.shape or not np.all(np.isfinite(split)):
            raise ValueError(
                f"output_split: expected {a.size} finite numbers, one per slot, got {output_split!r}")
        sums = np.bincount(a, weights=split, minlength=n_small)
        bad = np.flatnonzero(np.abs(sums - 1.0) > atol)
        if bad.size:
            j = int(bad[0])
            raise ValueError(
                f"output_split: the copies of narrow neuron {j} (slots "
                f"{np.flatnonzero(a == j).tolist()}) get fractions summing to {sums[j]!r}, not 1, "
                "so their outgoing weights do not sum to the original weight")
    idx = jnp.asarray(a)
    out = list(params_small)
    W, b = params_small[layer - 1]
    out[layer - 1] = (W[idx], None if b is None else b[idx])
    W2, b2 = params_small[layer]
    out[layer] = (W2[:, idx] * jnp.asarray(split)[None, :], b2)
    return out
