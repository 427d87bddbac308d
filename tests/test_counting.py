"""Exact counting (Brea et al. 2019, Prop. 1, Lemma 1; Şimşek et al. 2021)."""

import csv
import importlib.util
import itertools
import json
import math
from collections import Counter
from fractions import Fraction

import pytest

import symland.cli
from symland import counting
from symland.counting import (
    T,
    T_lower_bound,
    c_K,
    count_permutation_points,
    crossover_h,
    enumerate_global_minimum_subspaces,
    enumerate_permutation_points,
    enumerate_symmetry_induced_subspaces,
    global_minima_subspaces,
    stirling2,
    subspace_dimension,
    symmetry_induced_subspaces,
)


def _stirling_table(N):
    """S(n, k) for n, k <= N by the textbook recurrence S(n,k) = k S(n-1,k) + S(n-1,k-1)."""
    S = [[0] * (N + 1) for _ in range(N + 1)]
    S[0][0] = 1
    for n in range(1, N + 1):
        for k in range(1, n + 1):
            S[n][k] = k * S[n - 1][k] + S[n - 1][k - 1]
    return S


# ---------------------------------------------------------------- Stirling numbers


def test_stirling2_matches_recurrence_both_branches():
    N = 60  # covers the associated-Stirling branch (small n-k) and the alternating sum
    S = _stirling_table(N)
    for n in range(N + 1):
        for k in range(n + 2):
            expected = S[n][k] if k <= n else 0
            assert stirling2(n, k) == expected, (n, k)


# ---------------------------------------------------------------- T(K, n), brute force


@pytest.mark.parametrize("n", range(2, 9))
def test_T_matches_brute_force(n):
    for K in range(1, n):
        points = list(enumerate_permutation_points(K, n))
        assert len(set(points)) == len(points)
        assert all(len(p) == n and set(p) == set(range(n - K)) for p in points)
        assert Fraction(len(points), math.factorial(n)) == T(K, n), (K, n)


def test_brute_force_enumerator_is_complete_for_small_sizes():
    # Independent of the enumerator: filter all maps n -> n-K by surjectivity.
    for n in range(2, 6):
        for K in range(1, n):
            naive = {p for p in itertools.product(range(n - K), repeat=n) if len(set(p)) == n - K}
            assert set(enumerate_permutation_points(K, n)) == naive


def test_T_prop1_closed_forms():
    C = math.comb
    for n in range(2, 60):
        assert T(1, n) == Fraction(C(n - 1, 1), 2)
        if n > 2:
            assert T(2, n) == Fraction(C(n - 2, 1), 6) + Fraction(C(n - 2, 2), 4)
        if n > 3:
            assert T(3, n) == (Fraction(C(n - 3, 1), 24) + Fraction(C(n - 3, 2), 6)
                               + Fraction(C(n - 3, 3), 8))


def test_T_examples_from_the_paper():
    assert T(1, 3) == 1  # App. A, Fig. 6: 6 permutation points, 3! minima
    assert T(2, 4) == Fraction(7, 12)
    assert isinstance(T(5, 9), Fraction)


def test_T_K4_by_integer_partitions():
    # Block sizes of n into n-4 parts: 5, 4+2, 3+3, 3+2+2, 2+2+2+2 (App. C pattern).
    C = math.comb
    for n in range(5, 40):
        L = n - 4
        expected = (Fraction(L, 120) + Fraction(L * (L - 1), 24 * 2) + Fraction(C(L, 2), 36)
                    + Fraction(L * C(L - 1, 2), 6 * 4) + Fraction(C(L, 4), 16))
        assert T(4, n) == expected


def test_T_lower_bound():
    for n in range(2, 80):
        for K in range(1, n):
            b = T_lower_bound(K, n)
            assert isinstance(b, Fraction)
            if 2 * K <= n:
                assert T(K, n) >= b > 0
            else:
                assert b == 0
    # strict once other partitions exist
    assert T(2, 6) > T_lower_bound(2, 6)
    assert T(1, 10) == T_lower_bound(1, 10)


