"""Isotropy subgroups of Γ = S_k × S_k and their fixed-point subspaces
(Arjevani & Field 2020, §2–3; math.md §6).

Γ acts on the k × k student matrix W (rows are neurons, teacher V = I_k) by
(π, ρ)·W = P_π W P_ρᵀ and leaves the loss invariant. The subgroups used here
are the diagonal Young subgroups Δ(S_{n_1} × … × S_{n_m}) for a partition of
{0, …, k−1} into consecutive blocks of sizes n_1, …, n_m: ΔS_k is the
partition (k,), ΔS_{k−1} is (1, k−1), Δ(S_p × S_{k−p}) is (p, k−p).
A W fixed by such a group is constant on each orbit of matrix entries:
per block r a diagonal value d_r (and an off-diagonal value o_r when
n_r ≥ 2), and per ordered pair of blocks r ≠ s one value x_rs.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re

import numpy as np
import jax
import jax.numpy as jnp

from symland.gaussian._kernel import check_activation, erf_kernel_from_gram, relu_kernel_from_gram


def check_k(k) -> int:
    """Raise ValueError unless k is an integer ≥ 2."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k: the number of neurons must be an integer >= 2, got {k!r}")
    return int(k)


_NAMES = (
    "'S_k' (ΔS_k), 'S_{k-1}' (ΔS_{k-1}), 'S_p x S_{k-p}' (Δ(S_p × S_{k-p}), e.g. 'S_2xS_{k-2}'), "
    "or a tuple of block sizes summing to k"
)


def isotropy_partition(k: int, isotropy) -> tuple[int, ...]:
    """Block sizes of the diagonal Young subgroup named by `isotropy`.

    **Arguments:** `k`; `isotropy`: ``"S_k"``, ``"S_{k-1}"``,
    ``"S_p x S_{k-p}"`` (a leading Δ/"Delta" and parentheses are optional) or a
    tuple of positive block sizes summing to k.

    **Returns:** the tuple of block sizes, e.g. (1, k−1) for ΔS_{k−1}.
    """
    k = check_k(k)
    if isinstance(isotropy, (tuple, list)):
        sizes = tuple(int(n) for n in isotropy)
        if not sizes or any(n < 1 for n in sizes) or sum(sizes) != k:
            raise ValueError(f"isotropy: block sizes {isotropy!r} must be positive and sum to k={k}")
        return sizes
    if not isinstance(isotropy, str):
        raise ValueError(f"isotropy: unknown isotropy {isotropy!r}; use {_NAMES}")
    s = isotropy.replace("Δ", "").replace("Delta", "").replace("×", "x").replace("*", "x")
    s = re.sub(r"[\s(){}]", "", s)
    if s in ("S_k", "Sk"):
        return (k,)
    if s in ("S_k-1", "Sk-1"):
        return (1, k - 1)
    m = re.fullmatch(r"S_?(\d+)xS_?k-(\d+)", s)
    if m and m.group(1) == m.group(2) and 1 <= int(m.group(1)) < k:
        p = int(m.group(1))
        return (p, k - p)
    raise ValueError(f"isotropy: unknown isotropy {isotropy!r}; use {_NAMES}")


def isotropy_name(sizes: tuple[int, ...]) -> str:
    """A readable name, e.g. 'ΔS_{k-1}' for (1, k−1) and 'Δ(S_2×S_{k-2})'."""
    if len(sizes) == 1:
        return "ΔS_k"
    if len(sizes) == 2 and sizes[0] == 1:
        return "ΔS_{k-1}"
    if len(sizes) == 2:
        return f"Δ(S_{sizes[0]}×S_{{k-{sizes[0]}}})"
    return "Δ(" + "×".join(f"S_{n}" for n in sizes) + ")"


