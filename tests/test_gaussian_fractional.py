"""Tests for symland.gaussian._fractional: isotypic Hessian blocks for real k, k*."""

import numpy as np
import pytest

from symland._critical import eigenvalue_multiplicities
from symland.gaussian import (
    FRACTIONAL_FAMILIES,
    SPURIOUS_FAMILIES,
    irrep_dimension,
    isotypic_blocks,
    isotypic_spectrum,
)
from symland.gaussian._families import analyse_point, fixed_point_subspace, solve_on_subspace
from symland.gaussian._fractional import _newton, check_family, isotypic_index


def _point(name, k):
    iso, z0, k0, _ = SPURIOUS_FAMILIES[name]
    z = np.asarray(z0, float)
    for kk in range(k0, k - 1, -1) if k <= k0 else range(k0, k + 1):
        z, gn = solve_on_subspace(fixed_point_subspace(kk, iso), z[None])
        z = z[0]
    return iso, z


@pytest.mark.parametrize("name,k", [("delta_sk1", 7), ("delta_s2_sk2", 8)])
def test_isotypic_spectrum_equals_full_hessian_spectrum(name, k):
    # the union of the isotypic blocks, with multiplicities dim(irrep), is the clustered k² × k² spectrum
    iso, z = _point(name, k)
    p = analyse_point(fixed_point_subspace(k, iso), z)
    small = FRACTIONAL_FAMILIES[name][0]
    spec = isotypic_spectrum(small, p.z, k, rtol=1e-7)
    full = eigenvalue_multiplicities(p.eigenvalues, rtol=1e-7)
    assert len(spec) == len(full)
    for (v, m, _), (fv, fm) in zip(spec, full):
        assert abs(v - fv) < 1e-9 and abs(m - fm) < 1e-9


def test_blocks_are_analytic_in_k():
    # smooth in real k: the midpoint value of a block eigenvalue is close to the mean of its neighbours
    small = (1,)
    iso, z7 = _point("delta_sk1", 7)
    vals = []
    for k in (6.9, 7.0, 7.1):
        z, ok = _newton(small, z7, k)
        assert ok
        vals.append(np.concatenate([b["eigenvalues"] for b in isotypic_blocks(small, z, k)]))
    vals = np.array(vals)
    assert np.max(np.abs(vals[1] - 0.5 * (vals[0] + vals[2]))) < 1e-3


def test_irrep_dimensions_add_up():
    # ΔS_{k−1}: 5 t + 5 s + (m−2,2) + (m−2,1,1) = k², with m = k − 1
    for k in (6, 9.5):
        m = k - 1
        tot = 5 + 5 * irrep_dimension("s", m) + irrep_dimension("(m-2,2)", m) + irrep_dimension("(m-2,1,1)", m)
        assert abs(tot - k * k) < 1e-12


def test_bad_input():
    with pytest.raises(ValueError, match="family"):
        check_family("delta_nope")
    with pytest.raises(ValueError, match="k:"):
        isotypic_blocks((1,), np.zeros(5), 3.5)


def test_isotypic_index_uses_zero_tolerance():
    # -5e-12 is round-off next to λ = 100 (zero_tolerance ≈ 5.6e-11 at n = 25): not negative.
    blocks = {"a": (np.array([-5e-12, 100.0]), 2.0), "b": (np.array([-0.5, 3.0]), 1.5)}
    assert isotypic_index(blocks, 5.0) == 1.5
    blocks["a"] = (np.array([-1e-9, 100.0]), 2.0)  # clearly negative
    assert isotypic_index(blocks, 5.0) == 3.5