# ---------------------------------------------------------------- c_K (Lemma 1)


@pytest.mark.parametrize("K", [1, 2, 3, 4, 5])
def test_c_K_corrected_and_paper_value_off_by_e_to_the_K(K):
    n = 10**6
    ratio = T_lower_bound(K, n) / Fraction(n) ** K
    right = c_K(K)
    assert right == Fraction(1, 2**K * math.factorial(K))
    assert abs(float(ratio / right) - 1) < 1e-4
    paper = 1 / (2**K * math.e**K * math.factorial(K))  # App. B, eq. (9)
    assert float(ratio) / paper == pytest.approx(math.e**K, rel=1e-4)
    assert float(ratio) / paper > 2.7
    # T itself has the same leading constant
    assert abs(float(T(K, 10**4) / Fraction(10**4) ** K / right) - 1) < 1e-2


# ---------------------------------------------------------------- multi-layer counts


def test_count_permutation_points_brute_force_small_network():
    widths = (2, 3, 4, 1)
    K = 1
    res = count_permutation_points(widths, K)
    perms = {k: list(itertools.permutations(range(widths[k]))) for k in (1, 2)}
    # layer 1: a surjection of 3 slots onto 2 vectors, any permutation of layer 2
    brute1 = sum(1 for _ in itertools.product(enumerate_permutation_points(K, 3), perms[2]))
    brute2 = sum(1 for _ in itertools.product(perms[1], enumerate_permutation_points(K, 4)))
    assert res.per_layer == (brute1, brute2) == (6 * 24, 6 * 36)
    assert res.global_minima == 6 * 24
    assert res.total == brute1 + brute2
    assert res.ratio == Fraction(res.total, res.global_minima) == T(1, 3) + T(1, 4)
    assert res.lower_bound_factor == Fraction(2, 2) + Fraction(3, 2)
    assert res.undefined_layers == ()


def test_count_permutation_points_undefined_layers_and_big_ints():
    res = count_permutation_points((5, 2, 30, 3, 1), K=3)
    assert res.per_layer[0] == 0 and res.per_layer[2] == 0
    assert res.undefined_layers == (1, 3)
    assert res.per_layer[1] == math.factorial(27) * stirling2(30, 27) * 2 * 6
    assert count_permutation_points((5, 2, 30, 3, 1), K=2).undefined_layers == (1,)

    big = count_permutation_points((784, 1000, 1000, 10), K=20)
    assert big.global_minima == math.factorial(1000) ** 2
    expected = math.factorial(980) * stirling2(1000, 980) * math.factorial(1000)
    assert big.per_layer == (expected, expected)
    assert big.total == 2 * expected
    # exact: divisible by 980! and the ratio is exactly 2 T(20, 1000)
    assert big.total % math.factorial(980) == 0
    assert big.ratio == 2 * T(20, 1000)
    assert big.ratio >= big.lower_bound_factor
    assert big.total.bit_length() > 17000  # far beyond float range, still exact


def test_T_huge_exact():
    t = T(50, 1000)
    assert t.denominator * math.perm(1000, 50) % t.denominator == 0
    assert t * math.perm(1000, 50) == stirling2(1000, 950)
    assert T(1, 10**6) == Fraction(10**6 - 1, 2)


# ---------------------------------------------------------------- Şimşek et al. 2021


@pytest.mark.parametrize("r_star", [1, 2, 3])
@pytest.mark.parametrize("h", range(0, 5))
@pytest.mark.parametrize("d", [1, 3])
def test_global_minima_subspaces_brute_force(r_star, h, d):
    m = r_star + h
    labels = list(enumerate_global_minimum_subspaces(r_star, m))
    assert len(set(labels)) == len(labels)
    res = global_minima_subspaces(r_star, m, d=d)
    assert res.count == len(labels)
    assert res.count == sum(math.comb(m, j) * math.factorial(r_star) * stirling2(m - j, r_star)
                            for j in range(h + 1))
    dims = Counter(subspace_dimension(lab, d=d) for lab in labels)
    assert res.dimensions == dict(dims)
    assert min(dims) >= h
    if d == 1:
        assert set(dims) == {h}


