"""Exact counts of symmetry-induced critical points.

Brea et al. 2019 (Prop. 1, Lemma 1, App. B, C) count permutation points of a
multi-layer network; Şimşek et al. 2021 count the affine subspaces of global
minima and of symmetry-induced critical points of a two-layer network. Every
count here is a Python `int` or `fractions.Fraction`: no floating point. Small
cases are checked against the brute-force enumerators at the end of the module.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from collections.abc import Iterator
from fractions import Fraction

__all__ = [
    "ZERO_TYPE",
    "PermutationPointCount",
    "SubspaceCount",
    "T",
    "T_lower_bound",
    "c_K",
    "count_permutation_points",
    "crossover_h",
    "enumerate_global_minimum_subspaces",
    "enumerate_permutation_points",
    "enumerate_symmetry_induced_subspaces",
    "global_minima_subspaces",
    "stirling2",
    "subspace_dimension",
    "symmetry_induced_subspaces",
]

ZERO_TYPE = -1
"""Label of a zero-type student neuron (a = 0, w free) in a global-minimum subspace."""


def _jsonable(value):
    """Exact JSON form of a count: ints stay ints, fractions become strings such as "7/12"."""
    if isinstance(value, Fraction):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------
# Input checks and Stirling numbers
# --------------------------------------------------------------------------


def _as_int(name: str, value, minimum: int) -> int:
    """`value` as an `int` >= `minimum`, else `ValueError` naming `name`.

    Rejects `bool`, `float` (even integral ones) and every other non-integer.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _associated_stirling_table(K: int) -> list[list[int]]:
    """A[m][j]: partitions of an m-set into j blocks, each of size >= 2 (m <= 2K, j <= K)."""
    A = [[0] * (K + 1) for _ in range(2 * K + 1)]
    A[0][0] = 1
    for m in range(2, 2 * K + 1):
        for j in range(1, min(K, m // 2) + 1):
            A[m][j] = j * A[m - 1][j] + (m - 1) * A[m - 2][j - 1]
    return A


def stirling2(n: int, k: int) -> int:
    """Stirling number of the second kind S(n, k), exactly.

    The number of partitions of an n-set into k non-empty blocks. For K = n - k
    small it sums over the non-singleton blocks, S(n, n-K) = Σ_{j=1}^{K} C(n, K+j)
    A(K+j, j), with A the associated Stirling numbers (all blocks of size >= 2);
    otherwise it uses S(n, k) = (1/k!) Σ_i (-1)^{k-i} C(k, i) i^n.

    **Arguments:**

    - `n`: size of the set, an integer >= 0.
    - `k`: number of blocks, an integer >= 0.

    **Returns:**

    S(n, k) as an `int` (0 when k > n, and S(0, 0) = 1).
    """
    n = _as_int("n", n, 0)
    k = _as_int("k", k, 0)
    if k > n:
        return 0
    if k == n:
        return 1
    if k == 0:
        return 0
    K = n - k
    if K * K <= 16 * k:
        A = _associated_stirling_table(K)
        return sum(math.comb(n, K + j) * A[K + j][j] for j in range(1, K + 1))
    total = 0
    binom = 1  # C(k, i)
    for i in range(0, k + 1):
        term = binom * i**n
        total += term if (k - i) % 2 == 0 else -term
        binom = binom * (k - i) // (i + 1)
    return total // math.factorial(k)


# --------------------------------------------------------------------------
# Brea et al. 2019: permutation points
# --------------------------------------------------------------------------


def _check_order(K, n) -> tuple[int, int]:
    n = _as_int("n", n, 2)
    K = _as_int("K", K, 1)
    if K >= n:
        raise ValueError(f"K must be < n (need at least one distinct vector), got K={K}, n={n}")
    return K, n


def T(K: int, n: int) -> Fraction:
    r"""Ratio of K-th order permutation points at a layer of width n to global minima.

    Brea et al. 2019, Prop. 1 (i), for every 1 <= K < n. A K-th order
    permutation point at a layer of width n simulates a given network whose layer
    has n - K distinct parameter vectors: each of the n neurons (labelled slots)
    takes one of the n - K vectors, and every vector is used at least once. These
    assignments are the surjections of n labelled slots onto n - K labelled
    vectors, (n-K)!·S(n, n-K) of them, with S the Stirling numbers of the second
    kind; the global minima at that layer are the n! permutations, so
    T(K, n) = (n-K)!·S(n, n-K) / n!. Grouping the surjections by the block sizes
    (an integer partition of n into n - K parts) gives the paper's sums term by
    term: T(1, n) = C(n-1, 1)/2!, T(2, n) = C(n-2, 1)/3! + C(n-2, 2)/2!^2 and
    T(3, n) = C(n-3, 1)/4! + C(n-3, 2)/3! + C(n-3, 3)/2!^3 (App. C); this
    function agrees with all three exactly.

    **Arguments:**

    - `K`: order of the permutation point, an integer with 1 <= K < n.
    - `n`: width of the layer, an integer >= 2.

    **Returns:**

    T(K, n) as an exact `Fraction`.
    """
    K, n = _check_order(K, n)
    falling = math.perm(n, K)  # n! / (n-K)!
    return Fraction(stirling2(n, n - K), falling)


def T_lower_bound(K: int, n: int) -> Fraction:
    """The lower bound C(n-K, K)/2^K on T(K, n).

    Brea et al. 2019, Prop. 1 (ii): only the block sizes 2+…+2+1+…+1 (K pairs)
    are counted. It is a bound for K <= n/2 and is 0 for K > n/2.

    **Arguments:**

    - `K`: order, an integer with 1 <= K < n.
    - `n`: layer width, an integer >= 2.

    **Returns:**

    C(n-K, K)/2^K as an exact `Fraction`.
    """
    K, n = _check_order(K, n)
    return Fraction(math.comb(n - K, K), 2**K)


def c_K(K: int) -> Fraction:
    """Asymptotic constant of Lemma 1: C(n-K, K)/2^K ~ c_K·n^K as n -> ∞.

    Brea et al. 2019, Lemma 1. The correct value is c_K = 1/(2^K·K!), since
    C(n-K, K) = (n-K)(n-K-1)…(n-2K+1)/K! ~ n^K/K!. The paper's App. B, eq. (9)
    states 1/(2^K·e^K·K!): in the Stirling step (8) the factor
    (n/K - 1)^{n-K}/(n/K - 2)^{n-2K} is replaced by (n/K)^K, but it tends to
    (n/K)^K·e^K, and that e^K cancels the 1/e^K of eq. (7). The paper's value is
    therefore too small by a factor e^K (checked numerically in the tests). The
    same constant is the leading coefficient of T(K, n) itself.

    **Arguments:**

    - `K`: order, an integer >= 1.

    **Returns:**

    c_K = 1/(2^K·K!) as an exact `Fraction`.
    """
    K = _as_int("K", K, 1)
    return Fraction(1, 2**K * math.factorial(K))


@dataclasses.dataclass(frozen=True)
class PermutationPointCount:
    """Exact count of K-th order permutation points of a multi-layer network.

    **Fields:**

    - `widths`: (n_0, …, n_d); the hidden layers are widths[1:-1].
    - `K`: the order.
    - `per_layer`: one `int` per hidden layer k = 1, …, d-1: the number of K-th
      order permutation points at layer k, T(K, n_k)·∏_j n_j!. 0 where K >= n_k.
    - `undefined_layers`: the indices k into `widths` of hidden layers with
      K >= n_k, which have no K-th order permutation point (their entry is 0).
    - `total`: the sum of `per_layer`.
    - `global_minima`: ∏_{j=1}^{d-1} n_j!, the permutations of one global minimum.
    - `ratio`: total / global_minima = Σ_k T(K, n_k), exact.
    - `lower_bound_factor`: Σ_k C(n_k-K, K)/2^K (Brea et al. 2019, after Lemma 1),
      the paper's lower bound on `ratio` (valid when 2K <= min_k n_k).
    """

    widths: tuple[int, ...]
    K: int
    per_layer: tuple[int, ...]
    undefined_layers: tuple[int, ...]
    total: int
    global_minima: int
    ratio: Fraction
    lower_bound_factor: Fraction

    def to_dict(self) -> dict:
        """The fields, exact and JSON-ready (fractions as strings such as "7/12")."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


def count_permutation_points(widths, K: int) -> PermutationPointCount:
    """Count the K-th order permutation points of a network, per hidden layer.

    Brea et al. 2019, Prop. 1 and the paragraph after Lemma 1. At hidden layer k
    there are T(K, n_k)·∏_{j=1}^{d-1} n_j! = (n_k-K)!·S(n_k, n_k-K)·∏_{j≠k} n_j!
    of them: a surjection of the n_k neurons onto the n_k - K distinct vectors of
    the smaller network, times any permutation of the other hidden layers.

    **Arguments:**

    - `widths`: the layer widths (n_0, …, n_d), integers >= 1, with d >= 2
      (at least one hidden layer).
    - `K`: order, an integer >= 1. Layers with K >= n_k contribute 0 and are
      listed in `undefined_layers`.

    **Returns:**

    A `PermutationPointCount` of Python ints and Fractions.
    """
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise ValueError(f"widths must be a sequence of integers, got {widths!r}")
    widths = tuple(_as_int(f"widths[{i}]", w, 1) for i, w in enumerate(widths))
    if len(widths) < 3:
        raise ValueError(f"widths must have at least 3 entries (one hidden layer), got {widths}")
    K = _as_int("K", K, 1)
    hidden = range(1, len(widths) - 1)
    factorials = {k: math.factorial(widths[k]) for k in hidden}
    global_minima = math.prod(factorials.values())
    per_layer = []
    undefined = []
    ratio = Fraction(0)
    bound = Fraction(0)
    for k in hidden:
        n = widths[k]
        if K >= n:
            per_layer.append(0)
            undefined.append(k)
            continue
        # (n-K)! S(n, n-K) * prod_{j != k} n_j!
        others = global_minima // factorials[k]
        per_layer.append(math.factorial(n - K) * stirling2(n, n - K) * others)
        ratio += T(K, n)
        bound += T_lower_bound(K, n)
    return PermutationPointCount(
        widths=widths,
        K=K,
        per_layer=tuple(per_layer),
        undefined_layers=tuple(undefined),
        total=sum(per_layer),
        global_minima=global_minima,
        ratio=ratio,
        lower_bound_factor=bound,
    )


# --------------------------------------------------------------------------
# Şimşek et al. 2021: subspaces of a two-layer network
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SubspaceCount:
    """Exact count of affine subspaces of a two-layer network of width m.

    **Fields:**

    - `count`: the number of affine subspaces.
    - `dimensions`: {dimension: number of subspaces of that dimension}; the
      values sum to `count`.
    """

    count: int
    dimensions: dict[int, int]

    def to_dict(self) -> dict:
        """The fields, exact and JSON-ready (fractions as strings such as "7/12")."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


def global_minima_subspaces(r_star: int, m: int, *, d: int = 1) -> SubspaceCount:
    """T(r*, m): affine subspaces of global minima of a width-m student.

    Şimşek et al. 2021 (abstract; the formula is our derivation, see
    `docs/counting.md`). Model: f(x) = Σ_{j=1}^m a_j σ(w_j·x), w_j ∈ R^d, and a
    teacher of minimal width r* with distinct nonzero neurons (a_i*, w_i*). A
    subspace is labelled by giving each student neuron a type: zero-type
    (a_j = 0, w_j free) or copy of teacher i (w_j = w_i*), every teacher neuron
    copied at least once. With j zero-type neurons there are C(m, j) ways to pick
    them and r*!·S(m-j, r*) surjections of the others onto the teachers, so
    T(r*, m) = Σ_{j=0}^{h} C(m, j)·r*!·S(m-j, r*) = r*!·S(m+1, r*+1), h = m - r*.
    The subspace has dimension j·d + Σ_i (s_i - 1) = j·d + (m - j - r*), with
    s_i the size of copy group i (the a's in group i sum to a_i*). This is
    h + j(d - 1) >= h for d >= 1; with d = 1 every subspace has dimension h.

    **Arguments:**

    - `r_star`: teacher width r*, an integer >= 1.
    - `m`: student width, an integer >= r*.
    - `d`: input dimension (keyword, default 1), an integer >= 1. Only the
      dimensions depend on it.

    **Returns:**

    A `SubspaceCount` with `count` = r*!·S(m+1, r*+1).
    """
    r_star = _as_int("r_star", r_star, 1)
    m = _as_int("m", m, 1)
    d = _as_int("d", d, 1)
    if m < r_star:
        raise ValueError(f"m must be >= r_star, got m={m}, r_star={r_star}")
    fact = math.factorial(r_star)
    dims: dict[int, int] = {}
    for j in range(0, m - r_star + 1):
        n_j = math.comb(m, j) * fact * stirling2(m - j, r_star)
        dim = j * d + (m - j - r_star)
        dims[dim] = dims.get(dim, 0) + n_j
    count = fact * stirling2(m + 1, r_star + 1)
    return SubspaceCount(count=count, dimensions=dict(sorted(dims.items())))


def symmetry_induced_subspaces(r: int, m: int) -> SubspaceCount:
    """G(r, m): affine subspaces of symmetry-induced critical points from width r.

    Şimşek et al. 2021 (abstract; the formula is our derivation). Take a critical
    point of the width-r network with nonzero loss and distinct neurons. A free
    zero-type neuron is in general not critical there, so each of the m student
    neurons copies one of the r neurons, each copied at least once: the
    surjections of m slots onto r, G(r, m) = r!·S(m, r). Every such subspace has
    dimension Σ_i (s_i - 1) = m - r (the output weights of each copy group sum
    to the small network's one).

    **Arguments:**

    - `r`: width of the smaller network, an integer >= 1.
    - `m`: student width, an integer >= r.

    **Returns:**

    A `SubspaceCount` with `count` = r!·S(m, r), all of dimension m - r.
    """
    r = _as_int("r", r, 1)
    m = _as_int("m", m, 1)
    if m < r:
        raise ValueError(f"m must be >= r, got m={m}, r={r}")
    count = math.factorial(r) * stirling2(m, r)
    return SubspaceCount(count=count, dimensions={m - r: count})


def _G_compared(r_star: int, m: int, r: int | None, summed: bool) -> int:
    if summed:
        return sum(symmetry_induced_subspaces(q, m).count for q in range(1, r_star))
    return symmetry_induced_subspaces(r_star - 1 if r is None else r, m).count


def crossover_h(r_star: int, *, r: int | None = None, summed: bool = False,
                h_max: int = 10_000) -> int:
    """Smallest h >= 0 with T(r*, r*+h) > G(r, r*+h): where global minima overtake.

    Şimşek et al. 2021 (abstract): "G dominates T for small h and T dominates G
    for h ≫ r*". We compare the number T(r*, m) of global-minimum subspaces with
    the number G(r, m) of symmetry-induced subspaces from one critical point of
    width r = r* - 1 (default), or, with `summed=True`, with Σ_{r=1}^{r*-1} G(r, m)
    (one critical point of each smaller width), at m = r* + h. Since
    G(r*-1, m)/T(r*, m) ~ ((r*-1)/(r*+1))^m -> 0, the crossover exists. Ties
    count as not overtaken. With the default comparison G(r*-1, r*)/T(r*, r*) =
    (r*-1)/2, so G dominates at h = 0 only for r* >= 4 (tie at r* = 3); the
    crossover then comes early, at h ≈ r*/4 (≈ r*/2 when summed), e.g. 26 (48)
    for r* = 100: T overtakes G well before h ≫ r*.

    **Arguments:**

    - `r_star`: teacher width r*, an integer >= 2.
    - `r`: width of the smaller network (keyword), 1 <= r < r*; default r* - 1.
      Ignored when `summed` is True.
    - `summed`: compare against the sum over all r < r* (keyword).
    - `h_max`: give up (ValueError) past this h.

    **Returns:**

    The smallest h >= 0 with T(r*, r*+h) > G(r*+h) as defined above.
    """
    r_star = _as_int("r_star", r_star, 2)
    if r is not None and not summed:
        r = _as_int("r", r, 1)
        if r >= r_star:
            raise ValueError(f"r must be < r_star, got r={r}, r_star={r_star}")
    h_max = _as_int("h_max", h_max, 0)
    for h in range(h_max + 1):
        m = r_star + h
        if global_minima_subspaces(r_star, m).count > _G_compared(r_star, m, r, summed):
            return h
    raise ValueError(f"no crossover for h <= h_max={h_max}")


# --------------------------------------------------------------------------
# Brute-force enumerators (for checking the formulas on small sizes)
# --------------------------------------------------------------------------


def _surjections(n: int, k: int) -> Iterator[tuple[int, ...]]:
    """Every map {0..n-1} -> {0..k-1} hitting every value, by depth-first search."""
    slots = [0] * n
    used = [0] * k

    def rec(i: int, missing: int) -> Iterator[tuple[int, ...]]:
        if i == n:
            if missing == 0:
                yield tuple(slots)
            return
        if n - i < missing:  # too few slots left to cover every value
            return
        for v in range(k):
            slots[i] = v
            used[v] += 1
            yield from rec(i + 1, missing - (used[v] == 1))
            used[v] -= 1

    yield from rec(0, k)


def enumerate_permutation_points(K: int, n: int) -> Iterator[tuple[int, ...]]:
    """Every K-th order permutation point of one layer of width n, by brute force.

    Brea et al. 2019, Prop. 1. A point is the tuple (v_0, …, v_{n-1}): neuron i
    carries the v_i-th of the n - K given distinct vectors, each vector used at
    least once. There are T(K, n)·n! of them.

    **Arguments:**

    - `K`: order, 1 <= K < n.
    - `n`: layer width.

    **Returns:**

    An iterator over the tuples, each once.
    """
    K, n = _check_order(K, n)
    return _surjections(n, n - K)


def enumerate_global_minimum_subspaces(r_star: int, m: int) -> Iterator[tuple[int, ...]]:
    """Every global-minimum subspace label of a width-m student, by brute force.

    Şimşek et al. 2021, the model of `global_minima_subspaces`. A label gives each
    student neuron either a teacher index i in 0..r*-1 (copy of teacher i) or
    `ZERO_TYPE` (= -1), with every teacher index used at least once.

    **Arguments:**

    - `r_star`: teacher width, >= 1.
    - `m`: student width, >= r*.

    **Returns:**

    An iterator over the labels, each once; T(r*, m) of them.
    """
    r_star = _as_int("r_star", r_star, 1)
    m = _as_int("m", m, 1)
    if m < r_star:
        raise ValueError(f"m must be >= r_star, got m={m}, r_star={r_star}")
    # Plain product over the r* + 1 types, keeping the labels that copy every teacher.
    for label in itertools.product((ZERO_TYPE, *range(r_star)), repeat=m):
        if len(set(label) - {ZERO_TYPE}) == r_star:
            yield label


def enumerate_symmetry_induced_subspaces(r: int, m: int) -> Iterator[tuple[int, ...]]:
    """Every symmetry-induced subspace label from a width-r critical point, by brute force.

    Şimşek et al. 2021, the model of `symmetry_induced_subspaces`: copy-only
    labels, each neuron a copy of one of the r neurons 0..r-1, all used.

    **Arguments:**

    - `r`: width of the smaller network, >= 1.
    - `m`: student width, >= r.

    **Returns:**

    An iterator over the labels, each once; G(r, m) of them.
    """
    r = _as_int("r", r, 1)
    m = _as_int("m", m, 1)
    if m < r:
        raise ValueError(f"m must be >= r, got m={m}, r={r}")
    return _surjections(m, r)


def subspace_dimension(label, *, d: int = 1, n_out: int = 1) -> int:
    """Dimension of the affine subspace with the given label: j·d + Σ_i (s_i − 1)·n_out.

    Şimşek et al. 2021 model, with j the number of `ZERO_TYPE` entries
    (a = 0, w ∈ R^d free) and s_i the number of copies of teacher i (their
    output weights sum to a_i*: (s_i − 1)·n_out free directions for n_out
    outputs; the paper has n_out = 1). The one home of this formula;
    `overparameterised_minimum` builds points of these subspaces and
    `minimum_subspace_directions` a basis of them.

    **Arguments:**

    - `label`: a label from `enumerate_global_minimum_subspaces` or
      `enumerate_symmetry_induced_subspaces`, or an assignment of
      `overparameterised_minimum` (integers, `ZERO_TYPE` = -1 for zero-type).
    - `d`: input dimension (keyword), >= 1.
    - `n_out`: output dimension (keyword), >= 1.

    **Returns:**

    The dimension as an `int`.

    Example:
        >>> subspace_dimension((0, 0, 1, ZERO_TYPE), d=2)
        3
    """
    d = _as_int("d", d, 1)
    n_out = _as_int("n_out", n_out, 1)
    zeros = sum(1 for v in label if v == ZERO_TYPE)
    groups: dict[int, int] = {}
    for v in label:
        if v != ZERO_TYPE:
            groups[v] = groups.get(v, 0) + 1
    return zeros * d + sum(s - 1 for s in groups.values()) * n_out