@dataclasses.dataclass(frozen=True)
class FixedPointSubspace:
    """Fix(ΔS_{n_1} × … × S_{n_m}) ⊂ R^{k×k}, linearly parameterised by z.

    **Fields:** `k`, `sizes` (block sizes), `index` (k × k int array: the
    coordinate of z that entry W_ij equals), `labels` (names of the z
    coordinates: ``d_r``, ``o_r``, ``x_rs``), `name`.

    Coordinates are ordered by blocks (r, s) row-major, with d_r before o_r,
    so for ΔS_{k−1} z = (W_11, W_1j, W_i1, W_ii, W_ij) as in math.md §6.
    """

    k: int
    sizes: tuple
    index: np.ndarray
    labels: tuple
    name: str

    @property
    def dim(self) -> int:
        return len(self.labels)

    def to_full(self, z):
        """W = B z as a k × k matrix (rows are neurons)."""
        return jnp.asarray(z)[self.index]

    def from_full(self, W):
        """The orbit averages of W: the orthogonal projection onto Fix, in z coordinates."""
        idx = self.index.ravel()
        sums = jax.ops.segment_sum(jnp.ravel(W), idx, num_segments=self.dim)
        return sums / np.bincount(idx, minlength=self.dim)

    def basis(self) -> np.ndarray:
        """The k² × dim matrix B with vec(W) = B z (0/1 entries, columns = orbits)."""
        B = np.zeros((self.k * self.k, self.dim))
        B[np.arange(self.k * self.k), self.index.ravel()] = 1.0
        return B

    def restricted_loss(self, z, activation: str = "relu"):
        """L(to_full(z)) for teacher V = I_k in O(m²) operations, m = number of blocks."""
        has_off = tuple(n >= 2 for n in self.sizes)
        return restricted_loss(z, jnp.asarray(self.sizes, dtype=jnp.float64), has_off, activation)


def fixed_point_subspace(k: int, isotropy) -> FixedPointSubspace:
    """The fixed-point subspace of the isotropy group named by `isotropy` (see `isotropy_partition`)."""
    sizes = isotropy_partition(k, isotropy)
    block = np.repeat(np.arange(len(sizes)), sizes)
    labels, coord = [], {}
    for r, s in itertools.product(range(len(sizes)), repeat=2):
        if r == s:
            coord[(r, r, "d")] = len(labels)
            labels.append(f"d_{r}")
            if sizes[r] >= 2:
                coord[(r, r, "o")] = len(labels)
                labels.append(f"o_{r}")
        else:
            coord[(r, s, "x")] = len(labels)
            labels.append(f"x_{r}{s}")
    index = np.empty((k, k), dtype=int)
    for i, j in itertools.product(range(k), repeat=2):
        r, s = block[i], block[j]
        index[i, j] = coord[(r, s, "x")] if r != s else coord[(r, r, "d" if i == j else "o")]
    index.setflags(write=False)
    return FixedPointSubspace(k, sizes, index, tuple(labels), isotropy_name(sizes))


def _unpack(z, has_off, xp=jnp):
    """d (m,), o (m,) and the 'generic entry' matrix A (m × m) from z."""
    m = len(has_off)
    d, o, A = [], [], [[None] * m for _ in range(m)]
    i = 0
    for r, s in itertools.product(range(m), repeat=2):
        if r == s:
            d.append(z[i])
            i += 1
            if has_off[r]:
                o.append(z[i])
                i += 1
            else:
                o.append(xp.zeros_like(z[0]))
            A[r][r] = o[r]
        else:
            A[r][s] = z[i]
            i += 1
    return xp.stack(d), xp.stack(o), xp.stack([xp.stack(row) for row in A])


@functools.partial(jax.jit, static_argnums=(2, 3))
def restricted_loss(z, sizes, has_off: tuple, activation: str = "relu"):
    """Closed-form loss on a diagonal Young fixed-point subspace, teacher V = I_k.

    **Arguments:** `z` (coordinates, see `FixedPointSubspace`); `sizes`
    (block sizes n_r, may be a traced float array, so k can be vmapped);
    `has_off` (static: whether block r has an off-diagonal coordinate,
    i.e. n_r ≥ 2); `activation`.

    The same formula runs in NumPy extended precision
    (`restricted_loss_extended`) for large k, where the O(k²)-sized terms
    cancel to a loss of order 1/k.

    **Returns:** L(W(z)). Only the Gram entries between the O(m) distinct row
    types enter, so the cost is independent of k (math.md §6: the ΔS_{k−1}
    problem has 5 unknowns and costs O(1) per k).
    """
    check_activation(activation)
    return _restricted_loss(z, sizes, has_off, activation, jnp)