@pytest.mark.parametrize("r", [1, 2, 3, 4])
def test_symmetry_induced_subspaces_brute_force(r):
    for m in range(r, r + 5):
        labels = list(enumerate_symmetry_induced_subspaces(r, m))
        res = symmetry_induced_subspaces(r, m)
        assert res.count == len(set(labels)) == len(labels)
        assert res.dimensions == dict(Counter(subspace_dimension(lab) for lab in labels))
        assert res.dimensions == {m - r: res.count}


def test_subspace_dimension_example():
    # teacher r* = 2, student m = 5: two copies of 0, one of 1, two zero-type, d = 3
    lab = (0, counting.ZERO_TYPE, 1, 0, counting.ZERO_TYPE)
    assert subspace_dimension(lab, d=3) == 2 * 3 + 1
    assert subspace_dimension(lab, d=3, n_out=4) == 2 * 3 + 1 * 4   # (s_i − 1)·n_out
    with pytest.raises(ValueError, match="n_out"):
        subspace_dimension(lab, n_out=0)


def test_counts_to_dict_are_exact_and_json_ready():
    r = count_permutation_points((784, 100, 100, 10), K=2).to_dict()
    assert r["ratio"] == "14455/6" and r["per_layer"][0] == count_permutation_points(
        (784, 100, 100, 10), K=2).per_layer[0]
    json.dumps(r)
    assert global_minima_subspaces(2, 4, d=3).to_dict() == {"count": 50,
                                                            "dimensions": {"2": 14, "4": 24, "6": 12}}


def test_crossover():
    # G(r*-1, r*) / T(r*, r*) = (r*-1)/2: G wins at h = 0 only for r* >= 4
    for rs in range(2, 10):
        ratio = Fraction(symmetry_induced_subspaces(rs - 1, rs).count,
                         global_minima_subspaces(rs, rs).count)
        assert ratio == Fraction(rs - 1, 2)
    assert [crossover_h(rs) for rs in range(2, 12)] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert crossover_h(100) == 26 and crossover_h(100, summed=True) == 48
    assert crossover_h(6, r=2) <= crossover_h(6)
    # once T overtakes G it stays ahead (checked over a long range)
    for rs in (4, 10):
        h0 = crossover_h(rs)
        for h in range(h0, h0 + 40):
            m = rs + h
            assert global_minima_subspaces(rs, m).count > symmetry_induced_subspaces(rs - 1, m).count
        m = rs + h0 - 1
        if h0 > 0:
            assert global_minima_subspaces(rs, m).count <= symmetry_induced_subspaces(rs - 1, m).count


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: T(3, 3), "K"),
        (lambda: T(4, 3), "K"),
        (lambda: T(0, 3), "K"),
        (lambda: T(-1, 3), "K"),
        (lambda: T(1.0, 3), "K"),
        (lambda: T(True, 3), "K"),
        (lambda: T(1, 2.5), "n"),
        (lambda: T(1, "5"), "n"),
        (lambda: T_lower_bound(2, 2), "K"),
        (lambda: c_K(0), "K"),
        (lambda: c_K(1.5), "K"),
        (lambda: count_permutation_points((2, 3, 1), 0), "K"),
        (lambda: count_permutation_points((2, -3, 1), 1), "widths"),
        (lambda: count_permutation_points((2, 3.0, 1), 1), "widths"),
        (lambda: count_permutation_points((2, 3), 1), "widths"),
        (lambda: global_minima_subspaces(3, 2), "m"),
        (lambda: global_minima_subspaces(0, 2), "r_star"),
        (lambda: global_minima_subspaces(2, 3, d=0), "d"),
        (lambda: global_minima_subspaces(2, 3, d=False), "d"),
        (lambda: symmetry_induced_subspaces(4, 3), "m"),
        (lambda: symmetry_induced_subspaces(2.0, 3), "r"),
        (lambda: crossover_h(1), "r_star"),
        (lambda: crossover_h(4, r=4), "r"),
        (lambda: list(enumerate_permutation_points(2, 2)), "K"),
        (lambda: list(enumerate_global_minimum_subspaces(3, 2)), "m"),
    ],
)
def test_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli(monkeypatch):
    # Only the subcommands present on this checkout (the dispatcher imports them all).
    present = tuple(c for c in symland.cli.COMMANDS
                    if importlib.util.find_spec(f"symland.cli.{c}") is not None)
    assert "count" in present
    monkeypatch.setattr(symland.cli, "COMMANDS", present)
    return symland.cli.main


