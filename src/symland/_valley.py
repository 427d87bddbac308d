"""Equal-loss valleys: every permutation of a layer at constant loss (Brea et al. 2019, §4.2 (ii)).

At a permutation point θ_{l⇔m} neurons l and m share ϑ and outgoing weights.
The proof sketch of §4.2 (ii) chains six continuous moves:

1. shift the outgoing weight of m onto l (the sum W_{:,l} + W_{:,m} fixed),
   so m becomes *silent* (outgoing weights exactly 0);
2. move the silent neuron's incoming vector onto that of another neuron s;
3. shift the outgoing weight of s onto the silent neuron: s is silent now;
4. shrink a silent incoming vector to zero;
5. grow it to a new target (here ϑ_l);
6. share outgoing weight again.

Moves 2–3 relocate one neuron's content (ϑ, outgoing weights) into the
silent slot, and the silent slot moves to where that content was. Any
permutation is a product of such relocations: this module sorts the layer
with one free slot (the "parking" algorithm: while the free slot is not at
its target, fill it with the content that belongs there; otherwise park a
misplaced content in it), which is the paper's decomposition into
transpositions with m as the exchange slot. A silent neuron is invisible
only while its outgoing weights are exactly zero, so they are assigned
0.0, never reached by arithmetic, and coordinates that a move does not
change are copied, not interpolated.

`silent_neuron_permutation` runs moves 2–3 alone from a point that already
has a silent neuron (e.g. a zero-type neuron of an over-parameterised
two-layer network, Şimşek et al. 2021): the zero-loss path between
permuted global minima.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._network import Params
from ._plateau import check_permutation_point, identical_neuron_groups
from ._symmetry import check_hidden_layer


@dataclasses.dataclass(frozen=True)
class ValleyPath:
    """A sampled piecewise-linear path of equal loss.

    **Fields:**
    - `points`: (S, P) flat parameter vectors (`ravel_pytree` order), `points[0]`
      the start, `points[-1]` the end.
    - `loss`: (S,) loss at every sample, or None without `loss_fn`.
    - `moves`: `[(label, first, last), …]`, the sample range of every move.
    - `layer`, `perm`: the layer k and the permutation realised (new neuron
      i = old neuron `perm[i]`, as `permute_layer`).
    - `unravel`: flat vector → parameter pytree.
    """

    points: np.ndarray
    loss: np.ndarray | None
    moves: list
    layer: int
    perm: np.ndarray
    unravel: Callable

    @property
    def n_samples(self) -> int:
        return int(self.points.shape[0])

    def params(self, i: int) -> Params:
        """The parameters of sample `i`."""
        return self.unravel(jnp.asarray(self.points[i]))

    @property
    def start(self) -> Params:
        return self.params(0)

    @property
    def end(self) -> Params:
        return self.params(-1)

    @property
    def max_rel_loss_change(self) -> float:
        """max_s |L(γ_s) − L(γ_0)| / |L(γ_0)| (absolute if L(γ_0) = 0)."""
        if self.loss is None:
            raise ValueError("loss: the path was built without loss_fn")
        ref = abs(float(self.loss[0]))
        dev = float(np.max(np.abs(self.loss - self.loss[0])))
        return dev / ref if ref > 0 else dev

    def incoming_vectors(self) -> np.ndarray:
        """ϑ of every neuron of the layer along the path, shape (S, n_k, n_{k−1}[+1])."""
        trees = jax.vmap(self.unravel)(jnp.asarray(self.points))
        W, b = trees[self.layer - 1]
        return np.asarray(W if b is None else jnp.concatenate([W, b[..., None]], axis=-1))

    def to_dict(self) -> dict:
        out = {"layer": self.layer, "perm": [int(i) for i in self.perm],
               "n_samples": self.n_samples,
               "moves": [{"move": lab, "first": a, "last": b} for lab, a, b in self.moves]}
        if self.loss is not None:
            out.update(loss_start=float(self.loss[0]), loss_min=float(np.min(self.loss)),
                       loss_max=float(np.max(self.loss)),
                       max_rel_loss_change=self.max_rel_loss_change)
        return out


def check_permutation(perm, n: int) -> np.ndarray:
    """`perm` as an int array, or `ValueError` naming `perm` unless it permutes 0…n−1."""
    p = np.asarray(perm)
    if (p.shape != (n,) or not np.issubdtype(p.dtype, np.integer)
            or sorted(p.tolist()) != list(range(n))):
        raise ValueError(f"perm: {perm!r} is not a permutation of 0…{n - 1}")
    return p.astype(int)


class _Keyframes:
    """The layer's state (incoming W, b and outgoing A) and the list of keyframes."""

    def __init__(self, params, layer):
        self.params, self.layer = list(params), layer
        W, b = params[layer - 1]
        self.W = np.array(W, dtype=np.float64)
        self.b = None if b is None else np.array(b, dtype=np.float64)
        self.A = np.array(params[layer][0], dtype=np.float64)
        self.frames, self.labels = [self.flat()], []

    def flat(self):
        out = list(self.params)
        out[self.layer - 1] = (jnp.asarray(self.W), None if self.b is None else jnp.asarray(self.b))
        out[self.layer] = (jnp.asarray(self.A), self.params[self.layer][1])
        return np.asarray(ravel_pytree(out)[0])

    def theta(self, i):
        return (self.W[i].copy(), None if self.b is None else self.b[i].copy())

    def set_theta(self, i, th):
        self.W[i] = th[0]
        if self.b is not None:
            self.b[i] = th[1]

    def push(self, label):
        self.frames.append(self.flat())
        self.labels.append(label)

    # the moves --------------------------------------------------------------
    def move_incoming(self, i, th, label):
        self.set_theta(i, th)
        self.push(label)

    def relocate(self, s, blank):
        """Moves 2 and 3: content of slot s into the silent slot `blank`."""
        self.move_incoming(blank, self.theta(s),
                           f"2: move silent neuron {blank}'s input vector onto neuron {s}'s")
        self.A[:, blank] = self.A[:, s]
        self.A[:, s] = 0.0
        self.push(f"3: shift output weight from neuron {s} to neuron {blank}")


