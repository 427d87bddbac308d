"""The global-minimum manifold of over-parameterised two-layer networks (Şimşek et al. 2021).

f(x) = Σ_{j=1}^m a_j σ(w_j·x) (no biases) learns a teacher of minimal width r*
with m = r* + h neurons. A point of the zero-loss manifold gives each
student neuron a type (math.md §5):

- zero-type: a_j = 0 (exactly), w_j free;
- copy-type: w_j = w*_i, and the a's of the copies of teacher neuron i sum to a*_i;

every teacher neuron gets at least one copy. Each assignment of types is an
affine subspace of dimension

    dim = j·d + Σ_i (s_i − 1)·n_out,

(`symland.counting.subspace_dimension`, the one home of this formula and of
`ZERO_TYPE`) with j zero-type neurons, d the input dimension (d + 1 if the hidden layer
had a bias: the incoming vector includes it), s_i the copies of teacher
neuron i and n_out the output dimension (1 in the paper). This is the
dimension of the subspace, not of the Hessian's null space: at zero loss
∇²L = (2/T) JᵀJ, and J also vanishes on the (s_i − 1)·d directions
Σ_j a_j δw_j = 0 that move copies apart, along which the loss grows like
t⁴. Generically nullity = j·d + Σ_i (s_i − 1)(n_out + d) (checked in the
tests); the subspace itself is checked by sampling it at finite distance.
"""

from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._embedding import check_assignment
from ._network import Params
from ._plateau import plateau_directions
from .counting import ZERO_TYPE


def _check_two_layer(teacher: Params):
    if len(teacher) != 2:
        raise ValueError("teacher: expected a two-layer network [(W1, b1), (W2, b2)]")
    (W1, b1), (W2, b2) = teacher
    if b1 is not None or b2 is not None:
        raise ValueError("teacher: expected a network without biases (MLP(..., bias=False))")
    return W1, W2


def overparameterised_minimum(teacher: Params, assignment, *, output_split=None,
                              zero_vectors=None, seed: int = 0) -> Params:
    """A point of the global-minimum manifold of the width-m student (Şimşek et al. 2021).

    **Arguments:**
    - `teacher`: a two-layer network without biases, width r*.
    - `assignment`: length m; entry i ∈ 0…r*−1 makes the neuron a copy of
      teacher neuron i, `ZERO_TYPE` (−1) a zero-type neuron. Every teacher
      neuron needs at least one copy.
    - `output_split`: fractions of a*_i per copy (sum 1 per teacher neuron;
      default equal); ignored for zero-type neurons.
    - `zero_vectors`: the free incoming vectors of the zero-type neurons
      (default: N(0, I) with `seed`).

    **Returns:** the student's parameters `[(W1, None), (W2, None)]`.
    """
    W1, W2 = _check_two_layer(teacher)
    r, d = W1.shape
    a = np.asarray(assignment)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer) or np.any(a < ZERO_TYPE):
        raise ValueError(f"assignment: expected integers in −1…{r - 1}, got {assignment!r}")
    copies = np.flatnonzero(a != ZERO_TYPE)
    check_assignment(a[copies], r)
    zeros = np.flatnonzero(a == ZERO_TYPE)
    split = np.zeros(a.size)
    if output_split is None:
        counts = np.bincount(a[copies], minlength=r)
        split[copies] = 1.0 / counts[a[copies]]
    else:
        split = np.asarray(output_split, dtype=np.float64)
        if split.shape != a.shape:
            raise ValueError(f"output_split: expected {a.size} numbers, got {output_split!r}")
        sums = np.bincount(a[copies], weights=split[copies], minlength=r)
        if np.any(np.abs(sums - 1.0) > 1e-12):
            raise ValueError(f"output_split: the copies of each teacher neuron must sum to 1, got {sums}")
    if zero_vectors is None:
        Z = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (zeros.size, d)))
    else:
        Z = np.asarray(zero_vectors, dtype=np.float64)
        if Z.shape != (zeros.size, d):
            raise ValueError(f"zero_vectors: expected shape {(zeros.size, d)}, got {Z.shape}")
    Wn = np.zeros((a.size, d))
    An = np.zeros((W2.shape[0], a.size))
    Wn[copies] = np.asarray(W1)[a[copies]]
    An[:, copies] = np.asarray(W2)[:, a[copies]] * split[copies]
    Wn[zeros] = Z
    An[:, zeros] = 0.0
    return [(jnp.asarray(Wn), None), (jnp.asarray(An), None)]


def minimum_subspace_directions(params: Params, assignment) -> np.ndarray:
    """A basis of the affine subspace through `params`, rows in `ravel_pytree` order.

    Zero-type neuron j: the d unit vectors of w_j. Copies (j_0, j_1, …) of a
    teacher neuron: for each j_i (i ≥ 1) and output n, +1 on a_{n,j_0} and −1
    on a_{n,j_i}, the equal-loss plane of the permutation point that the
    copies form (`plateau_directions`, Brea et al. 2019, Prop. 2). There are
    `subspace_dimension(assignment, d=d, n_out=n_out)` rows.
    """
    a = np.asarray(assignment)
    (W1, _), (W2, _) = params
    rows = [np.zeros((0, W1.size + W2.size))]
    for j in np.flatnonzero(a == ZERO_TYPE):
        for c in range(W1.shape[1]):
            unit = [(jnp.zeros_like(W1).at[j, c].set(1.0), None), (jnp.zeros_like(W2), None)]
            rows.append(np.asarray(ravel_pytree(unit)[0])[None])
    groups = [np.flatnonzero(a == i).tolist() for i in np.unique(a[a != ZERO_TYPE])]
    return np.vstack([*rows, plateau_directions(params, 1, groups)])
