"""Isotropy subgroups of a point under permutations of neurons and inputs, computed exactly up to a tolerance.

A chain of weight matrices W_1 (n_1 × n_0), …, W_L (n_L × n_{L−1}) is acted
on by Γ = S_{n_0} × S_{n_1} × … × S_{n_L}:

    (σ_0, …, σ_L) · W_ℓ = P_{σ_ℓ} W_ℓ P_{σ_{ℓ−1}}ᵀ,

i.e. neurons of layer ℓ are permuted by σ_ℓ and inputs (layer 0) by σ_0.
For one matrix W (k × d) this is the S_d × S_k of Arjevani & Field
(teacher rows e_j; inputs permuted together with the teacher's neurons) and
of symmetric tensor decomposition (Arjevani et al. 2021, "Symmetry breaking
in symmetric tensor decomposition"). The isotropy subgroup of W is
Γ_W = {γ ∈ Γ : γ·W = W}; here "=" means "entrywise within `tol`".

Signed permutations. Passing `signed=(ℓ, …)` replaces S_{n_ℓ} by the
hyperoctahedral group Z_2 ≀ S_{n_ℓ} (permute and flip signs of the points
of layer ℓ): the matrices are doubled, a point x and its negative x̄ are
both points, and a group element must commute with x ↦ x̄. This is the
symmetry of tensor decomposition with even p (w ↦ −w leaves w^{⊗p} alone;
e_j^{⊗p} = (−e_j)^{⊗p}).

Algorithm. The entries of each matrix are clustered into labels (sorted
values, a new label where a gap exceeds `tol`); the points are coloured by
1-dimensional Weisfeiler–Leman refinement (a point's colour is refined by
the multiset of (label, colour) pairs of its row or column); then a
backtracking search decides, for each point b of a base and each candidate c
of b's colour, whether some γ ∈ Γ_W fixes the earlier base points and maps
b ↦ c. The orbit sizes multiply to |Γ_W| (orbit–stabiliser along the
stabiliser chain); candidates already joined to b's orbit by the group
elements found so far are not searched again. Exact for the labelled
structure; cost is tiny for the sizes here (≤ 60 points), never k!·d!.
``symland.gaussian.isotropy_group`` enumerates Γ_W by brute force for
square W with k ≤ 7 and is the independent check in the tests.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np

from ._results import check_tolerance


def value_labels(values, tol: float) -> np.ndarray:
    """Integer labels of `values`: equal where sorted neighbours differ by ≤ `tol` (single linkage)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="stable")
    jumps = np.concatenate([[0], (np.diff(v[order]) > tol).astype(int)])
    labels = np.empty(v.size, dtype=int)
    labels[order] = np.cumsum(jumps)
    return labels.reshape(np.shape(values))