def _parking_moves(content: list, target: list) -> list[tuple[int, int]]:
    """Relocations (s, blank) that turn `content` into `target` (one `None` = silent slot)."""
    content, moves = list(content), []
    while content != target:
        blank = content.index(None)
        if target[blank] is not None:
            s = content.index(target[blank])
        else:
            s = next(i for i, c in enumerate(content) if c is not None and c != target[i])
        moves.append((s, blank))
        content[blank], content[s] = content[s], None
    return moves


def _sample(kf: _Keyframes, samples_per_move: int, loss_fn, unravel, layer, perm) -> ValleyPath:
    pts, moves = [kf.frames[0][None]], []
    t = np.linspace(0.0, 1.0, samples_per_move + 1)[1:, None]
    for (a, b), label in zip(zip(kf.frames[:-1], kf.frames[1:]), kf.labels):
        seg = np.where(a == b, a, (1.0 - t) * a + t * b)
        seg[-1] = b
        first = sum(len(p) for p in pts)
        pts.append(seg)
        moves.append((label, first - 1, first + samples_per_move - 1))
    points = np.concatenate(pts)
    loss = None
    if loss_fn is not None:
        f = jax.jit(jax.vmap(lambda x: loss_fn(unravel(x))))
        loss = np.concatenate([np.asarray(f(jnp.asarray(points[i:i + 512])))
                               for i in range(0, len(points), 512)])
    return ValleyPath(points, loss, moves, layer, perm, unravel)


def _check_samples(samples_per_move):
    if isinstance(samples_per_move, bool) or not isinstance(samples_per_move, int) or samples_per_move < 1:
        raise ValueError(f"samples_per_move: must be a positive integer, got {samples_per_move!r}")