def _restricted_loss(z, sizes, has_off, activation, xp):
    n = sizes
    d, o, A = _unpack(z, has_off, xp)
    delta = d - o
    G = (A * n) @ A.T
    C = delta[:, None] * A.T
    g_pair = G + C + C.T  # w_i·w_j for rows of blocks r, s (i ≠ j)
    nw2 = xp.diag(G) + d**2 - o**2
    nr, ns = nw2[:, None], nw2[None, :]
    if activation == "relu":
        kern = lambda a2, b2, c: relu_kernel_from_gram(a2, b2, c, xp.maximum(a2 * b2 - c**2, 0.0), xp)
        k_self = nw2 / 2
        k_ee, k_eij = 0.5, 1 / (8 * xp.arctan(xp.ones_like(n[0])))
    else:
        kern = lambda a2, b2, c: erf_kernel_from_gram(a2, b2, c, xp)
        k_self = erf_kernel_from_gram(nw2, nw2, nw2, xp)
        k_ee, k_eij = xp.ones_like(n[0]) / 3, 0.0
    k_pair = kern(nr, ns, g_pair)
    pair_count = n[:, None] * n[None, :] - xp.diag(n)
    student = 0.5 * (n @ k_self + xp.sum(pair_count * k_pair))
    # teacher rows e_j: w_i·e_i = d_r, w_i·e_j = A_rt (j in block t, j ≠ i)
    one = xp.ones_like(nw2)
    k_diag = kern(nw2, one, d)
    k_gen = kern(nr, xp.ones_like(A), A)
    cross = n @ k_diag + xp.sum(n[:, None] * (n[None, :] - xp.eye(len(has_off))) * k_gen)
    ktot = xp.sum(n)
    teacher = 0.5 * (ktot * k_ee + ktot * (ktot - 1) * k_eij)
    return student - cross + teacher


def restricted_loss_extended(z, sizes, has_off: tuple, activation: str = "relu"):
    """`restricted_loss` in NumPy long double (18 digits on x86-64); returns a long double.

    At k = 10⁴ the double-precision closed form loses ~8 digits to
    cancellation (terms of size k² sum to L ≈ 0.3/k); three more digits make
    k·L good to ~1e−7 there.
    """
    check_activation(activation)
    ld = np.longdouble
    z = np.asarray(z, dtype=np.float64).astype(ld)
    sizes = np.asarray(sizes, dtype=ld)
    return _restricted_loss(z, sizes, tuple(has_off), activation, np)


# --- isotropy of a given point ------------------------------------------------


def diagonal_isotropy_partition(W, *, tol: float = 1e-8) -> list[list[int]]:
    """The Young part of the diagonal isotropy of W, as a partition of {0, …, k−1}.

    i ~ j when the transposition (i j), acting diagonally (π = ρ = (i j)),
    fixes W to within `tol` (max-norm); transpositions that fix W generate the
    product of the symmetric groups on the classes. Non-Young elements of the
    isotropy (e.g. cyclic ones) and non-diagonal ones are not detected here;
    see `isotropy_group` for small k.

    **Returns:** the classes, sorted, each a sorted list of indices.
    """
    W = np.asarray(W)
    k = W.shape[0]
    parent = list(range(k))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(k), 2):
        p = np.arange(k)
        p[[i, j]] = [j, i]
        if np.max(np.abs(W[np.ix_(p, p)] - W)) <= tol:
            parent[find(j)] = find(i)
    classes: dict[int, list[int]] = {}
    for i in range(k):
        classes.setdefault(find(i), []).append(i)
    return sorted(classes.values())


def isotropy_group(W, *, tol: float = 1e-8, max_k: int = 7) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """All (π, ρ) ∈ S_k × S_k with P_π W P_ρᵀ = W within `tol` (brute force over ρ).

    For each ρ the rows of W P_ρᵀ are matched to the rows of W; every
    matching row permutation π is listed. Cost k!·k², so k ≤ `max_k`.

    **Returns:** a list of pairs (π, ρ) of permutations as tuples, π[i] the
    image of i, with P_π e_i = e_{π(i)}, i.e. (P_π W P_ρᵀ)_{ij} = W_{π⁻¹(i) ρ⁻¹(j)}.
    """
    W = np.asarray(W)
    k = W.shape[0]
    if k > max_k:
        raise ValueError(f"W: isotropy_group enumerates k! permutations; k={k} exceeds max_k={max_k}")
    out = []
    for rho in itertools.permutations(range(k)):
        Wc = W[:, np.argsort(rho)]  # (W P_ρᵀ)_{ij} = W_{i ρ⁻¹(j)}
        close = np.max(np.abs(Wc[:, None, :] - W[None, :, :]), axis=2) <= tol  # close[a, b]: row a of Wc == row b of W
        candidates = [np.flatnonzero(close[a]) for a in range(k)]
        for choice in itertools.product(*candidates):
            if len(set(choice)) == k:
                out.append((tuple(int(c) for c in choice), tuple(rho)))
    return out
