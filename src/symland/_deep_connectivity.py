"""One extra neuron per layer connects all permuted global minima of a deep network
(Şimşek et al. 2021, first claim of the abstract; math.md §5 for two layers).

A teacher of minimal widths r_1*, …, r_{L−1}* has r_1*!···r_{L−1}*! isolated
zero-loss minima, the permutations of its hidden neurons. The student has
one extra neuron z_ℓ in every hidden layer ℓ. Embedding the teacher with
z_ℓ *zero-type* (all outgoing weights exactly 0: column z_ℓ of W^(ℓ+1) is
zero, including the weight into z_{ℓ+1}) gives a zero-loss point, and so
does every point whose zero-type neurons carry any incoming vector: a neuron
with zero outgoing weights is invisible, in any layer, so moving its
incoming weights (a row of W^(ℓ) and b^(ℓ)_z) is loss-neutral.

A transposition (a b) of layer ℓ is realised at zero loss through z_ℓ
(`symland.silent_neuron_permutation`, the zero-type/copy-type moves of the
two-layer construction in math.md §5):
move z's incoming vector onto a's (z is now a copy of a); shift a's
outgoing column onto z (copies: the next layer's pre-activations do not
change; a is now zero-type); move a's incoming vector onto b's; shift b's
column onto a; move b's incoming vector onto z's (the old a); shift z's
column onto b; put z's incoming vector back. Every segment is straight
and changes either the incoming vector of a neuron with zero outgoing
weights or the split of outgoing weight between two identical neurons, so
the network function, and the loss, are constant along it.

Adjacent transpositions (a a+1) of every layer generate
S_{r_1*} × … × S_{r_{L−1}*}; composing their paths reaches every
permutation. `connect_permuted_minima` enumerates the group by
breadth-first search and builds, for every edge of the search tree, the
path from one permuted teacher to the next, certifying that it ends
exactly at the permuted teacher (`permute_layer`) and that the loss stays at
the global minimum along it.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from scipy.spatial.distance import pdist

from ._data import gaussian_teacher_data
from ._loss import loss_function
from ._network import MLP, Params
from ._symmetry import permute_layer
from ._valley import silent_neuron_permutation

DEFAULT_MAX_MINIMA = 5_000  # the pairwise distinctness check is O(n²)


def check_widths(widths) -> tuple[int, ...]:
    """`ValueError` unless `widths` = (n_0, r_1*, …, r_{L−1}*, n_L) has ≥ 1 hidden layer of positive integers."""
    try:
        w = tuple(int(v) for v in widths)
    except (TypeError, ValueError):
        raise ValueError(f"widths: expected integers like (2, 3, 3, 1), got {widths!r}") from None
    if len(w) < 3 or any(v < 1 for v in w) or any(float(a) != b for a, b in zip(widths, w)):
        raise ValueError(f"widths: need input, ≥ 1 hidden and output width, all positive integers; "
                         f"got {widths!r}")
    return w


def add_zero_type_neurons(params: Params, *, seed: int = 0, scale: float = 1.0) -> Params:
    """The teacher embedded in a network with one extra, zero-type neuron at the end of every hidden layer.

    The extra neuron z_ℓ gets incoming weights (row of W^(ℓ), bias) drawn
    from N(0, `scale`²) — they are free — and outgoing weights exactly 0
    (column of W^(ℓ+1)). The network computes the teacher's function.

    **Returns:** the student parameters, widths (n_0, r_1*+1, …, r_{L−1}*+1, n_L).
    """
    rng = np.random.default_rng(seed)
    L = len(params)
    out = []
    for ell, (W, b) in enumerate(params, start=1):
        W = np.asarray(W, dtype=np.float64)
        if ell > 1:  # one more input column: from z_{ℓ−1}, whose outgoing weights are 0
            W = np.hstack([W, np.zeros((W.shape[0], 1))])
        bb = None if b is None else np.asarray(b, dtype=np.float64)
        if ell < L:  # one more row: z_ℓ's free incoming vector
            row = scale * rng.normal(size=(1, W.shape[1]))
            if ell > 1:
                row[0, -1] = 0.0  # z_{ℓ−1}'s outgoing weights are all exactly 0, also into z_ℓ
            W = np.vstack([W, row])
            if bb is not None:
                bb = np.concatenate([bb, scale * rng.normal(size=1)])
        out.append((jnp.asarray(W), None if bb is None else jnp.asarray(bb)))
    return out


def permuted_embedding(student: Params, perms) -> Params:
    """`permute_layer` in every hidden layer ℓ by perms[ℓ−1] (a permutation of the r_ℓ* teacher
    neurons; the zero-type neuron, last, stays in place)."""
    out = list(student)
    for ell, p in enumerate(perms, start=1):
        out = permute_layer(out, ell, list(p) + [len(p)])
    return out


@dataclasses.dataclass(frozen=True)
class ConnectivityEdge:
    """One zero-loss path of the search tree: from the minimum `source` to `target` by the
    transposition (a a+1) of hidden layer `layer` (permutations as tuples per layer)."""

    source: tuple
    target: tuple
    layer: int
    transposition: tuple
    n_samples: int
    max_relative_loss: float
    max_output_deviation: float
    endpoint_error: float

    def to_dict(self) -> dict:
        return {"source": [list(p) for p in self.source], "target": [list(p) for p in self.target],
                "layer": self.layer, "transposition": list(self.transposition),
                "n_samples": self.n_samples, "max_relative_loss": self.max_relative_loss,
                "max_output_deviation": self.max_output_deviation, "endpoint_error": self.endpoint_error}


@dataclasses.dataclass(frozen=True)
class DeepConnectivity:
    """The result of `connect_permuted_minima`.

    **Fields:** `widths` (teacher), `student_widths`, `activation`,
    `n_expected` (∏ r_ℓ*!), `reached` (the permutations reached, one tuple of
    per-layer permutations each), `edges` (`ConnectivityEdge`s of the BFS
    tree), `teacher_loss` (at the embedding), `loss_scale` (mean y², the
    relative loss is L / mean y²), `tol`, `distinct` (every reached minimum
    differs from every other by more than `tol` in parameter space).
    """

    widths: tuple
    student_widths: tuple
    activation: str
    n_expected: int
    reached: tuple
    edges: tuple
    teacher_loss: float
    loss_scale: float
    tol: float
    distinct: bool

    @property
    def n_reached(self) -> int:
        return len(self.reached)

    @property
    def max_relative_loss(self) -> float:
        return max((e.max_relative_loss for e in self.edges), default=0.0)

    @property
    def max_endpoint_error(self) -> float:
        return max((e.endpoint_error for e in self.edges), default=0.0)

    @property
    def all_connected(self) -> bool:
        """Every minimum reached, distinct, every path at the global minimum to `tol`, exact endpoints."""
        return (self.n_reached == self.n_expected and self.distinct and self.max_relative_loss <= self.tol
                and self.max_endpoint_error <= self.tol)

    def checks(self) -> dict:
        return {"all_minima_reached": self.n_reached == self.n_expected, "minima_distinct": self.distinct,
                "loss_at_global_minimum": self.max_relative_loss <= self.tol,
                "endpoints_exact": self.max_endpoint_error <= self.tol}

    def to_dict(self) -> dict:
        return {"widths": list(self.widths), "student_widths": list(self.student_widths),
                "activation": self.activation, "n_expected": self.n_expected, "n_reached": self.n_reached,
                "n_edges": len(self.edges), "teacher_loss": self.teacher_loss, "loss_scale": self.loss_scale,
                "tol": self.tol, "max_relative_loss": self.max_relative_loss,
                "max_endpoint_error": self.max_endpoint_error, "all_connected": self.all_connected,
                "checks": self.checks(), "edges": [e.to_dict() for e in self.edges]}


def connect_permuted_minima(widths=(2, 3, 3, 1), *, activation: str = "softplus", n_samples: int = 200,
                            seed: int = 0, samples_per_move: int = 10, tol: float = 1e-12,
                            max_minima: int = DEFAULT_MAX_MINIMA, progress=None) -> DeepConnectivity:
    """Connect all r_1*!···r_{L−1}*! permuted teacher minima at zero loss with one extra neuron per layer.

    A random teacher `MLP(widths, activation)` (with biases; `seed`)
    labels `n_samples` Gaussian inputs; the student has one extra
    zero-type neuron per hidden layer (`add_zero_type_neurons`). Breadth-first
    search over the permutations generated by the adjacent transpositions
    of every layer; for each new permutation the path from its parent is
    built by `silent_neuron_permutation` (7 straight moves through the
    zero-type neuron), the loss evaluated at `samples_per_move` points per
    move and the end point compared with `permuted_embedding`.

    **Arguments:** `widths` = (n_0, r_1*, …, r_{L−1}*, n_L); `activation`
    (smooth, e.g. softplus, tanh, erf); `n_samples`; `seed`;
    `samples_per_move`; `tol` (relative loss L/mean(y²) and endpoint error
    allowed); `max_minima` (refuse larger groups); `progress` (callable
    wrapping the BFS iterator, e.g. a tqdm factory taking `total`).

    **Returns:** a `DeepConnectivity`; `.all_connected` is the claim.

    Example:
        >>> from symland import connect_permuted_minima
        >>> r = connect_permuted_minima((2, 2, 2, 1), n_samples=50, samples_per_move=3)
        >>> r.n_reached, r.n_expected, r.all_connected
        (4, 4, True)
    """
    w = check_widths(widths)
    hidden = w[1:-1]
    n_expected = math.prod(math.factorial(r) for r in hidden)
    if n_expected > max_minima:
        raise ValueError(f"widths: {n_expected} permuted minima exceed max_minima={max_minima}")
    if isinstance(samples_per_move, bool) or not isinstance(samples_per_move, int) or samples_per_move < 1:
        raise ValueError(f"samples_per_move: must be a positive integer, got {samples_per_move!r}")
    teacher_model = MLP(w, activation)
    teacher = teacher_model.init(jax.random.PRNGKey(seed))
    x, y = gaussian_teacher_data(teacher_model, teacher, n_samples, seed=seed)
    student_widths = (w[0],) + tuple(r + 1 for r in hidden) + (w[-1],)
    student_model = MLP(student_widths, activation)
    student = add_zero_type_neurons(teacher, seed=seed + 1)
    student_model.check_params(student)
    L = loss_function(student_model, x, y)
    scale = float(jnp.mean(y ** 2))
    unravel = ravel_pytree(student)[1]

    @jax.jit
    def along(points):  # loss and max |f − y| at every sample of a path, compiled once
        def one(flat):
            p = unravel(flat)
            return L(p), jnp.max(jnp.abs(student_model.apply(p, x) - y))

        loss, dev = jax.vmap(one)(points)
        return jnp.max(jnp.abs(loss)), jnp.max(dev)
    teacher_loss = float(L(student))
    identity = tuple(tuple(range(r)) for r in hidden)
    flat = {identity: np.asarray(ravel_pytree(student)[0])}
    parents = deque([identity])
    edges = []
    bar = progress(total=n_expected) if progress is not None else None
    if bar is not None:
        bar.update(1)
    while parents:
        state = parents.popleft()
        params = permuted_embedding(student, state)
        for ell, r in enumerate(hidden, start=1):
            for a in range(r - 1):
                new = [list(p) for p in state]
                new[ell - 1][a], new[ell - 1][a + 1] = new[ell - 1][a + 1], new[ell - 1][a]
                new = tuple(tuple(p) for p in new)
                if new in flat:
                    continue
                swap = list(range(r + 1))
                swap[a], swap[a + 1] = a + 1, a
                path = silent_neuron_permutation(params, ell, swap, silent=r,
                                                 samples_per_move=samples_per_move)
                expected = np.asarray(ravel_pytree(permuted_embedding(student, new))[0])
                end_err = float(np.max(np.abs(path.points[-1] - expected)))
                loss, dev = along(jnp.asarray(path.points))
                edges.append(ConnectivityEdge(state, new, ell, (a, a + 1), path.n_samples,
                                              float(np.max(loss)) / scale, float(dev) / math.sqrt(scale),
                                              end_err))
                flat[new] = expected
                parents.append(new)
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    pts = np.array(list(flat.values()))
    dmin = float(np.min(pdist(pts, "chebyshev"))) if len(pts) > 1 else np.inf
    return DeepConnectivity(w, student_widths, activation, n_expected, tuple(flat), tuple(edges),
                            teacher_loss, scale, float(tol), bool(dmin > tol))
