"""Tests for symland.gaussian: closed-form Gaussian-input loss, isotropy, symmetric critical points."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from symland.gaussian import (
    expected_loss,
    fixed_point_subspace,
    gaussian_kernel,
    gaussian_loss_function,
    sample_loss,
)
from symland.gaussian._isotropy import diagonal_isotropy_partition, isotropy_group, isotropy_partition

# Safran & Shamir's k = 7 spurious minimum (math.md §6), in their convention
# (columns are neurons): W_11, W_1j (j ≥ 2), W_i1 (i ≥ 2), W_ii, W_ij.
SAFRAN_K7_COLUMNS = dict(w11=-0.6327039049, w1j=0.2616910758, wi1=0.1859910463, wii=0.9969227988, wij=-0.0350801559)


def safran_k7_columns():
    k, p = 7, SAFRAN_K7_COLUMNS
    W = np.full((k, k), p["wij"])
    W[0, 0] = p["w11"]
    W[0, 1:] = p["w1j"]
    W[1:, 0] = p["wi1"]
    W[np.arange(1, k), np.arange(1, k)] = p["wii"]
    return W


# --- 1. kernels and closed-form loss ---------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_expected_loss_matches_monte_carlo(activation):
    W = jax.random.normal(jax.random.PRNGKey(0), (3, 4))
    V = jax.random.normal(jax.random.PRNGKey(1), (2, 4))
    a, b = jnp.array([1.0, -0.5, 2.0]), jnp.array([0.7, 1.3])
    exact = expected_loss(W, V, a, b, activation=activation)
    mean, se = sample_loss(jax.random.PRNGKey(2), W, V, a, b, activation=activation, n_samples=1_000_000)
    assert abs(float(exact - mean)) < 4 * float(se)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_kernel_matches_monte_carlo_at_special_angles(activation):
    # parallel, antiparallel, orthogonal and one zero vector
    v = jnp.array([0.3, -1.2, 0.5])
    for w in (2.0 * v, -0.5 * v, jnp.array([1.2, 0.3, 0.0]), jnp.zeros(3)):
        exact = gaussian_kernel(w, v, activation)
        x = jax.random.normal(jax.random.PRNGKey(3), (1_000_000, 3))
        act = jax.nn.relu if activation == "relu" else (lambda t: jax.scipy.special.erf(t / np.sqrt(2)))
        vals = act(x @ w) * act(x @ v)
        assert abs(float(exact - vals.mean())) <= 4 * float(vals.std()) / 1e3 + 1e-12


def test_relu_kernel_gradient_formula():
    # math.md §6: ∂K/∂w = (‖v‖ sin θ · w/‖w‖ + (π − θ) v) / (2π)
    w, v = jnp.array([1.0, 2.0, 0.5]), jnp.array([-0.3, 1.0, 2.0])
    nw, nv = jnp.linalg.norm(w), jnp.linalg.norm(v)
    th = jnp.arccos(w @ v / (nw * nv))
    expected = (nv * jnp.sin(th) * w / nw + (jnp.pi - th) * v) / (2 * jnp.pi)
    np.testing.assert_allclose(jax.grad(gaussian_kernel)(w, v), expected, rtol=1e-13)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_gradient_and_hessian_match_finite_differences(activation):
    V = jnp.eye(3)
    W = jax.random.normal(jax.random.PRNGKey(4), (3, 3))
    f = gaussian_loss_function(V, activation=activation, trainable_output=True)
    p = {"W": W, "a": jnp.array([0.5, 1.0, -1.5])}
    flat, unravel = jax.flatten_util.ravel_pytree(p)
    fl = jax.jit(lambda x: f(unravel(x)))
    grad = jax.jit(jax.grad(fl))
    g = grad(flat)
    h = 1e-5
    E = jnp.eye(flat.size)
    gfd = (jax.vmap(fl)(flat + h * E) - jax.vmap(fl)(flat - h * E)) / (2 * h)
    np.testing.assert_allclose(g, gfd, atol=1e-8)
    H = jax.jit(jax.hessian(fl))(flat)
    Hfd = (jax.vmap(grad)(flat + h * E) - jax.vmap(grad)(flat - h * E)) / (2 * h)
    np.testing.assert_allclose(H, Hfd, atol=1e-7)


def test_relu_derivatives_at_parallel_neurons_are_the_limits():
    # at w = c v the kernel is C²: autodiff must agree with finite differences of the gradient
    f = jax.jit(lambda z: gaussian_kernel(z[:3], z[3:]))
    grad = jax.jit(jax.grad(f))
    for scale in (2.0, -0.5, 1.0):
        v = jnp.array([1.0, 2.0, 3.0])
        z = jnp.concatenate([scale * v, v])
        H = jax.jit(jax.hessian(f))(z)
        h = 1e-4
        Hfd = (jax.vmap(grad)(z + h * jnp.eye(6)) - jax.vmap(grad)(z - h * jnp.eye(6))) / (2 * h)
        assert np.all(np.isfinite(H))
        np.testing.assert_allclose(H, Hfd, atol=1e-4)
    np.testing.assert_allclose(jax.grad(gaussian_kernel)(2 * v, v), v / 2, rtol=1e-14)
    np.testing.assert_allclose(jax.grad(gaussian_kernel)(-2 * v, v), 0 * v, atol=1e-14)


def test_relu_no_nan_at_zero_neuron():
    V = jnp.eye(3)
    W = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.2, 0.0], [0.0, 0.0, 1.0]])
    f = gaussian_loss_function(V)
    assert np.isfinite(f(W))
    g = jax.jit(jax.grad(f))(W)
    H = jax.jit(jax.hessian(f))(W)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(H))
    # documented convention: ∂K(w, v)/∂w = v/4 at w = 0
    np.testing.assert_allclose(jax.grad(gaussian_kernel)(jnp.zeros(3), jnp.array([1.0, 2.0, 3.0])),
                               jnp.array([0.25, 0.5, 0.75]))


def test_zero_loss_at_teacher():
    V = jax.random.normal(jax.random.PRNGKey(5), (4, 4))
    for act in ("relu", "erf"):
        assert abs(float(expected_loss(V, V, activation=act))) < 1e-13
        assert float(jnp.max(jnp.abs(jax.grad(gaussian_loss_function(V, activation=act))(V)))) < 1e-13


# --- bad input --------------------------------------------------------------------


def test_bad_activation_names_supported():
    with pytest.raises(ValueError, match="activation.*supported: relu, erf"):
        expected_loss(jnp.eye(2), jnp.eye(2), activation="tanh")


def test_bad_teacher_shape():
    with pytest.raises(ValueError, match="teacher"):
        expected_loss(jnp.ones((3, 4)), jnp.ones((3, 5)))


def test_bad_k():
    with pytest.raises(ValueError, match="^k:"):
        fixed_point_subspace(1, "S_k")


def test_bad_isotropy_name():
    with pytest.raises(ValueError, match="^isotropy:"):
        fixed_point_subspace(5, "A_5")
    with pytest.raises(ValueError, match="^isotropy:"):
        fixed_point_subspace(5, (2, 2))


# --- 2. isotropy and fixed-point subspaces ------------------------------------------


@pytest.mark.parametrize(
    "k,isotropy,sizes,dim",
    [(5, "S_k", (5,), 2), (7, "ΔS_{k-1}", (1, 6), 5), (8, "Δ(S_2×S_{k-2})", (2, 6), 6), (8, "S_3 x S_{k-3}", (3, 5), 6)],
)
def test_fixed_point_subspace_dimensions(k, isotropy, sizes, dim):
    assert isotropy_partition(k, isotropy) == sizes
    sp = fixed_point_subspace(k, isotropy)
    assert sp.dim == dim == np.linalg.matrix_rank(sp.basis())


@pytest.mark.parametrize("k,isotropy", [(5, "S_k"), (7, "S_{k-1}"), (6, "S_2xS_{k-2}"), (7, (2, 3, 2))])
@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_restricted_loss_equals_full_loss(k, isotropy, activation):
    sp = fixed_point_subspace(k, isotropy)
    z = jax.random.normal(jax.random.PRNGKey(k), (sp.dim,))
    W = sp.to_full(z)
    full = expected_loss(W, jnp.eye(k), activation=activation)
    assert abs(float(sp.restricted_loss(z, activation) - full)) < 1e-12
    np.testing.assert_allclose(sp.from_full(W), z, rtol=1e-14)
    # W(z) is fixed by the group: P_π W P_πᵀ = W for π permuting inside blocks
    blocks = diagonal_isotropy_partition(W)
    assert [len(b) for b in blocks] == sorted(sp.sizes) or len(blocks) == len(sp.sizes)
    # symmetric criticality: the full gradient lies in Fix
    g = jax.jit(jax.grad(gaussian_loss_function(jnp.eye(k), activation=activation)))(W)
    np.testing.assert_allclose(sp.to_full(sp.from_full(g)), g, atol=1e-13)


def test_isotropy_group_of_safran_point_is_delta_s6():
    W = safran_k7_columns().T  # rows are neurons
    group = isotropy_group(W)
    assert len(group) == 720
    assert all(pi == rho and pi[0] == 0 for pi, rho in group)
    assert diagonal_isotropy_partition(W) == [[0], [1, 2, 3, 4, 5, 6]]


# --- 2. symmetric critical points ---------------------------------------------------

from symland.gaussian import (  # noqa: E402
    DECAY_CONSTANT,
    SAFRAN_SHAMIR_K7,
    continue_family,
    critical_value_decay,
    full_space_derivatives,
    global_minimum_spectrum,
    safran_shamir_family,
    symmetric_critical_points,
)
from symland._critical import eigenvalue_multiplicities  # noqa: E402


@pytest.fixture(scope="module")
def safran_family():
    return safran_shamir_family([6, 7, 8, 9])


def test_safran_k7_point_is_a_critical_minimum_in_row_convention(safran_family):
    W_rows = safran_k7_columns().T
    _, g, _ = full_space_derivatives(W_rows)
    assert np.max(np.abs(g)) < 1e-9  # critical to the printed digits
    _, g_wrong, _ = full_space_derivatives(safran_k7_columns())
    assert np.max(np.abs(g_wrong)) > 1e-2  # Safran's matrix untransposed is not critical
    p = safran_family[7]
    assert p.status == "converged" and p.grad_norm <= 1e-12
    np.testing.assert_allclose(p.W, W_rows, atol=2e-10)
    assert p.kind == "minimum" and p.index == 0 and p.min_eigenvalue > 1e-2
    assert p.partition == [[0], [1, 2, 3, 4, 5, 6]]


def test_multistart_finds_safran_point(safran_family):
    pts = symmetric_critical_points(7, "S_{k-1}", n_starts=48, seed=1)
    ref = safran_family[7]
    assert any(abs(p.loss - ref.loss) < 1e-12 and p.kind == "minimum" for p in pts)
    assert pts[0].loss < 1e-12  # the global minimum W = I lies in every Fix subspace
    assert all(p.grad_norm <= 1e-12 for p in pts)


def test_safran_family_small_k_range(safran_family):
    fam = safran_family
    losses = [fam[k].loss for k in (6, 7, 8, 9)]
    assert losses == sorted(losses, reverse=True)
    assert all(fam[k].kind == "minimum" for k in fam)
    # the Hessian at a ΔS_{k−1} point has 12 distinct eigenvalues
    assert all(len(fam[k].multiplicities) == 12 for k in fam)


def test_delta_sk_family_becomes_minimum_at_k6():
    fam = continue_family("S_k", [-0.7493, 0.2481], 8, [5, 6])
    assert fam[5].kind == "strict saddle" and fam[6].kind == "minimum"


@pytest.mark.slow
def test_delta_s2_sk2_family_becomes_minimum_at_k8():
    # Δ(S_2×S_{k−2}): the abstract says spurious minima for k >= 9; numerically
    # this family (two 'flipped' neurons) is a minimum from k = 8
    z12 = [-0.7551, 0.129, 0.1101, 0.1579, 1.0033, -0.0243]
    fam = continue_family("S_2xS_{k-2}", z12, 12, [7, 8])
    assert fam[7].kind == "strict saddle" and fam[8].kind == "minimum"
    assert fam[8].min_eigenvalue > 1e-3 and fam[8].partition == [[0, 1], [2, 3, 4, 5, 6, 7]]


@pytest.mark.parametrize("k", [3, 4, 7, 12])
def test_global_minimum_spectrum_closed_form(k):
    _, _, H = full_space_derivatives(np.eye(k))
    numeric = eigenvalue_multiplicities(np.linalg.eigvalsh(H), rtol=1e-8)
    closed = global_minimum_spectrum(k)
    assert [m for _, m in numeric] == [m for _, m in closed]
    np.testing.assert_allclose([v for v, _ in numeric], [v for v, _ in closed], atol=1e-13)
    assert sum(m for _, m in closed) == k * k


def test_decay_constant_small():
    fit = critical_value_decay(1000)
    assert fit.status == "converged" and fit.to_dict()["status"] == "converged"
    assert abs(fit.a - DECAY_CONSTANT) < 2e-6
    assert abs(fit.a - 0.3) > 2e-3  # "a ≈ 0.3" is a rounding, not the constant


@pytest.mark.slow
def test_decay_constant_full():
    fit = critical_value_decay(10_000)
    assert abs(fit.a - DECAY_CONSTANT) < 3 * fit.a_uncertainty + 1e-8
    assert fit.a_uncertainty < 1e-6


# --- over-parameterisation ----------------------------------------------------------

from symland.gaussian import split_gaussian_neuron, split_scan, trainable_output_point  # noqa: E402


def test_split_gaussian_neuron_preserves_function():
    W = jax.random.normal(jax.random.PRNGKey(7), (3, 3))
    a = jnp.array([1.0, 0.5, -2.0])
    W2, a2 = split_gaussian_neuron(W, a, 1, 0.3)
    assert abs(float(expected_loss(W, jnp.eye(3), a) - expected_loss(W2, jnp.eye(3), a2))) < 1e-13
    np.testing.assert_array_equal(W2[3], W[1])
    np.testing.assert_allclose(a2, [1.0, 0.15, -2.0, 0.35])
    with pytest.raises(ValueError, match="neuron: neuron index 3 out of range"):
        split_gaussian_neuron(W, a, 3, 0.3)
    with pytest.raises(ValueError, match="neuron: neuron index must be an integer, got 1.0"):
        split_gaussian_neuron(W, a, 1.0, 0.3)


def test_splitting_turns_spurious_minimum_into_saddle(safran_family):
    p = safran_family[6]
    base = trainable_output_point(p.W)
    # ReLU homogeneity: a critical point of the a = 1 problem is critical in a too
    np.testing.assert_allclose(base.a, 1.0, atol=1e-10)
    assert base.status == "converged" and base.point.index == 0
    assert base.point.nullity == 6 and base.point.kind == "degenerate"  # k rescaling directions
    s = split_scan(p.W, 0, [-0.25, 0.5, 1.25], base=base)
    assert np.all(s.grad_norm < 1e-10)  # Fukumizu–Amari Th. 1: split points are critical
    assert s.n_negative[1] > 0 and s.n_negative[0] == 0 and s.n_negative[2] == 0
    assert s.points[1].kind == "strict saddle"
    d = s.to_dict()
    assert d["base"]["status"] == "converged" and d["points"][1]["index"] == s.n_negative[1]


# --- command line -------------------------------------------------------------------


def _spurious_main(argv):
    import argparse

    from symland.cli import spurious

    parser = argparse.ArgumentParser(prog="symland")
    sub = parser.add_subparsers(dest="command", required=True)
    spurious.add_parser(sub)
    args = parser.parse_args(["spurious", *argv])
    return args.func(args)


def test_cli_spurious_writes_json_and_figures(tmp_path):
    import json

    assert _spurious_main(["--k", "6:7", "--families", "delta_sk1", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "spurious.json").read_text())
    pts = data["families"]["delta_sk1"]["points"]
    assert set(pts) == {"6", "7"}
    assert pts["7"]["index"] == 0 and pts["7"]["grad_norm"] <= 1e-12
    assert abs(pts["7"]["loss"] - 0.0232027149135) < 1e-12
    assert (tmp_path / "kL.png").exists() and (tmp_path / "spectrum_k7.png").exists()


def test_cli_spurious_bad_input(tmp_path, capsys):
    from symland.cli import main

    assert main(["spurious", "--k", "1:3", "--out", str(tmp_path / "a")]) == 2
    assert "k: must be ≥ 2" in capsys.readouterr().err
    assert main(["spurious", "--k", "6", "--families", "nope", "--out", str(tmp_path / "b")]) == 2
    assert "families: unknown family 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_main_turns_bad_input_into_exit_code_2(tmp_path, capsys):
    pytest.importorskip("symland.cli.toy")  # the dispatcher imports every command
    from symland.cli import main

    assert main(["spurious", "--k", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("symland spurious: error: k:") and err.count("\n") == 1


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_structured_hessian_equals_dense_autodiff(activation):
    # `full_space_derivatives` uses `loss_hessian` (per-pair kernel Hessians, zero-padded)
    W = jax.random.normal(jax.random.PRNGKey(0), (4, 4))
    W = W.at[2].set(2 * W[0]).at[3].set(0.0)  # a parallel pair and a zero neuron
    dense = jax.jit(jax.hessian(gaussian_loss_function(jnp.eye(4), activation=activation)))(W).reshape(16, 16)
    _, _, H = full_space_derivatives(W, activation=activation)
    np.testing.assert_allclose(H, dense, atol=1e-13)


# --- empirical frequency ------------------------------------------------------------


def test_align_rows_columns_recovers_group_element(safran_family):
    from symland.gaussian import align_rows_columns

    W = safran_family[8].W
    rng = np.random.default_rng(0)
    pi, rho = rng.permutation(8), rng.permutation(8)
    moved = W[np.ix_(pi, rho)]
    dist, aligned = align_rows_columns(moved, W)
    assert dist < 1e-12
    # a different family member is far from it
    assert align_rows_columns(safran_family[8].W + 0.01, W)[0] > 1e-3


@pytest.mark.slow
def test_empirical_frequency_small():
    from symland.gaussian import empirical_frequency

    fr = empirical_frequency(8, n_runs=32, steps=1500)
    assert sum(fr.counts.values()) == 32
    assert fr.counts.get("global", 0) > 0
    assert "not converged" not in fr.counts