@dataclasses.dataclass(frozen=True)
class IsotropySubgroup:
    """The isotropy subgroup Γ_W of a point, described by its order, orbits and generators.

    **Fields:** `order` (|Γ_W|), `sizes` (n_0, …, n_L), `orbits` (per layer
    ℓ, the orbits of Γ_W on the points 0…n_ℓ−1, sorted lists; with signed
    layers a point and its negative count as one point), `generators`
    (group elements found by the search, each a tuple of per-layer images of
    the doubled points when signed), `signed` (the signed layers), `tol`.
    """

    order: int
    sizes: tuple
    orbits: tuple
    generators: tuple
    signed: tuple
    tol: float

    def orbit_sizes(self, layer: int) -> tuple[int, ...]:
        """Orbit sizes on layer `layer`, largest first."""
        return tuple(sorted((len(o) for o in self.orbits[layer]), reverse=True))

    @property
    def name(self) -> str:
        """A readable type: ``Δ(S_9)``-style when Γ_W looks like a diagonal Young subgroup, else its order and orbits.

        Δ(S_{n_1} × … × S_{n_m}) (factors S_1 dropped, e.g. ``ΔS_{d-1}`` is
        written ``ΔS_9`` at d = 10) is used when every layer has the same
        multiset of non-trivial orbit sizes and |Γ_W| = ∏ n_r! (times 2^{…}
        for signed layers, shown as ``×Z_2^m``). The test is on the numbers;
        `order` and `orbits` are the facts.
        """
        per_layer = [tuple(n for n in self.orbit_sizes(l) if n > 1) for l in range(len(self.sizes))]
        nontrivial = {s for s in per_layer if s}
        if self.order == 1:
            return "trivial"
        if len(nontrivial) == 1:
            sizes = next(iter(nontrivial))
            young = math.prod(math.factorial(n) for n in sizes)
            if self.order % young == 0 and _is_power_of_two(self.order // young) and \
                    (self.order == young or self.signed):
                base = "Δ" + ("S_" + str(sizes[0]) if len(sizes) == 1 else
                              "(" + "×".join(f"S_{n}" for n in sizes) + ")")
                extra = self.order // young
                return base if extra == 1 else f"{base}×Z_2^{extra.bit_length() - 1}"
        orbits = ";".join(",".join(map(str, self.orbit_sizes(l))) for l in range(len(self.sizes)))
        return f"order {self.order} (orbits {orbits})"

    def to_dict(self) -> dict:
        return {"order": self.order, "name": self.name, "sizes": list(self.sizes),
                "orbits": [[list(o) for o in layer] for layer in self.orbits],
                "signed": list(self.signed), "tol": self.tol, "n_generators": len(self.generators)}


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


class _Structure:
    """Points of all layers (doubled where signed), labelled adjacency between consecutive layers."""

    def __init__(self, matrices, tol, signed):
        mats = [np.asarray(W, dtype=np.float64) for W in matrices]
        sizes = [mats[0].shape[1]] + [W.shape[0] for W in mats]
        self.sizes = tuple(sizes)
        self.signed = tuple(sorted(set(signed)))
        mult = [2 if l in self.signed else 1 for l in range(len(sizes))]
        self.offsets = np.concatenate([[0], np.cumsum([m * n for m, n in zip(mult, sizes)])]).astype(int)
        n_pts = int(self.offsets[-1])
        self.layer = np.repeat(np.arange(len(sizes)), [m * n for m, n in zip(mult, sizes)])
        self.partner = np.arange(n_pts)
        for l in self.signed:
            n, o = sizes[l], self.offsets[l]
            self.partner[o:o + n] = np.arange(o + n, o + 2 * n)
            self.partner[o + n:o + 2 * n] = np.arange(o, o + n)
        # doubled matrices: sign pattern [[W, -W], [-W, W]] on the signed sides
        self.blocks = []  # (row layer, col layer, label matrix)
        all_vals = []
        doubled = []
        for l, W in enumerate(mats, start=1):
            D = W
            if l - 1 in self.signed:
                D = np.hstack([D, -D])
            if l in self.signed:
                D = np.vstack([D, -D])
            doubled.append(D)
            all_vals.append(D.ravel())
        labels = value_labels(np.concatenate(all_vals), tol) if all_vals else np.array([], int)
        pos = 0
        for l, D in enumerate(doubled, start=1):
            self.blocks.append((l, l - 1, labels[pos:pos + D.size].reshape(D.shape)))
            pos += D.size
        self.n = n_pts
        # adjacency: for point p, list of (other point, label) per neighbouring layer
        self.adj = [[] for _ in range(n_pts)]
        for lr, lc, lab in self.blocks:
            ro, co = self.offsets[lr], self.offsets[lc]
            for i in range(lab.shape[0]):
                for j in range(lab.shape[1]):
                    self.adj[ro + i].append((co + j, int(lab[i, j]), 0))
                    self.adj[co + j].append((ro + i, int(lab[i, j]), 1))
        self.colors = self._refine()

    def _refine(self):
        color = [int(l) for l in self.layer]
        for _ in range(self.n + 1):
            sig = [(color[p], tuple(sorted((lab, d, color[q]) for q, lab, d in self.adj[p])))
                   for p in range(self.n)]
            table = {s: i for i, s in enumerate(sorted(set(sig)))}
            new = [table[s] for s in sig]
            if len(set(new)) == len(set(color)):
                return np.array(new)
            color = new
        return np.array(color)

    def consistent(self, phi, p, q):
        """Can p ↦ q extend the partial map `phi` (dict) without breaking a label?"""
        for r, lab, _ in self.adj[p]:
            s = phi.get(r)
            if s is not None and self._label(q, s) != lab:
                return False
        return True

    def _label(self, p, q):
        lp, lq = self.layer[p], self.layer[q]
        if lp > lq:
            lab = self.blocks[lp - 1][2]
            return lab[p - self.offsets[lp], q - self.offsets[lq]]
        lab = self.blocks[lq - 1][2]
        return lab[q - self.offsets[lq], p - self.offsets[lp]]

    def extend(self, phi, order):
        """Depth-first search for an automorphism extending `phi` (dict); returns it or None."""
        free = [p for p in order if p not in phi]
        if not free:
            return dict(phi)
        p = free[0]
        used = set(phi.values())
        for q in np.flatnonzero(self.colors == self.colors[p]):
            q = int(q)
            if q in used:
                continue
            trial = self._assign(phi, p, q)
            if trial is None:
                continue
            out = self.extend(trial, order)
            if out is not None:
                return out
        return None

    def _assign(self, phi, p, q):
        """phi ∪ {p ↦ q, p̄ ↦ q̄} if consistent, else None."""
        pairs = [(p, q)]
        if self.partner[p] != p:
            pairs.append((int(self.partner[p]), int(self.partner[q])))
        new = dict(phi)
        used = set(phi.values())
        for a, b in pairs:
            if a in new:
                if new[a] != b:
                    return None
                continue
            if b in used or self.colors[a] != self.colors[b] or not self.consistent(new, a, b):
                return None
            new[a] = b
            used.add(b)
        return new


def isotropy_subgroup(matrices, *, tol: float = 1e-8, signed=()) -> IsotropySubgroup:
    """The isotropy subgroup of (W_1, …, W_L) in ∏_ℓ S_{n_ℓ} (signed where asked), to within `tol`.

    **Arguments:**
    - `matrices`: one matrix W (k × d: the group S_d × S_k acts by
      W ↦ P_π W P_ρᵀ) or a list of matrices W_ℓ of shapes n_ℓ × n_{ℓ−1}.
    - `tol`: entries within `tol` (single linkage over sorted values) count as equal.
    - `signed`: layers whose points may also change sign (0 = inputs/columns,
      1 = rows of W_1, …).

    **Returns:** an `IsotropySubgroup` (order, orbits per layer, generators, name).

    Example:
        >>> import numpy as np
        >>> from symland import isotropy_subgroup
        >>> g = isotropy_subgroup(np.eye(4))          # ΔS_4: π = ρ
        >>> g.order, g.name
        (24, 'ΔS_4')
        >>> W = np.eye(4); W[0, 0] = -0.5             # one flipped neuron: ΔS_{k-1}
        >>> isotropy_subgroup(W).name
        'ΔS_3'
    """
    check_tolerance(tol, "tol")
    if isinstance(matrices, (list, tuple)):
        mats = [np.asarray(W, dtype=np.float64) for W in matrices]
    else:
        mats = [np.asarray(matrices, dtype=np.float64)]
    if not mats or any(W.ndim != 2 for W in mats):
        raise ValueError("matrices: expected a matrix or a list of matrices")
    for a, b in zip(mats, mats[1:]):
        if b.shape[1] != a.shape[0]:
            raise ValueError(f"matrices: shapes {a.shape} and {b.shape} do not chain (n_ℓ × n_ℓ−1)")
    if any(not np.all(np.isfinite(W)) for W in mats):
        raise ValueError("matrices: entries must be finite")
    for l in signed:
        if not isinstance(l, (int, np.integer)) or not 0 <= l <= len(mats):
            raise ValueError(f"signed: layer {l!r} out of range 0…{len(mats)}")
    S = _Structure(mats, tol, signed)
    # base: one representative per signed pair, layers in order
    base = [p for p in range(S.n) if S.partner[p] >= p]
    cell = Counter(S.colors.tolist())
    search_order = sorted(range(S.n), key=lambda p: (cell[S.colors[p]], p))
    fixed: dict[int, int] = {}
    order = 1
    generators = []
    orbit_parent = list(range(S.n))  # union–find over the whole group's orbits (from all generators)

    def find(i):
        while orbit_parent[i] != i:
            orbit_parent[i] = orbit_parent[orbit_parent[i]]
            i = orbit_parent[i]
        return i

    for b in base:
        cand = [int(c) for c in np.flatnonzero(S.colors == S.colors[b])]
        level_gens: list[dict] = []
        orbit = {b}
        for c in cand:
            if c in orbit:
                continue
            if c in fixed.values() or S.partner[c] in fixed.values():
                continue
            # c already reached from b by composing this level's generators?
            if _reachable(b, c, level_gens, S.n):
                orbit.add(c)
                continue
            trial = S._assign(fixed, b, c)
            phi = None if trial is None else S.extend(trial, search_order)
            if phi is not None:
                level_gens.append(phi)
                generators.append(phi)
                orbit.add(c)
                for x, y in phi.items():
                    orbit_parent[find(x)] = find(y)
        order *= len(orbit)
        fixed = S._assign(fixed, b, b)
    # orbits per layer (signed: identify a point with its negative)
    orbits = []
    for l, n in enumerate(S.sizes):
        o = S.offsets[l]
        groups: dict[int, set] = {}
        mult = 2 if l in S.signed else 1
        for p in range(o, o + mult * n):
            groups.setdefault(find(p), set()).add((p - o) % n)
        merged: list[set] = []
        for g in groups.values():
            for m in merged:
                if m & g:
                    m |= g
                    break
            else:
                merged.append(set(g))
        orbits.append(tuple(sorted(sorted(m) for m in merged)))
    gens = tuple(tuple(int(phi[p]) for p in range(S.n)) for phi in generators)
    return IsotropySubgroup(int(order), S.sizes, tuple(orbits), gens, S.signed, float(tol))


def _reachable(b, c, gens, n):
    if not gens:
        return False
    seen, stack = {b}, [b]
    while stack:
        x = stack.pop()
        for g in gens:
            y = g.get(x, x)
            if y == c:
                return True
            if y not in seen:
                seen.add(y)
                stack.append(y)
    return False