def test_cli_T_end_to_end(cli, tmp_path, capsys):
    out = tmp_path / "o"
    rc = cli(["count", "T", "--K", "1:3", "--n", "2:6,40", "--csv", str(out / "t.csv"),
              "--json", str(out / "t.json"), "--plot", str(out / "t.png")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| 4 | 3/2 | 7/12 | 1/24 |" in text
    assert "| 2 | 1/2 |  |  |" in text  # K >= n from a range: blank
    data = json.loads((out / "t.json").read_text())
    rec = {(r["K"], r["n"]): r for r in data["records"]}
    assert (2, 2) not in rec
    assert Fraction(rec[2, 4]["T"]) == Fraction(7, 12)
    assert Fraction(rec[3, 40]["lower_bound"]) == T_lower_bound(3, 40)
    rows = list(csv.DictReader((out / "t.csv").read_text().splitlines()))
    assert {(int(r["K"]), int(r["n"])) for r in rows} == set(rec)
    assert (out / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_big_values_scientific_in_terminal_exact_in_json(cli, tmp_path, capsys):
    rc = cli(["count", "G", "--r", "30", "--m", "200", "--json", str(tmp_path / "g.json")])
    assert rc == 0
    assert "e+" in capsys.readouterr().out
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["records"][0]["G"] == math.factorial(30) * stirling2(200, 30)


def test_cli_minima_and_G(cli, tmp_path, capsys):
    rc = cli(["count", "minima", "--r", "1:4", "--m", "1:8", "--d", "2",
              "--json", str(tmp_path / "m.json"), "--plot", str(tmp_path / "m.png")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "r*=4: h=1" in text
    data = json.loads((tmp_path / "m.json").read_text())
    rec = {(r["r_star"], r["m"]): r for r in data["records"]}
    assert rec[2, 5]["T"] == 180
    assert {int(k): v for k, v in rec[2, 5]["dimensions"].items()} == \
        global_minima_subspaces(2, 5, d=2).dimensions
    assert (tmp_path / "m.png").exists()
    rc = cli(["count", "G", "--r", "1:3", "--m", "2:6", "--csv", str(tmp_path / "g.csv"),
              "--plot", str(tmp_path / "g.png")])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "g.csv").read_text().splitlines()))
    assert {(int(r["r"]), int(r["m"])): int(r["G"]) for r in rows}[3, 5] == 150
    assert (tmp_path / "g.png").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["count", "T", "--K", "5", "--n", "3"],  # explicit K >= n
        ["count", "T", "--K", "0:2", "--n", "5"],
        ["count", "T", "--K", "2.5", "--n", "5"],
        ["count", "T", "--K", "3:1", "--n", "5"],
        ["count", "T", "--K", "x", "--n", "5"],
        ["count", "G", "--r", "4", "--m", "3"],  # explicit m < r
        ["count", "minima", "--r", "2", "--m", "3", "--d", "0"],
    ],
)
def test_cli_bad_input(cli, argv, capsys):
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("symland count") and ": error: " in err and err.count("\n") == 1