def equal_loss_permutation(params: Params, layer: int, perm, *, l: int | None = None,
                           m: int | None = None, loss_fn=None, samples_per_move: int = 100,
                           atol: float = 1e-8, gtol: float = 1e-8) -> ValleyPath:
    """An equal-loss path from a permutation point θ_{l⇔m} to σ(θ_{l⇔m}) for any σ (§4.2 (ii)).

    **Arguments:**
    - `params`: a permutation point of layer k (ϑ_l = ϑ_m, equal outgoing weights).
    - `layer`: the hidden layer k.
    - `perm`: any permutation of layer k (new neuron i = old `perm[i]`).
    - `l`, `m`: the merged pair; default: the first pair of identical neurons.
      m is the neuron that is made silent.
    - `loss_fn`: θ ↦ L(θ); when given the gradient must vanish at `params`
      (within `gtol`·max(1,|L|)) and the loss is evaluated along the path.
    - `samples_per_move`: samples per move (each move is a straight segment).
    - `atol`: tolerance for "identical" incoming vectors and outgoing weights.

    **Returns:** a `ValleyPath` whose last point is `permute_layer(params, layer, perm)`
    (up to the `atol` mismatch of the pair).
    """
    n = check_hidden_layer(params, layer)
    p = check_permutation(perm, n)
    _check_samples(samples_per_move)
    if l is None or m is None:
        groups = identical_neuron_groups(params, layer, atol=atol)
        if not groups:
            raise ValueError(
                f"params: not a permutation point of layer {layer}: incoming vectors differ "
                "(no two neurons share ϑ)")
        l, m = groups[0][0], groups[0][1]
    check_permutation_point(params, layer, l, m, loss_fn=loss_fn, atol=atol, gtol=gtol)
    _, unravel = ravel_pytree(params)
    kf = _Keyframes(params, layer)
    # move 1: m silent
    kf.A[:, l] = kf.A[:, l] + kf.A[:, m]
    kf.A[:, m] = 0.0
    kf.push(f"1: shift output weight from neuron {m} onto neuron {l}")
    content = [i for i in range(n)]
    content[m] = None
    inv = np.argsort(p)
    pl, qm = int(inv[l]), int(inv[m])
    target = [int(p[i]) for i in range(n)]
    if pl == l or qm == l:  # content l already sits in one of its two final slots
        keep, free = (l, qm if pl == l else pl)
    else:
        keep, free = pl, qm
    target[keep], target[free] = l, None
    for s, blank in _parking_moves(content, target):
        kf.relocate(s, blank)
    # moves 4–6: the silent slot becomes the second copy of ϑ_l
    th_l = kf.theta(keep)
    kf.move_incoming(free, (np.zeros_like(th_l[0]), None if th_l[1] is None else 0.0),
                     f"4: shrink silent neuron {free}'s input vector to zero")
    kf.move_incoming(free, th_l, f"5: grow silent neuron {free}'s input vector to ϑ_{l}")
    total = kf.A[:, keep].copy()
    kf.A[:, keep] = 0.5 * total
    kf.A[:, free] = 0.5 * total
    kf.push(f"6: share output weight between neurons {keep} and {free}")
    return _sample(kf, samples_per_move, loss_fn, unravel, layer, p)


def silent_neuron_permutation(params: Params, layer: int, perm, *, silent: int | None = None,
                              loss_fn=None, samples_per_move: int = 100) -> ValleyPath:
    """A constant-loss path from θ to σ(θ) through a silent neuron (moves 2–3 of §4.2 (ii)).

    Needs a neuron of layer k whose outgoing weights are exactly zero (a
    zero-type neuron, Şimşek et al. 2021). Relocations through that free slot
    realise any permutation; the silent neuron's incoming vector is finally
    moved to its permuted place.

    **Arguments:**
    - `params`, `layer`, `perm`: as in `equal_loss_permutation`.
    - `silent`: the silent neuron; default: the first with zero outgoing weights.
    - `loss_fn`, `samples_per_move`: as in `equal_loss_permutation`.

    **Returns:** a `ValleyPath` ending exactly at `permute_layer(params, layer, perm)`.
    """
    n = check_hidden_layer(params, layer)
    p = check_permutation(perm, n)
    _check_samples(samples_per_move)
    A = np.asarray(params[layer][0])
    zero = [j for j in range(n) if np.all(A[:, j] == 0.0)]
    if silent is None:
        if not zero:
            raise ValueError(f"params: no neuron of layer {layer} has outgoing weights exactly 0")
        silent = zero[0]
    elif silent not in zero:
        raise ValueError(f"silent: neuron {silent!r} of layer {layer} is not silent "
                         "(outgoing weights not exactly 0)")
    _, unravel = ravel_pytree(params)
    kf = _Keyframes(params, layer)
    th_silent = kf.theta(silent)
    content = [None if i == silent else i for i in range(n)]
    target = [None if int(p[i]) == silent else int(p[i]) for i in range(n)]
    for s, blank in _parking_moves(content, target):
        kf.relocate(s, blank)
    free = target.index(None)
    kf.move_incoming(free, th_silent, f"2: move silent neuron {free}'s input vector to its final place")
    return _sample(kf, samples_per_move, loss_fn, unravel, layer, p)
