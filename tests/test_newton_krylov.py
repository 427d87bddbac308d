import jax
import jax.numpy as jnp
import numpy as np
import pytest

import symland as s
import symland._path as path_module
from symland._newton_krylov import (FlatProblem, input_whitening, matrix_free_paths,
                                    minimise_matrix_free, refine_matrix_free)

# The converging softplus toy of tests/test_path.py (seed 6, pair 2 & 3).
SEED, L_, M_ = 6, 2, 3
STEPS = 12


@pytest.fixture(scope="module")
def toy_paths():
    prob = s.toy_problem("softplus", seed=SEED)
    kw = dict(steps=STEPS)
    dense = s.find_permutation_path(prob.model, prob.teacher, prob.x, prob.y, 1, L_, M_,
                                    method="dense", **kw)
    free = s.find_permutation_path(prob.model, prob.teacher, prob.x, prob.y, 1, L_, M_,
                                   method="matrix-free", gtol=1e-10, **kw)
    return prob, dense, free


def test_matrix_free_steps_agree_with_dense_solver(toy_paths):
    """Both solvers reach ‖∇L‖∞ ≤ 1e-10 at every δ step and find the same constrained loss.

    Measured (softplus seed 6, pair 2 & 3, 12 steps): the parameters agree to ≤ 5e-7 for
    the first five steps; from step 8 on (δ ≲ 1e-3·δ₀) the fixed-δ problem is nearly
    degenerate (the split of the output weight between l and m is almost free) and the
    two continuations end on different critical points (‖Δθ‖∞ up to 0.9) whose losses
    agree to 8e-8 relative. So θ is compared only while δ is large.
    """
    _, dense, free = toy_paths
    assert dense.all_converged and free.all_converged, (dense.status, free.status)
    assert free.method == "matrix-free" and dense.method == "dense"
    for a, b in list(zip(dense.params, free.params))[:5]:
        for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_allclose(u, v, atol=1e-6, rtol=0)
    np.testing.assert_allclose(free.loss, dense.loss, atol=1e-20, rtol=1e-6)
    assert np.all(free.grad_norm <= 1e-10 * np.maximum(1.0, free.loss))


def test_matrix_free_permutation_point_report(toy_paths):
    _, dense, free = toy_paths
    r, rd = free.permutation_point_report, dense.permutation_point_report
    assert r.part == rd.part == "all"  # 21 parameters: dense spectrum (Lanczos above DENSE_THRESHOLD)
    assert r.grad_norm <= 1e-8
    assert r.loss == pytest.approx(rd.loss, rel=1e-8)
    np.testing.assert_allclose(r.eigenvalues, rd.eigenvalues, atol=1e-8)
    assert r.index == rd.index and str(r.kind) == str(rd.kind)
    record = free.to_dict()
    assert record["method"] == "matrix-free"


def test_auto_dispatch_by_size(monkeypatch):
    prob = s.toy_problem("softplus", seed=SEED)
    monkeypatch.setattr(path_module, "DENSE_THRESHOLD", 10)
    p = s.find_permutation_path(prob.model, prob.teacher, prob.x, prob.y, 1, L_, M_, steps=3)
    assert p.method == "matrix-free"
    with pytest.raises(ValueError, match="method"):
        s.find_permutation_path(prob.model, prob.teacher, prob.x, prob.y, 1, L_, M_, steps=3,
                                method="sparse")


def test_reports_non_convergence():
    rosenbrock = FlatProblem(lambda v: jnp.sum(100.0 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2))
    r = minimise_matrix_free(rosenbrock, -jnp.ones(6), max_steps=2)
    assert r.status == "max_steps" and r.grad_norm > 1e-8 and r.steps == 2
    full = minimise_matrix_free(rosenbrock, -jnp.ones(6), max_steps=500)
    assert full.status == "converged" and full.grad_norm <= 1e-8
    np.testing.assert_allclose(full.x, 1.0, atol=1e-7)


def test_scipy_round_off_stop_is_continued_to_gtol():
    """scipy's trust-ncg stops where L ≫ ‖∇L‖² makes its decrease ratio round-off ("A bad
    approximation …", status 2), short of gtol·max(1, L); minimise_matrix_free goes on with
    its own trust region, which judges such steps by the gradient."""
    from scipy.optimize import minimize

    f = lambda v: 1e4 + 0.5 * (v[0] ** 2 + 1e-2 * v[1] ** 2) + 0.25 * jnp.sum(v ** 4) + v[0] * v[1] ** 2
    g = jax.grad(f)
    v0 = np.array([1.0, 2.0])
    alone = minimize(lambda v: (float(f(v)), np.asarray(g(v))), v0, jac=True, method="trust-ncg",
                     hessp=lambda v, t: np.asarray(jax.jvp(g, (v,), (jnp.asarray(t),))[1]),
                     options={"gtol": 1e-300, "maxiter": 200})
    tol = 1e-13 * 1e4
    assert alone.status == 2 and np.max(np.abs(np.asarray(g(alone.x)))) > tol  # the stop being tested
    r = minimise_matrix_free(FlatProblem(f), jnp.asarray(v0), gtol=1e-13)
    assert r.status == "converged" and r.grad_norm <= tol


def test_reports_escape_to_infinity():
    # inf over v0 is approached only as v0 → ∞: a channel at infinity.
    channel = FlatProblem(lambda v: jnp.exp(-v[0]) + (v[1] - 1.0) ** 2)
    r = minimise_matrix_free(channel, jnp.zeros(2), escape=lambda v: float(v[0]) > 8.0,
                             max_steps=1000)
    assert r.status == "escape" and float(r.x[0]) > 8.0


def test_refine_reaches_a_saddle():
    saddle = FlatProblem(lambda v: v[0] ** 2 - v[1] ** 2 + 0.3 * v[0] * v[1] ** 2 + v[2] ** 4)
    r = refine_matrix_free(saddle, jnp.array([0.05, -0.04, 0.0]), gtol=1e-12)
    assert r.status == "converged" and r.grad_norm <= 1e-12
    np.testing.assert_allclose(r.x[:2], 0.0, atol=1e-12)


def test_refine_solves_its_newton_systems_inexactly(monkeypatch):
    """MINRES stops at relative residual min(`REFINE_FORCING`, ‖∇L‖/‖∇L(v0)‖), at least `REFINE_RTOL`: loose
    far from the point, tight near it (an Eisenstat–Walker forcing term, so the convergence stays quadratic),
    and the refinement still reaches ‖∇L‖∞ ≤ 1e−12 at a saddle."""
    import scipy.sparse.linalg as sla

    import symland._newton_krylov as nk

    tols, real = [], sla.minres

    def recorded(A, b, **kw):
        tols.append((kw["rtol"], float(np.linalg.norm(b))))
        return real(A, b, **kw)

    monkeypatch.setattr(sla, "minres", recorded)
    saddle = FlatProblem(lambda v: v[0] ** 2 - v[1] ** 2 + 0.3 * v[0] * v[1] ** 2 + v[2] ** 4 + 0.1 * v[0] ** 3)
    r = refine_matrix_free(saddle, jnp.array([0.5, -0.4, 0.0]), gtol=1e-12)
    assert r.status == "converged" and r.grad_norm <= 1e-12
    g0 = tols[0][1]
    assert tols[0][0] == nk.REFINE_FORCING and len(tols) >= 3
    for rtol, g in tols:
        assert rtol == max(nk.REFINE_RTOL, min(nk.REFINE_FORCING, g / g0))
    assert tols[-1][0] < 1e-3 * tols[0][0]


def test_whitening_is_an_exact_change_of_variables(monkeypatch):
    x = np.random.default_rng(0).standard_normal((50, 4)) * np.array([1.0, 1e-3, 10.0, 0.0])
    P, P_inv = input_whitening(x)
    np.testing.assert_allclose(P @ P_inv, np.eye(5), atol=1e-8)
    np.testing.assert_allclose(P, P.T)
    model = s.MLP((4, 3, 2), "softplus")
    theta = model.init(jax.random.PRNGKey(1))
    y = model.apply(theta, x) + 0.1
    from symland._newton_krylov import path_problem
    from jax.flatten_util import ravel_pytree

    prob = path_problem(model, 1, "mse", jnp.asarray(x))
    v = ravel_pytree(path_module.free_parameters(theta, 1, 0, 1))[0]
    s_var = prob.to_s(v)
    np.testing.assert_allclose(prob.to_v(s_var), v, atol=1e-10)
    args = (0.3, 0, 1, jnp.asarray(x), y)
    f, gs, gv = prob.value_grads(s_var, *args)
    direct = jax.value_and_grad(lambda w: s.mse(model, path_module.effective_params(
        ravel_pytree(theta)[1](w), 1, 0, 1, 0.3), jnp.asarray(x), y))(v)
    assert float(f) == pytest.approx(float(direct[0]), rel=1e-12)
    np.testing.assert_allclose(gv, direct[1], atol=1e-12)
    # The HVP in s is M H M t: check against finite differences of ∇_s.
    t = jnp.asarray(np.random.default_rng(2).standard_normal(v.size))
    eps = 1e-6
    fd = (prob.value_grads(s_var + eps * t, *args)[1] - prob.value_grads(s_var - eps * t, *args)[1]) / (2 * eps)
    np.testing.assert_allclose(prob.hvp(s_var, t, *args), fd, rtol=1e-5, atol=1e-7)
    # hvp_at (the gradient linearised at s_var; forced at this size) is the same product, at another
    # point and δ too
    import symland._newton_krylov as nk

    monkeypatch.setattr(nk, "LINEARISE_THRESHOLD", 0)
    np.testing.assert_allclose(prob.hvp_at(s_var, *args)(t), prob.hvp(s_var, t, *args), rtol=1e-12, atol=1e-12)
    args2 = (0.2, 0, 1, jnp.asarray(x), y)
    np.testing.assert_allclose(prob.hvp_at(1.1 * s_var, *args2)(t), prob.hvp(1.1 * s_var, t, *args2),
                               rtol=1e-12, atol=1e-12)
    # hvp_operator: the same products batched under one jit(vmap), its operands passed, in both branches
    T = jnp.asarray(np.random.default_rng(3).standard_normal((v.size, 3)))
    each = np.stack([np.asarray(prob.hvp(s_var, T[:, j], *args)) for j in range(3)], axis=1)
    for threshold in (0, v.size):  # linearised, then the plain forward-over-reverse product
        monkeypatch.setattr(nk, "LINEARISE_THRESHOLD", threshold)
        apply, operands = prob.hvp_operator(s_var, *args)
        batched = jax.jit(jax.vmap(apply, in_axes=(None, 1), out_axes=1))(operands, T)
        np.testing.assert_allclose(batched, each, rtol=1e-12, atol=1e-12)


def test_krylov_outcome_to_dict():
    import json

    from symland._newton_krylov import KrylovOutcome

    out = KrylovOutcome(np.zeros(3), np.float64(0.5), 1e-12, "converged", 4, 120, 9, 0.25)
    d = out.to_dict()
    assert d == {"status": "converged", "loss": 0.5, "grad_norm": 1e-12, "steps": 4, "hvps": 120,
                 "gradients": 9, "seconds": 0.25, "factorisations": 0, "substeps": 0, "lbfgs": 0}
    json.dumps(d)
    assert KrylovOutcome(np.zeros(3), 0.5, 1e-12, "converged", 4, 120, 9, 0.25, 2).to_dict()["factorisations"] == 2


def test_steihaug_pcg_uses_the_preconditioner_and_its_norm():
    from symland._newton_krylov import _steihaug_pcg

    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    A = (Q * np.logspace(0, 6, 6)) @ Q.T  # SPD, condition number 1e6
    g = rng.standard_normal(6)
    hvp = lambda t: A @ t
    # The exact preconditioner M = A: one HVP gives the Newton step.
    p, norm, hvps, reason = _steihaug_pcg(hvp, g, lambda r: np.linalg.solve(A, r), 1e9, 1e-10, 50)
    assert hvps == 1 and reason == "converged"
    np.testing.assert_allclose(p, -np.linalg.solve(A, g), rtol=1e-10)
    assert norm == pytest.approx(np.sqrt(p @ A @ p), rel=1e-10)
    # The identity needs more HVPs; the cap is honoured.
    _, _, hvps, reason = _steihaug_pcg(hvp, g, lambda r: r, 1e9, 1e-10, 3)
    assert hvps == 3 and reason == "max_iter"
    # Indefinite: the step ends on the boundary of the M-norm ball.
    B = (Q * np.array([-1.0, 1, 2, 3, 4, 5])) @ Q.T
    Mdiag = np.arange(1.0, 7.0)
    p, norm, _, reason = _steihaug_pcg(lambda t: B @ t, g, lambda r: r / Mdiag, 0.3, 1e-10, 50)
    assert reason in ("negative", "boundary")
    assert norm == pytest.approx(0.3) and np.sqrt(p @ (Mdiag * p)) == pytest.approx(0.3, rel=1e-10)


def test_kfac_preconditioner_is_spd_with_the_gauss_newton_diagonal():
    """EKFAC's D is the exact diagonal of each layer's Gauss–Newton block in the Kronecker eigenbasis.

    Checked on the layers other than the split one (there ∂ϑ_m/∂u also projects out u,
    which the Kronecker form leaves to the damping), in the solver's (whitened) variables.
    """
    from jax.flatten_util import ravel_pytree

    from symland._newton_krylov import path_problem

    model = s.MLP((3, 4, 3, 2), "softplus")
    theta = model.init(jax.random.PRNGKey(3))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((40, 3)) * np.array([1.0, 0.1, 3.0]))
    y = model.apply(model.init(jax.random.PRNGKey(4)), x)
    layer, l, m, delta = 2, 0, 1, 0.2
    prob = path_problem(model, layer, "nmse", x)
    v = ravel_pytree(path_module.rescale_direction(path_module.free_parameters(theta, layer, l, m),
                                                   layer, m, delta))[0]
    sv = prob.to_s(v)
    args = (delta, l, m, x, y)
    unravel = ravel_pytree(theta)[1]
    F = lambda s_: model.apply(path_module.effective_params(unravel(prob.to_v(s_)), layer, l, m, delta), x)
    J = jax.jacfwd(F)(sv).reshape(-1, v.size)
    GN = 2.0 / (x.shape[0] * float(jnp.mean(y * y))) * np.asarray(J.T @ J)
    factors = prob.build_preconditioner(sv, *args)
    lam = None
    start = 0
    for k, (QG, QA, Dl) in enumerate(factors, start=1):
        n_out, n_in = model.widths[k], model.widths[k - 1]
        size = n_out * (n_in + 1)
        if k != layer:
            basis = np.einsum("ai,bj->ijab", QG, QA).reshape(n_out * (n_in + 1), n_out, n_in + 1)
            B = np.concatenate([basis[:, :, :n_in].reshape(size, -1), basis[:, :, n_in]], axis=1).T
            diag = np.einsum("pi,pq,qi->i", B, GN[start:start + size, start:start + size], B)
            D = np.asarray(Dl).ravel()
            lam_k = np.median(D - diag)
            np.testing.assert_allclose(D - lam_k, diag, rtol=1e-8, atol=1e-12 * D.max())
            lam = lam_k if lam is None else lam
            assert lam_k == pytest.approx(lam, rel=1e-12) and lam_k > 0
        start += size
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, v.size))
    apply = lambda r: np.asarray(prob.apply_preconditioner(factors, jnp.asarray(r)))
    assert a @ apply(b) == pytest.approx(b @ apply(a), rel=1e-10)
    assert a @ apply(a) > 0 and b @ apply(b) > 0


@pytest.mark.parametrize("method", ["trust-pcg", "trust-ncg", "trust-krylov"])
def test_hvp_budget_reports_max_steps(method):
    rosenbrock = FlatProblem(lambda v: jnp.sum(100.0 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2))
    r = minimise_matrix_free(rosenbrock, -jnp.ones(6), max_steps=500, max_hvps=10, method=method)
    full = minimise_matrix_free(rosenbrock, -jnp.ones(6), max_steps=500, method=method)
    assert full.status == "converged" and full.grad_norm <= 1e-8 and full.hvps > 10
    assert r.status == "max_steps" and r.grad_norm > 1e-8
    # the budget (trust-pcg: plus the initial radius's HVP and one pᵀHp); scipy's: exactly the budget
    assert r.hvps <= 10 + (2 if method == "trust-pcg" else 0)
    # the result is an iterate the solver accepted: no higher than the start
    assert r.loss <= float(rosenbrock.value_grads(-jnp.ones(6))[0])


@pytest.mark.parametrize("bad, name", [({"max_hvps": 0}, "max_hvps"), ({"max_hvps": 2.5}, "max_hvps"),
                                       ({"method": "bfgs"}, "method")])
def test_bad_solver_arguments(bad, name):
    p = FlatProblem(lambda v: jnp.sum(v ** 2))
    with pytest.raises(ValueError, match=name):
        minimise_matrix_free(p, jnp.ones(2), **bad)


def test_permutation_point_spectrum_within_budget(monkeypatch):
    """Lanczos at the permutation point gets `spectrum_hvps` (default LANCZOS_HVP_BUDGET); when it
    does not converge the report is `partial` and the path's record still serialises."""
    import json

    import symland._critical as critical

    prob = s.toy_problem("softplus", seed=SEED)
    budgets = []

    def spectrum(loss_fn, params, *, max_hvps=None, **kw):
        budgets.append(max_hvps)
        raise critical.SpectrumNotConverged([-0.5] if kw.get("which") != "largest" else [], 20, 7)

    monkeypatch.setattr(critical, "DENSE_THRESHOLD", 10)  # 21 parameters: Lanczos
    monkeypatch.setattr(critical, "hessian_spectrum", spectrum)
    delta0 = float(s.neuron_distance(prob.teacher, 1, L_, M_))
    deltas = path_module.delta_schedule(delta0, 3, 1e-2)[None, :]
    for hvps, expected in [(None, critical.LANCZOS_HVP_BUDGET), (50, 50)]:
        budgets.clear()
        path, = matrix_free_paths(prob.model, prob.teacher, prob.x, prob.y, 1,
                                                   [(L_, M_)], deltas, spectrum_hvps=hvps)
        assert budgets == [expected, expected]  # the smallest, then the largest (zero tolerance)
        r = path.permutation_point_report
        # what Lanczos converged on the even block, and the σ-odd block's exact eigenvalues
        assert r.part == "partial" and -0.5 in r.eigenvalues
        assert r.eigenvalues.size == 1 + prob.model.widths[0] + 1 + prob.model.widths[2]
        assert r.index == 1 + int(np.sum(r.eigenvalues[r.eigenvalues != -0.5] < -r.zero_tol))
        assert str(r.kind) in ("strict saddle", "not critical")
        json.dumps(path.to_dict())


@pytest.mark.parametrize("panel", [None, 7])
@pytest.mark.parametrize("layer, l, m, kind", [(1, 0, 2, "mse"), (1, 3, 1, "nmse"), (2, 1, 2, "mse")])
def test_gauss_newton_preconditioner_is_the_damped_gauss_newton_inverse(layer, l, m, kind, panel, monkeypatch):
    """apply(factorise(v, …), r) = (c JᵀJ + λI)⁻¹ r with J = ∂(outputs)/∂s by jacfwd, for either split
    layer; with `radial`, plus (mean diagonal)·eeᵀ for e the null direction of J (only ‖u‖ changes).
    The factor in one panel (39 parameters < `GN_PANEL`) and in panels of 7 rows (6 panels, the last of 4)."""
    from jax.flatten_util import ravel_pytree

    import symland._newton_krylov as nk
    from symland._newton_krylov import gauss_newton_preconditioner, path_problem
    from symland._path import effective_params

    if panel is not None:
        monkeypatch.setattr(nk, "GN_PANEL", panel)

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3))
    y = x[:, :2] ** 2 + 0.5
    v, unravel = ravel_pytree(model.init(jax.random.PRNGKey(1)))
    P, _ = input_whitening(x)
    problem = path_problem(model, layer, kind, x, preconditioner="gauss-newton")
    factorise, apply = gauss_newton_preconditioner(model, layer, kind, x, P, damping=1e-3, radial=False)
    delta = 0.3
    outputs = lambda sv: model.apply(effective_params(unravel(problem.to_v(sv)), layer, l, m, delta), x).ravel()
    J = jax.jacfwd(outputs)(problem.to_s(v))
    c = 2.0 / x.shape[0] / (1.0 if kind == "mse" else float(jnp.mean(y * y)))
    G = c * J.T @ J
    scale = float(jnp.trace(G)) / G.shape[0]
    G = G + 1e-3 * scale * jnp.eye(G.shape[0])
    r = jax.random.normal(jax.random.PRNGKey(2), (v.size,))
    got = apply(factorise(v, delta, l, m, x, y), r)
    np.testing.assert_allclose(got, np.linalg.solve(G, r), rtol=1e-8, atol=0)
    sv, e = np.linalg.svd(np.asarray(J))[1:]
    assert sv[-1] < 1e-10 * sv[0] and sv[-2] > 1e-6 * sv[0]  # one null direction: ‖u‖
    factorise_r, _ = gauss_newton_preconditioner(model, layer, kind, x, P, damping=1e-3)
    got = apply(factorise_r(v, delta, l, m, x, y), r)
    want = np.linalg.solve(G + scale * np.outer(e[-1], e[-1]), r)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=0)
    # `single` forms layer 1's blocks and keeps L in float32 (the default above DENSE_THRESHOLD parameters;
    # this network is below it, so the default here is float64): the same operator to float32's precision
    # times M̃'s condition number, returned in float64. With split layer 2 the blocks are polarised
    # (`polarised_grams`), whose rounding is up to about 3 units of the diagonal blocks' scale: 1.3e−4 of
    # max|M̃⁻¹r| here (8.3e−5 by the direct products), so 3e−4; layer 1's direct products stay within 1e−4
    assert factorise(v, delta, l, m, x, y).dtype == np.float64
    assert len(factorise(v, delta, l, m, x, y).panels) == (1 if panel is None else 6)
    factorise_32, apply_32 = gauss_newton_preconditioner(model, layer, kind, x, P, damping=1e-3, single=True)
    factors = factorise_32(v, delta, l, m, x, y)
    got = apply_32(factors, r)
    assert factors.dtype == np.float32 and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=(1e-4 if layer == 1 else 3e-4) * np.max(np.abs(want)))
    assert np.max(np.abs(got - want)) > 0  # so float32 is in fact used
    # and problem.factorise is the same construction with the default damping
    assert np.all(np.isfinite(apply(problem.factorise(v, delta, l, m, x, y), r)))


@pytest.mark.parametrize("n, panel", [(1, 1), (9, 1), (9, 4), (9, 9), (9, 20), (40, 16)])
def test_cholesky_panel_solve_is_the_inverse(n, panel):
    """cholesky_panel_solve(cholesky_panels(L), r) = M⁻¹r for M = LLᵀ, whatever the panels (one row each,
    a last short one, one panel, wider than M), and symmetric to round-off; in float32 to float32's
    precision times M's condition number (≈ 1e2 here)."""
    from symland._newton_krylov import cholesky_panel_solve, cholesky_panels

    rng = np.random.default_rng(n + panel)
    A = rng.standard_normal((n, n))
    M = A @ A.T + 0.5 * np.eye(n)
    L = np.linalg.cholesky(M)
    L_dirty = L + np.triu(rng.standard_normal((n, n)), 1)  # what potrf leaves above the diagonal is ignored
    F = cholesky_panels(L_dirty, panel=panel)
    assert len(F.panels) == -(-n // panel) and F.dtype == np.float64
    r, t = rng.standard_normal(n), rng.standard_normal(n)
    want = np.linalg.solve(M, r)
    np.testing.assert_allclose(cholesky_panel_solve(F, r), want, rtol=1e-10, atol=1e-12)
    assert abs(t @ cholesky_panel_solve(F, r) - r @ cholesky_panel_solve(F, t)) < 1e-12 * np.linalg.norm(want) * n
    F32 = cholesky_panels(L_dirty, dtype=np.float32, panel=panel)
    got = np.asarray(cholesky_panel_solve(F32, r.astype(np.float32)), dtype=np.float64)
    assert F32.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.max(np.abs(want)))


@pytest.mark.parametrize("panel", [0, -3, 2.5, True])
def test_cholesky_panels_refuses_bad_panel(panel):
    from symland._newton_krylov import cholesky_panels

    with pytest.raises(ValueError, match="panel"):
        cholesky_panels(np.eye(3), panel=panel)


def test_cholesky_panels_refuses_a_singular_factor():
    from symland._newton_krylov import cholesky_panels

    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        cholesky_panels(np.diag([1.0, 0.0, 2.0]), panel=2)


@pytest.mark.parametrize("layer, l, m", [(1, 0, 2), (2, 1, 2)])
def test_gauss_newton_single_falls_back_to_float64_blocks(layer, l, m, monkeypatch):
    """Where the rounding of float32 blocks leaves M̃ not positive definite (e.g. along G's null
    directions at λ = 1e-9 of the mean diagonal, with inputs in an exact linear dependence),
    `factorise` forms the blocks in float64: its float32 factor is then the float64 factor rounded,
    and no LinAlgError escapes. Whether float32 rounding fails potrf depends on the CPU's summation
    order, so the first potrf is made to report failure here."""
    import scipy.linalg
    from jax.flatten_util import ravel_pytree

    from symland._newton_krylov import gauss_newton_preconditioner

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3))
    x = x.at[:, 2].set(x[:, 1])
    y = x[:, :2] ** 2 + 0.5
    v = ravel_pytree(model.init(jax.random.PRNGKey(1)))[0]
    P, _ = input_whitening(x)
    args = (v, 0.3, l, m, x, y)
    F64 = gauss_newton_preconditioner(model, layer, "mse", x, P, damping=1e-9, single=False)[0](*args)
    potrf, spotrf, calls = scipy.linalg.lapack.dpotrf, scipy.linalg.lapack.spotrf, []

    def first_fails(*a, **k):
        L, info = potrf(*a, **k)
        calls.append(info)
        return L, (1 if len(calls) == 1 else info)

    monkeypatch.setattr(scipy.linalg.lapack, "dpotrf", first_fails)
    # the mixed-precision factor's layer-1 block (GN_MIXED) fails first, as float32 potrf would
    monkeypatch.setattr(scipy.linalg.lapack, "spotrf", lambda a, **k: (spotrf(a, **k)[0], 1))
    F32 = gauss_newton_preconditioner(model, layer, "mse", x, P, damping=1e-9, single=True)[0](*args)
    assert len(calls) == 2 and F32.dtype == np.float32
    for a, b in zip(F32.panels + F32.inverses, F64.panels + F64.inverses):
        np.testing.assert_array_equal(a, np.asarray(b).astype(np.float32))


@pytest.mark.parametrize("layer, l, m", [(1, 0, 2), (2, 1, 2)])
def test_gauss_newton_mixed_precision_factor(layer, l, m, monkeypatch):
    """With `single` (and `GN_MIXED`) layer 1's block is factorised by float32 spotrf and the Schur
    complement of the other layers in float64: the panels are cut at layer 1's end, the last panel
    holds the other layers' rows, and M̃⁻¹r is right to float32's precision times M̃'s condition. Where
    spotrf or the Schur complement's potrf fails, the float64 factor of the same blocks is used (whose
    float32 panels are right to 1e−4)."""
    import scipy.linalg
    from jax.flatten_util import ravel_pytree

    import symland._newton_krylov as nk
    from symland._newton_krylov import cholesky_panel_solve, gauss_newton_preconditioner

    monkeypatch.setattr(nk, "GN_PANEL", 8)
    model = s.MLP((3, 4, 3, 2), "softplus")
    n1, n = 4 * 4, model.n_params
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3))
    y = x[:, :2] ** 2 + 0.5
    v = ravel_pytree(model.init(jax.random.PRNGKey(1)))[0]
    P, _ = input_whitening(x)
    args = (v, 0.3, l, m, x, y)
    F64 = gauss_newton_preconditioner(model, layer, "mse", x, P, damping=1e-3, single=False)[0](*args)
    spotrf, used = scipy.linalg.lapack.spotrf, []
    monkeypatch.setattr(scipy.linalg.lapack, "spotrf", lambda a, **k: used.append(a.shape) or spotrf(a, **k))
    factorise, apply = gauss_newton_preconditioner(model, layer, "mse", x, P, damping=1e-3, single=True)
    F = factorise(*args)
    assert used == [(n1, n1)] and F.dtype == np.float32
    assert [p.shape[0] for p in F.panels] == [8, 8, n - n1]  # cut at layer 1's end
    r = np.random.default_rng(0).standard_normal(n)
    want = np.asarray(cholesky_panel_solve(F64, r[np.asarray(F64.order)]))
    got = np.asarray(cholesky_panel_solve(F, r[np.asarray(F.order)].astype(np.float32)), dtype=np.float64)
    # u₃₂·κ(M̃): 1.3e−4 of the largest entry measured for the layer-1 pair
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3 * np.max(np.abs(want)))
    for failing in ("spotrf", "dpotrf"):  # the mixed factor fails: the float64 factor of the same blocks
        lapack = getattr(scipy.linalg.lapack, failing)
        monkeypatch.setattr(scipy.linalg.lapack, failing, lambda a, lapack=lapack, **k: (lapack(a, **k)[0], 1)
                            if a.shape[0] != n else lapack(a, **k))
        F_back = factorise(*args)
        monkeypatch.setattr(scipy.linalg.lapack, failing, lapack)
        assert [p.shape[0] for p in F_back.panels] == [8] * (n // 8) + ([n % 8] if n % 8 else [])
        got = np.asarray(cholesky_panel_solve(F_back, r[np.asarray(F.order)].astype(np.float32)), dtype=np.float64)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.max(np.abs(want)))


def test_refactorise_when_inner_solve_runs_out():
    """minimise_matrix_free(refactorise=...) calls it at the iterate reached the first time an inner
    solve spends all `max_cg` HVPs (and again only after a shorter solve since: the next test), and
    reports the count; it is not called when no inner solve runs out, nor without `factors`. The
    damping override of `factorise` changes the operator."""
    from jax.flatten_util import ravel_pytree

    from symland._newton_krylov import GN_DAMPING_NEAR, path_problem

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3))
    y = x[:, :2] ** 2 + 0.5
    v = ravel_pytree(model.init(jax.random.PRNGKey(1)))[0]
    args = (0.3, 1, 2, x, y)
    problem = path_problem(model, 2, "mse", x, preconditioner="gauss-newton")
    factors = problem.factorise(v, *args)
    calls = []

    def near(w):
        calls.append(np.asarray(w))
        return problem.factorise(w, *args, damping=GN_DAMPING_NEAR)

    r = minimise_matrix_free(problem, v, args, method="trust-pcg", factors=factors, refactorise=near,
                             max_cg=2, max_steps=20)
    assert r.factorisations == len(calls) >= 1 and r.to_dict()["factorisations"] == len(calls)
    assert r.steps == 20 and not np.allclose(calls[0], v)  # at an iterate the solve had reached
    g = np.ones(v.size)
    assert not np.allclose(problem.apply_preconditioner(factors, g), problem.apply_preconditioner(near(v), g))
    calls.clear()
    roomy = minimise_matrix_free(problem, v, args, method="trust-pcg", factors=factors, refactorise=near,
                                 max_cg=v.size + 10, max_steps=20)  # CG ends within the dimension
    assert roomy.factorisations == 0 and not calls
    plain = minimise_matrix_free(problem, v, args, method="trust-pcg", factors=factors, max_cg=2, max_steps=20)
    assert plain.factorisations == 0


@pytest.mark.parametrize("script, expected", [
    ("LLLLLL", 1),      # a run of long inner solves: factors that never resolved it, one call
    ("LSLSSLS", 3),     # each long solve after a short one: the factors went stale, a call each
    ("LSLSSL", 2),      # ... made at the next iteration: none after the last solve, where max_steps ends it
    ("SSSSSS", 0),
    ("LLSLLS", 2),
])
def test_refactorise_again_only_after_a_short_inner_solve(monkeypatch, script, expected):
    """`refactorise` is called at the first long inner solve, and again at each long one that follows a
    shorter one since the last call, never for two long solves in a row, each at the next iteration
    (the inner solver's reports are scripted: L long, S short)."""
    from jax.flatten_util import ravel_pytree

    import symland._newton_krylov as nk

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3))
    y = x[:, :2] ** 2 + 0.5
    v = ravel_pytree(model.init(jax.random.PRNGKey(1)))[0]
    args = (0.3, 1, 2, x, y)
    problem = nk.path_problem(model, 2, "mse", x, preconditioner="gauss-newton")
    real, calls, solves = nk._steihaug_pcg, [], []

    def scripted(hvp, g, precond, radius, eta, max_iter):
        p, pnorm, used, reason = real(hvp, g, precond, radius, eta, min(max_iter, 2))
        long = script[len(solves)] == "L"
        solves.append(long)
        return p, pnorm, (max_iter if long else 1), ("max_iter" if long else reason)

    monkeypatch.setattr(nk, "_steihaug_pcg", scripted)
    r = minimise_matrix_free(problem, v, args, method="trust-pcg", factors=problem.factorise(v, *args),
                             refactorise=lambda w: calls.append(1) or problem.factorise(w, *args),
                             max_cg=20, max_steps=len(script), gtol=1e-300)
    assert len(solves) == len(script) and len(calls) == expected == r.factorisations


def test_no_refactorisation_for_a_point_that_ends_the_solve(monkeypatch):
    """A long inner solve whose step ends the solve (here: converged) does not refactorise: the factors
    would be built at a point that needs none (on the Fig. 3 path, step 16's last factorisation was
    such a one; BENCHMARKS.md, "A refactorisation only where the solve goes on")."""
    import symland._newton_krylov as nk

    problem = FlatProblem(lambda v: 0.5 * jnp.sum((v - 1.0) ** 2))
    real, calls = nk._steihaug_pcg, []

    def long_solve(hvp, g, precond, radius, eta, max_iter):  # the exact step, reported as running out
        p, pnorm, _, _ = real(hvp, g, precond, radius, eta, max_iter)
        return p, pnorm, max_iter, "max_iter"

    monkeypatch.setattr(nk, "_steihaug_pcg", long_solve)
    r = minimise_matrix_free(problem, jnp.zeros(1), method="trust-pcg", factors=(),
                             refactorise=lambda w: calls.append(1) or (), max_cg=5)
    assert r.converged and r.steps == 1 and r.factorisations == 0 and not calls
    # the same long solve that does not end it: the next iteration refactorises, at the point reached
    r = minimise_matrix_free(FlatProblem(lambda v: jnp.sum(jnp.cosh(v - 1.0))), jnp.zeros(1),
                             method="trust-pcg", factors=(), refactorise=lambda w: calls.append(np.asarray(w)) or (),
                             max_cg=5)
    assert r.converged and r.factorisations == len(calls) == 1 and not np.allclose(calls[0], 0.0)


def test_trust_region_inner_solves_do_not_depend_on_the_loss_scale():
    """The forcing term is relative (`_trust_region_pcg`, `CG_FORCING`): the same loss scaled by 2⁻²⁴
    takes the same iterations and HVPs to the same point. The absolute min(0.5, √‖g‖) of the library
    before asked the small one for tighter inner solves (more HVPs)."""
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.standard_normal((30, 30)))[0]
    A = jnp.asarray(Q @ np.diag(np.logspace(-3, 1, 30)) @ Q.T)
    f = lambda v: 0.5 * v @ A @ v + jnp.sum((v - 1.0) ** 4)
    runs = [minimise_matrix_free(FlatProblem(lambda v, c=c: c * f(v)), jnp.zeros(30), method="trust-pcg",
                                 max_steps=8, gtol=1e-300) for c in (1.0, 2.0 ** -24)]
    assert runs[0].steps == runs[1].steps == 8 and runs[0].hvps == runs[1].hvps > 8
    np.testing.assert_allclose(runs[1].x, runs[0].x, rtol=1e-12, atol=1e-14)


def test_factors_given_as_a_function_are_built_on_first_need():
    """factors=callable: not called at a start that already meets gtol; otherwise called once, at the
    first iteration, counted in `factorisations`, and its factors used (the loss falls)."""
    from jax.flatten_util import ravel_pytree

    from symland._newton_krylov import path_problem
    from symland._path import effective_params

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3))
    v, unravel = ravel_pytree(model.init(jax.random.PRNGKey(1)))
    y = model.apply(effective_params(unravel(v), 2, 1, 2, 0.3), x)  # the network's own outputs: L = 0 at v
    args = (0.3, 1, 2, x, y)
    problem = path_problem(model, 2, "mse", x, preconditioner="gauss-newton")
    calls = []

    def lazy():
        calls.append(1)
        return problem.factorise(v, *args)

    at_min = minimise_matrix_free(problem, v, args, method="trust-pcg", factors=lazy)
    assert at_min.converged and at_min.steps == 0 and at_min.factorisations == 0 and not calls
    y2 = y + 0.1 * jnp.sin(x[:, :2])
    start = float(problem.value_grads(problem.to_s(v), 0.3, 1, 2, x, y2)[0])
    r = minimise_matrix_free(problem, v, (0.3, 1, 2, x, y2), method="trust-pcg", factors=lazy, max_steps=20)
    assert r.steps == 20 and r.factorisations == 1 == len(calls) and r.loss < 0.5 * start


def test_gauss_newton_preconditioner_refuses_bad_single():
    from symland._newton_krylov import gauss_newton_preconditioner

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jnp.ones((5, 3))
    with pytest.raises(ValueError, match="single"):
        gauss_newton_preconditioner(model, 2, "mse", x, np.eye(4), single="float32")


def test_trust_gn_path_agrees_with_dense_solver(toy_paths):
    """solver="trust-gn" converges every step of the toy path to 1e-10 and finds the dense losses; the
    Gauss–Newton matrix is factorised once at every step that iterates (no inner solve of this
    31-parameter problem runs out of CG iterations, so none refactorises). (With GN_DAMPING = 1e-6 it
    failed 7 of the 13 steps.)"""
    from symland._newton_krylov import matrix_free_paths
    from symland._path import delta_schedule

    prob, dense, _ = toy_paths
    gn = s.find_permutation_path(prob.model, prob.teacher, prob.x, prob.y, 1, L_, M_, steps=STEPS,
                                 method="matrix-free", solver="trust-gn", gtol=1e-10)
    logged = []  # on_step sees every δ step's outcome, the refreshes included in its factorisations
    again = matrix_free_paths(prob.model, prob.teacher, prob.x, prob.y, 1, [(L_, M_)], gn.delta[None, :],
                              loss="mse", gtol=1e-10, solver="trust-gn",
                              on_step=lambda i, d, r: logged.append((i, d, r)))[0]
    assert [i for i, _, _ in logged] == list(range(gn.delta.size))
    np.testing.assert_array_equal([d for _, d, _ in logged], gn.delta)
    np.testing.assert_array_equal([r.hvps for _, _, r in logged], again.hessians)
    assert sum(r.factorisations for _, _, r in logged) == again.factorisations
    assert gn.all_converged, gn.status
    np.testing.assert_allclose(gn.loss, dense.loss, atol=1e-20, rtol=1e-6)
    assert np.all(gn.grad_norm <= 1e-10 * np.maximum(1.0, gn.loss))
    # one factorisation per solve that iterates, continuation sub-steps (split="auto") included, and one
    # at θ* (step 0, no iterations) for the tangent of the path there (`path_tangent`)
    assert [r.factorisations for _, _, r in logged] == [int(n > 0) * (1 + r.substeps) + (i == 0)
                                                        for i, (n, (_, _, r)) in enumerate(zip(again.steps, logged))]
    assert gn.steps[0] == 0 and 0 < logged[0][2].hvps == gn.hessians[0]
    assert gn.factorisations == again.factorisations >= np.count_nonzero(gn.steps) + 1 >= 2
    record = gn.to_dict()
    assert record["solver"] == "trust-gn" and record["factorisations"] == gn.factorisations
    assert dense.to_dict()["solver"] == "newton"


# Each split value is one 12-step path; the two numeric ones are slow.
@pytest.mark.parametrize("splits", [(None, "auto"), pytest.param((1.5, 1e300), marks=pytest.mark.slow)])
def test_trust_gn_path_splits_steps_whose_prediction_starts_high(toy_paths, splits):
    """split: a δ step whose prediction starts above `split` × the last loss is reached through
    unrecorded sub-steps, whose work its counts include; the recorded δ and losses are those of the
    unsplit path. With split=None no step splits; a huge ratio splits none either."""
    from symland._newton_krylov import SPLIT_DEPTH, matrix_free_paths

    prob, dense, _ = toy_paths
    run = {}
    for split in splits:
        logged = []
        path, = matrix_free_paths(prob.model, prob.teacher, prob.x, prob.y, 1, [(L_, M_)], dense.delta[None, :],
                                  loss="mse", gtol=1e-10, solver="trust-gn", split=split,
                                  on_step=lambda i, d, r, logged=logged: logged.append(r))
        assert path.all_converged, (split, path.status)
        np.testing.assert_allclose(path.loss, dense.loss, atol=1e-20, rtol=1e-6)
        np.testing.assert_array_equal(path.hessians, [r.hvps for r in logged])
        run[split] = [r.substeps for r in logged]
    for split, substeps in run.items():
        if split in (None, 1e300):
            assert substeps == [0] * dense.delta.size, split
        else:
            assert sum(substeps) > 0, split
            assert max(substeps) <= 2 ** (SPLIT_DEPTH + 1) - 1  # each sub-step advances > 2^−(depth+1) of the step
    if None not in splits:
        return
    # trust-ncg does not split by default
    ncg = []
    matrix_free_paths(prob.model, prob.teacher, prob.x, prob.y, 1, [(L_, M_)], dense.delta[None, :3],
                      loss="mse", gtol=1e-10, solver="trust-ncg", on_step=lambda i, d, r: ncg.append(r.substeps))
    assert ncg == [0, 0, 0]


@pytest.mark.parametrize("split", [1, 0.5, -2.0, True, "yes", float("nan")])
def test_matrix_free_paths_refuses_bad_split(toy_paths, split):
    from symland._newton_krylov import matrix_free_paths

    prob, dense, _ = toy_paths
    with pytest.raises(ValueError, match="split"):
        matrix_free_paths(prob.model, prob.teacher, prob.x, prob.y, 1, [(L_, M_)], dense.delta[None, :2],
                          loss="mse", solver="trust-gn", split=split)


def _log_factorisations(monkeypatch):
    """The λ factor (None: the problem's) of every Gauss–Newton factorisation the path builds, in order."""
    import symland._newton_krylov as nk

    built = []
    real = nk.gauss_newton_preconditioner

    def counting(*args, **kw):
        factorise, apply = real(*args, **kw)

        def logged(*a, damping=None, **k):
            built.append(damping)
            return factorise(*a, **k) if damping is None else factorise(*a, damping=damping, **k)
        return logged, apply

    monkeypatch.setattr(nk, "gauss_newton_preconditioner", counting)
    return built


def test_trust_gn_path_refactorises_when_an_inner_solve_runs_out(toy_paths, monkeypatch):
    """With inner solves capped at 2 CG iterations the δ steps run out: the first such step
    refactorises with `GN_DAMPING_NEAR`, and a later one, already at that damping, refactorises with
    it again at its iterate (before, it kept its factors to the end of the step)."""
    import symland._newton_krylov as nk

    prob, dense, _ = toy_paths
    monkeypatch.setattr(nk, "CG_MAX_ITERATIONS", 2)
    built = _log_factorisations(monkeypatch)  # tangent=False: no factorisation at θ* (path_tangent)
    logged = []
    path = nk.matrix_free_paths(prob.model, prob.teacher, prob.x, prob.y, 1, [(L_, M_)], dense.delta[None, :4],
                                loss="mse", gtol=1e-10, solver="trust-gn", tangent=False, max_steps=8,
                                on_step=lambda i, d, r: logged.append(r))[0]
    counts = [r.factorisations for r in logged if r.steps > 0]
    # each step: its own factors, then one more per long inner solve that follows a short one (never
    # two in a row), so at most 4 in its 8 iterations
    assert len(counts) == 3 and all(1 <= c <= 1 + 4 for c in counts), counts
    assert sum(c >= 2 for c in counts) >= 2, counts  # the steps after the switch to GN_DAMPING_NEAR refactorise too
    assert path.factorisations == sum(counts) == len(built)
    assert built == [None] + [nk.GN_DAMPING_NEAR] * (len(built) - 1)


def test_trust_gn_path_switches_damping_after_a_long_inner_solve(toy_paths, monkeypatch):
    """An inner solve of GN_SWITCH_HVPS HVPs or more refactorises before any solve runs out: with the
    threshold at 1 HVP the first step that iterates builds its factors twice, the second with
    GN_DAMPING_NEAR, which the path then keeps; every later step that iterates, with factors at
    GN_DAMPING_NEAR already, builds them twice too (once at its start, once at its iterate)."""
    import symland._newton_krylov as nk

    prob, dense, _ = toy_paths
    monkeypatch.setattr(nk, "GN_SWITCH_HVPS", 1)
    built = _log_factorisations(monkeypatch)  # tangent=False: no factorisation at θ* (path_tangent)
    logged = []
    path = nk.matrix_free_paths(prob.model, prob.teacher, prob.x, prob.y, 1, [(L_, M_)], dense.delta[None, :4],
                                loss="mse", gtol=1e-10, solver="trust-gn", tangent=False, split=None,
                                on_step=lambda i, d, r: logged.append(r))[0]
    counts = [r.factorisations for r in logged if r.steps > 0]
    assert len(counts) >= 2 and counts == [2] * len(counts), counts
    assert built[0] is None and built[1:] == [nk.GN_DAMPING_NEAR] * (len(built) - 1) and len(built) >= 2
    assert path.factorisations == len(built)
    # a refactorisation after every first HVP is no sensible setting: on this toy the fourth step then
    # runs out of its 200 iterations, and says so
    assert path.status[:3] == ("converged",) * 3 and set(path.status) <= {"converged", "max_steps"}, path.status


@pytest.mark.parametrize("after", [0, -1, 2.5, True])
def test_minimise_matrix_free_refuses_bad_refactorise_after(after):
    from symland._newton_krylov import FlatProblem, minimise_matrix_free

    p = FlatProblem(lambda v: jnp.sum((v - 1.0) ** 2))
    with pytest.raises(ValueError, match="refactorise_after"):
        minimise_matrix_free(p, jnp.zeros(3), method="trust-pcg", refactorise_after=after)


def test_bad_path_solver_is_refused_before_work(monkeypatch):
    import symland._newton_krylov as nk
    from symland._newton_krylov import path_problem

    def no_work(*args, **kwargs):
        raise AssertionError("the path solver ran")

    prob = s.toy_problem("softplus", seed=SEED)
    monkeypatch.setattr(nk, "matrix_free_paths", no_work)
    with pytest.raises(ValueError, match="solver"):
        s.find_permutation_path(prob.model, prob.teacher, prob.x, prob.y, 1, L_, M_, method="matrix-free",
                                solver="lbfgs")
    with pytest.raises(ValueError, match="preconditioner"):
        path_problem(prob.model, 1, "mse", prob.x, preconditioner="kfac")


def test_extrapolate_reproduces_polynomials_on_uneven_steps():
    """Three points reproduce a vector quadratic in s exactly, two a line, one a constant; the
    steps need not be even (a log-δ schedule need not be)."""
    from symland._newton_krylov import extrapolate

    a, b, c = np.array([1.0, -2.0]), np.array([0.5, 3.0]), np.array([-0.25, 0.1])
    f = lambda t: a + b * t + c * t * t
    pts = [(t, f(t)) for t in (-1.0, -0.7, -0.1)]
    np.testing.assert_allclose(extrapolate(pts, 0.4), f(0.4), rtol=1e-12)
    line = [(t, a + b * t) for t in (-0.7, -0.1)]
    np.testing.assert_allclose(extrapolate(line, 0.4), a + b * 0.4, rtol=1e-12)
    assert not np.allclose(extrapolate(pts[1:], 0.4), f(0.4))  # the secant misses the curvature
    np.testing.assert_array_equal(extrapolate(pts[-1:], 0.4), f(-0.1))


def test_quadratic_predictor_only_past_converged_steps(monkeypatch):
    """matrix_free_paths extrapolates through three steps only when all three converged: a path whose
    steps all converge uses the quadratic; one whose steps run out of their HVP budget uses the secant."""
    import symland._newton_krylov as nk

    prob = s.toy_problem("softplus", seed=SEED)
    seen = []
    real = nk.extrapolate
    monkeypatch.setattr(nk, "extrapolate", lambda pts, t: seen.append(len(pts)) or real(pts, t))
    done = s.find_permutation_path(prob.model, prob.teacher, prob.x, prob.y, 1, L_, M_, steps=5,
                                   method="matrix-free", gtol=1e-10)
    assert done.all_converged and 3 in seen
    seen.clear()
    short = s.find_permutation_path(prob.model, prob.teacher, prob.x, prob.y, 1, L_, M_, steps=5,
                                    method="matrix-free", gtol=1e-10, max_hvps=2)
    assert not any(short.converged[1:]) and seen and max(seen) == 2


def test_matrix_free_step_stops_when_the_layer_below_rescales(monkeypatch):
    """A δ step of a layer-2 pair stops once a layer-1 neuron passes `UPSTREAM_FACTOR` × its scale at θ*,
    and `step_status` names it `rescaling` (the Fig. 3 run-off, docs/mnist.md). With the default
    factor this small teacher's path never comes near it; with a factor of 1 + 1e−9 every step that
    moves a layer-1 neuron outward stops at once. The δ = 0 step continues from the last step where
    that one converged, and starts from θ*'s free parameters (the pair merged) after a run-off."""
    import symland._newton_krylov as nk
    from jax.flatten_util import ravel_pytree

    model = s.MLP((3, 4, 3, 2), "softplus")
    teacher = model.init(jax.random.PRNGKey(5))
    x = jax.random.normal(jax.random.PRNGKey(6), (60, 3))
    y = model.apply(teacher, x)
    # 200 iterations: on an AMD EPYC the first step takes 118 (on the Intel Xeon of CI's runs, fewer than 50)
    kw = dict(steps=4, method="matrix-free", loss="nmse", max_newton_steps=200)
    starts, real = [], nk.minimise_matrix_free
    monkeypatch.setattr(nk, "minimise_matrix_free",
                        lambda problem, v0, args, **k: starts.append((float(args[0]), np.asarray(v0)))
                        or real(problem, v0, args, **k))

    def free_start(theta, norm):  # the δ = 0 solve's start from θ (`matrix_free_paths`' to_free)
        z = path_module.rescale_direction(path_module.free_parameters(theta, 2, 0, 1), 2, 1, norm)
        return np.asarray(ravel_pytree(z)[0])

    free = s.find_permutation_path(model, teacher, x, y, 2, 0, 1, **kw)
    assert starts[-1][0] == 0.0 and free.status[-2] == "converged"
    np.testing.assert_allclose(starts[-1][1], free_start(free.params[-2], free.delta[-2]), atol=1e-12)
    starts.clear()
    assert "rescaling" not in free.status and free.upstream_scale[0] == pytest.approx(1.0, abs=1e-12)
    assert np.all(free.upstream_scale < path_module.UPSTREAM_FACTOR)
    monkeypatch.setattr(path_module, "UPSTREAM_FACTOR", 1.0 + 1e-9)
    capped = s.find_permutation_path(model, teacher, x, y, 2, 0, 1, **kw)
    up = capped.upstream_scale
    assert "rescaling" in capped.status and capped.status[0] == "converged"
    for status, u in zip(capped.status, up):
        assert (status == "rescaling") == (status != "converged" and u > 1.0 + 1e-9)
    assert max(capped.steps[1:]) <= 1 < min(free.steps[1:])  # the solver's escape test stopped them
    # later steps start from (and stay at) the escaped point, not from a prediction that runs further off
    np.testing.assert_allclose(up[2:-1], up[1], rtol=1e-12)
    # δ = 0 after the run-off: solved from θ* with the pair merged, not from the escaped point
    assert capped.delta[-1] == 0.0 and starts[-1][0] == 0.0
    np.testing.assert_allclose(starts[-1][1], free_start(teacher, capped.delta[-2]), atol=1e-12)
    assert np.max(np.abs(starts[-1][1] - free_start(capped.params[-2], capped.delta[-2]))) > 1e-6
    assert capped.to_dict()["upstream_scale"] == up.tolist()


def test_merged_start_after_a_run_off_begins_with_an_lbfgs_phase(monkeypatch):
    """trust-gn: the δ = 0 solve from the merged θ* after a run-off asks for `LBFGS_ITERATIONS` of
    preconditioned L-BFGS first; no other solve asks for any, and without a run-off the δ = 0 solve
    does not either. (That the phase converges: the next test.)"""
    import symland._newton_krylov as nk

    model = s.MLP((3, 4, 3, 2), "softplus")
    teacher = model.init(jax.random.PRNGKey(5))
    x = jax.random.normal(jax.random.PRNGKey(6), (60, 3))
    y = model.apply(teacher, x)
    kw = dict(steps=4, method="matrix-free", loss="nmse", max_newton_steps=50, solver="trust-gn")
    asked, real = [], nk.minimise_matrix_free
    monkeypatch.setattr(nk, "minimise_matrix_free",
                        lambda problem, v0, args, **k: asked.append((float(args[0]), k.get("lbfgs", 0)))
                        or real(problem, v0, args, **k))
    free = s.find_permutation_path(model, teacher, x, y, 2, 0, 1, **kw)
    assert "rescaling" not in free.status and asked[-1][0] == 0.0 and {n for _, n in asked} == {0}
    asked.clear()
    monkeypatch.setattr(path_module, "UPSTREAM_FACTOR", 1.0 + 1e-9)
    capped = s.find_permutation_path(model, teacher, x, y, 2, 0, 1, **kw)
    assert "rescaling" in capped.status[:-1]
    assert asked[-1] == (0.0, nk.LBFGS_ITERATIONS) and {n for _, n in asked[:-1]} == {0}


def test_lbfgs_phase_is_preconditioned_and_counted(monkeypatch):
    """`minimise_matrix_free(lbfgs=N)` on ½vᵀAv − bᵀv + Σv⁴ with cond(A) = 1e4: preconditioned by A⁻¹
    the L-BFGS phase reaches gtol or its rounding (the trust region then takes at most a few steps),
    building its factors at the start and again every `LBFGS_REFACTORISE` iterations, each counted;
    with the identity as its preconditioner it does not get there in as many iterations."""
    import symland._newton_krylov as nk

    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.standard_normal((30, 30)))[0]
    A = jnp.asarray(Q @ np.diag(np.logspace(0, 4, 30)) @ Q.T)
    b = jnp.asarray(rng.standard_normal(30))
    problem = FlatProblem(lambda v: 0.5 * v @ A @ v - b @ v + jnp.sum(v ** 4),
                          preconditioner=(lambda v, data: None, lambda P, r: P @ r, ()))
    built = []

    def solve(inverse, n):
        build = lambda w: built.append(1) or inverse
        return nk.minimise_matrix_free(problem, jnp.zeros(30), gtol=1e-9, method="trust-pcg",
                                       factors=lambda: build(None), refactorise=build, lbfgs=n)

    monkeypatch.setattr(nk, "LBFGS_REFACTORISE", 7)
    r = solve(jnp.linalg.inv(A), 500)
    # the phase ends at gtol (Intel Xeon: no trust-region step) or where the line search fails within
    # rounding of it (AMD EPYC: after 12 iterations, then 2 steps and 10 HVPs); the trust region then
    # builds its own factors at the iterate
    assert r.converged and r.steps <= 3 and r.hvps <= 20 and 7 < r.lbfgs < 100, r
    assert r.factorisations == len(built) == 1 + (r.lbfgs - 1) // 7 + (1 if r.steps else 0)
    assert r.gradients > r.lbfgs and r.to_dict()["lbfgs"] == r.lbfgs
    plain = solve(jnp.eye(30), r.lbfgs)
    # the identity left the trust region work to do (AMD EPYC: 24 steps, 306 HVPs)
    assert plain.lbfgs == r.lbfgs and plain.steps > 5 * max(r.steps, 1) and plain.hvps > 5 * max(r.hvps, 1)
    none = solve(jnp.linalg.inv(A), 0)
    assert none.lbfgs == 0 and none.steps > 0


@pytest.mark.parametrize("n", [-1, 2.5, True])
def test_minimise_matrix_free_refuses_bad_lbfgs(n):
    from symland._newton_krylov import FlatProblem, minimise_matrix_free

    p = FlatProblem(lambda v: jnp.sum((v - 1.0) ** 2))
    with pytest.raises(ValueError, match="lbfgs"):
        minimise_matrix_free(p, jnp.zeros(3), method="trust-pcg", lbfgs=n)
    with pytest.raises(ValueError, match="lbfgs"):  # no factors to precondition the phase with
        minimise_matrix_free(p, jnp.zeros(3), method="trust-pcg", lbfgs=5)


def test_gauss_newton_preconditioner_in_the_upstream_gauge():
    """With `gauge="upstream"` and split layer 2, `factorise` inverts c JᵀJ + λI for J = ∂(outputs)/∂s by
    jacfwd, row m's dependence on the norms of layer 1's neurons included (without that term, d held
    at its value, the inverse differs)."""
    from jax.flatten_util import ravel_pytree

    from symland._newton_krylov import gauss_newton_preconditioner, path_problem
    from symland._path import _upstream_weights, effective_params, upstream_gauge

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3)) * jnp.array([1.0, 3.0, 0.2]) + 0.5
    y = x[:, :2] ** 2 + 0.5
    v, unravel = ravel_pytree(model.init(jax.random.PRNGKey(1)))
    gauge = upstream_gauge(model, unravel(v), x, 2)
    P, _ = input_whitening(x)
    problem = path_problem(model, 2, "mse", x, preconditioner="gauss-newton", gauge=gauge)
    delta, l, m = 0.3, 1, 2
    d0 = _upstream_weights(unravel(v), 2, gauge)

    def fixed_d(sv):  # ϑ_m = ϑ_l + δ (u/‖u‖) ⊘ d₀ with d₀ taken at v
        z = unravel(problem.to_v(sv))
        W, b = z[1]
        u = jnp.concatenate([W[m], b[m][None]])
        row = jnp.concatenate([W[l], b[l][None]]) + delta * u / jnp.linalg.norm(u) / d0
        z = list(z)
        z[1] = (W.at[m].set(row[:-1]), b.at[m].set(row[-1]))
        return model.apply(z, x).ravel()

    full = lambda sv: model.apply(effective_params(unravel(problem.to_v(sv)), 2, l, m, delta, gauge),
                                  x).ravel()
    sv = problem.to_s(v)
    np.testing.assert_allclose(fixed_d(sv), full(sv), rtol=1e-13)
    r = jax.random.normal(jax.random.PRNGKey(2), (v.size,))
    for single in (False, True):
        factorise, apply = gauss_newton_preconditioner(model, 2, "mse", x, P, damping=1e-3, radial=False,
                                                       gauge=gauge, single=single)
        got = apply(factorise(v, delta, l, m, x, y), r)
        for outputs, close in ((full, True), (fixed_d, False)):
            J = jax.jacfwd(outputs)(sv)
            G = 2.0 / x.shape[0] * J.T @ J
            G = G + 1e-3 * float(jnp.trace(G)) / G.shape[0] * jnp.eye(G.shape[0])
            want = np.linalg.solve(G, r)
            err = np.max(np.abs(got - want)) / np.max(np.abs(want))
            assert (err < (1e-4 if single else 1e-9)) == close, (single, close, err)


@pytest.mark.parametrize("single, mixed", [(False, False), (True, False), (True, True)])
def test_gauss_newton_preconditioner_keeps_out_of_dark_input_directions(single, mixed, monkeypatch):
    """Along an input direction without energy (here a column of zeros) the loss is exactly flat and G is
    zero: `apply` returns Π M̃⁻¹ Π r, whose layer-1 rows have no component there, and on the other
    directions it is the damped Gauss–Newton inverse (float32 blocks: to their precision; with
    `GN_MIXED`, layer 1's block also factorised in float32: to u₃₂·κ(M̃) ≈ 6e−8 × 1e6). Without Π
    float32 blocks' rounding, not small against λ, leaks into the dark direction."""
    from jax.flatten_util import ravel_pytree

    import symland._newton_krylov as nk
    from symland._newton_krylov import gauss_newton_preconditioner, path_problem
    from symland._path import effective_params

    monkeypatch.setattr(nk, "GN_MIXED", mixed)

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3)).at[:, 2].set(0.0)
    y = x[:, :2] ** 2 + 0.5
    v, unravel = ravel_pytree(model.init(jax.random.PRNGKey(1)))
    P, _ = input_whitening(x)
    problem = path_problem(model, 2, "mse", x, preconditioner="gauss-newton")
    factorise, apply = gauss_newton_preconditioner(model, 2, "mse", x, P, damping=1e-6, radial=False,
                                                   single=single)
    delta, l, m = 0.3, 1, 2
    r = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (v.size,)))
    got = apply(factorise(v, delta, l, m, x, y), r)
    W1 = got[:12].reshape(4, 3)  # layer 1's weights in the solver's variables (P keeps e₃ dark)
    assert np.all(W1[:, 2] == 0.0)
    outputs = lambda sv: model.apply(effective_params(unravel(problem.to_v(sv)), 2, l, m, delta), x).ravel()
    J = np.asarray(jax.jacfwd(outputs)(problem.to_s(v)))
    assert np.all(J[:, [2, 5, 8, 11]] == 0.0)  # the loss is flat along W₁[:, 2]
    G = 2.0 / x.shape[0] * J.T @ J
    G = G + 1e-6 * np.trace(G) / G.shape[0] * np.eye(G.shape[0])
    keep = np.setdiff1d(np.arange(v.size), [2, 5, 8, 11])
    want = np.linalg.solve(G[np.ix_(keep, keep)], r[keep])
    err = np.max(np.abs(got[keep] - want)) / np.max(np.abs(want))
    # float32 at λ = 1e−6: M̃ has condition ≈ 1e6, so u₃₂·κ ≈ 6e−2 (measured: 1.1e−2 mixed, 8.6e−3 float32
    # blocks alone, each formed by `polarised_grams`; 1.9e−2 and 1.7e−3 by the direct products before)
    assert err < (6e-2 if single else 1e-7), (mixed, err)


def test_path_problem_retract_follows_rescaling_orbits():
    """`path_problem(retract=True)`'s trial point agrees with s + p to second order in p, and a step
    along the tangent of a layer-1 rescaling orbit (ϑ_j → cϑ_j, W₂[:, j] → W₂[:, j]/c) lands exactly on
    the orbit, where s + p leaves it; for a layer-1 pair there is no layer below and no retraction."""
    from jax.flatten_util import ravel_pytree

    from symland._newton_krylov import path_problem

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(6), (40, 3))
    problem = path_problem(model, 2, "mse", x, preconditioner="gauss-newton", retract=True)
    assert path_problem(model, 1, "mse", x, preconditioner="gauss-newton", retract=True).retract is None
    assert path_problem(model, 2, "mse", x, preconditioner="gauss-newton").retract is None
    v, unravel = ravel_pytree(model.init(jax.random.PRNGKey(1)))
    sv = problem.to_s(v)
    p = jax.random.normal(jax.random.PRNGKey(2), v.shape)
    gaps = [float(jnp.linalg.norm(problem.retract(sv, e * p) - (sv + e * p))) for e in (1e-2, 1e-3)]
    assert 0 < gaps[1] < 0.02 * gaps[0]  # O(‖p‖²): the gap shrinks 100× for a 10× shorter step
    c = 3.0
    orbit = lambda t: ravel_pytree(s.rescale_neurons(unravel(t), 1, [2], c))[0]
    (W1, b1), (W2, _), *_ = unravel(sv)  # d/dc of the orbit at c = 1: +ϑ_2 in layer 1, −W₂[:, 2] in layer 2
    tangent = ravel_pytree([(jnp.zeros_like(W1).at[2].set(W1[2]), jnp.zeros_like(b1).at[2].set(b1[2])),
                            (jnp.zeros_like(W2).at[:, 2].set(-W2[:, 2]), jnp.zeros(3)),
                            (jnp.zeros((2, 3)), jnp.zeros(2))])[0]
    np.testing.assert_allclose(problem.retract(sv, np.log(c) * tangent), orbit(sv), rtol=1e-12, atol=1e-12)
    assert float(jnp.linalg.norm(sv + np.log(c) * tangent - orbit(sv))) > 0.1


def test_trust_gn_takes_the_retracted_trial_points():
    """With `path_problem(retract=True)`, trust-pcg asks the retraction for one trial point per
    iteration and keeps the curved point it returns, not s + p: the answer, from a start with a
    layer-1 neuron rescaled 4×, is the last accepted curved point, at a lower loss than the start.
    (On these small softplus problems neither variant converges to 1e−10 in 300 iterations: the
    fixed-δ minimum lies down a rescaling channel; BENCHMARKS.md measures the gain on Fig. 3.)"""
    from jax.flatten_util import ravel_pytree

    from symland._newton_krylov import path_problem

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3))
    y = x[:, :2] ** 2 + 0.5
    start = s.rescale_neurons(model.init(jax.random.PRNGKey(1)), 1, [2], 4.0)
    v = ravel_pytree(path_module.rescale_direction(path_module.free_parameters(start, 2, 1, 2), 2, 2, 0.3))[0]
    args = (0.3, 1, 2, x, y)
    problem = path_problem(model, 2, "mse", x, preconditioner="gauss-newton", retract=True)
    inner, trials = problem.retract, []

    def recorded(sv, p):
        out = inner(sv, p)
        trials.append((np.asarray(out), np.asarray(sv + p)))
        return out

    problem.retract = recorded
    out = minimise_matrix_free(problem, v, args, method="trust-pcg", gtol=1e-10, max_steps=30,
                               factors=lambda: problem.factorise(v, *args))
    assert len(trials) == out.steps == 30
    start_loss = float(problem.value_grads(problem.to_s(v), *args)[0])
    got = np.asarray(problem.to_s(jnp.asarray(out.x)))
    gaps = [(np.max(np.abs(got - curved)), np.max(np.abs(got - flat))) for curved, flat in trials]
    curved_gap, flat_gap = min(gaps)
    assert curved_gap < 1e-10 < 1e-6 < flat_gap, (curved_gap, flat_gap)
    assert out.loss < start_loss


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_polarised_grams_are_the_weighted_grams(dtype):
    """Each block is Xᵀ diag(a_jk) X for A[t] = J[t]ᵀJ[t] positive semi-definite, off-diagonal blocks
    (by polarisation) included, in any order of the pairs; symmetric; float32 stays float32, with
    errors of a few float32 units of the diagonal blocks' scale."""
    from symland._newton_krylov import polarised_grams

    rng = np.random.default_rng(3)
    X, J = rng.standard_normal((60, 7)), rng.standard_normal((60, 4, 3))
    A = np.einsum("toj,tok->tjk", J, J)
    pairs = [(0, 1), (2, 2), (0, 0), (1, 2), (0, 2), (1, 1)]
    B = polarised_grams(X.astype(dtype), A.astype(dtype), pairs)
    assert B.dtype == dtype and B.shape == (6, 7, 7)
    exact = np.stack([X.T @ (A[:, j, k][:, None] * X) for j, k in pairs])
    scale = max(np.abs(exact[i]).max() for i, (j, k) in enumerate(pairs) if j == k)
    tol = 1e-13 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(B, exact, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(B, np.swapaxes(B, 1, 2), rtol=0, atol=tol * scale)


def test_polarised_grams_refuses_mismatched_shapes():
    from symland._newton_krylov import polarised_grams

    with pytest.raises(ValueError, match="A"):
        polarised_grams(np.ones((5, 3)), np.ones((4, 2, 2)), [(0, 1)])


# (predictor, solver, retract) ↦ whether the path extrapolates in the rescaling coordinates. Each variant
# is one 4-step path (about 5 s once the first has compiled); the two that repeat a "no" are slow.
PREDICTOR_VARIANTS = {("auto", "trust-gn", True): True, ("auto", "trust-gn", False): False,
                      ("rescaling", "trust-ncg", True): True, ("theta", "trust-gn", True): False,
                      ("auto", "trust-ncg", True): False}


@pytest.mark.parametrize("variants", [list(PREDICTOR_VARIANTS)[:3],
                                      pytest.param(list(PREDICTOR_VARIANTS)[3:], marks=pytest.mark.slow)])
def test_matrix_free_paths_predicts_in_rescaling_coordinates_where_asked(layer2_toy, monkeypatch, variants):
    """`predictor`: "theta" never extrapolates in the rescaling coordinates; "rescaling" does (any
    solver); "auto" does where the trust region retracts (trust-gn with `retract`) and not otherwise.
    The candidates are only starts: each variant records the same δ, and every step it ends is
    converged or an honest status."""
    import symland._newton_krylov as nk
    from symland._results import RESULT_NAMES

    model, teacher, x, y, deltas = layer2_toy
    calls, real = [], nk.extrapolate_rescaled

    def counted(points, at, unravel, layer):
        calls.append(layer)
        return real(points, at, unravel, layer)

    monkeypatch.setattr(nk, "extrapolate_rescaled", counted)
    for predictor, solver, retract in variants:
        calls.clear()
        path, = nk.matrix_free_paths(model, teacher, x, y, 2, [(1, 2)], deltas, loss="mse",
                                     max_steps=40, solver=solver, retract=retract, predictor=predictor)
        assert path.delta.size == deltas.size and set(path.status) <= set(RESULT_NAMES)
        if PREDICTOR_VARIANTS[predictor, solver, retract]:
            assert calls and set(calls) == {1}, (predictor, solver, retract)  # layer k − 1 = 1's coordinates
        else:
            assert not calls, (predictor, solver, retract)


@pytest.mark.parametrize("predictor, layer", [("bogus", 2), ("", 2), (None, 2), ("rescaling", 1)])
def test_matrix_free_paths_refuses_bad_predictor(predictor, layer):
    from symland._newton_krylov import matrix_free_paths

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jnp.ones((5, 3))
    p = model.init(jax.random.PRNGKey(1))
    with pytest.raises(ValueError, match="predictor"):
        matrix_free_paths(model, p, x, model.apply(p, x), layer, [(0, 1)], np.array([[1.0, 0.5]]),
                          predictor=predictor)


def test_extrapolate_hermite_reproduces_polynomials_with_the_slope_at_the_first_point():
    """k points and the derivative at the first reproduce a vector polynomial of degree k exactly, on
    uneven nodes; one point gives the tangent line; a wrong slope changes the prediction."""
    from symland._newton_krylov import extrapolate_hermite

    c = [np.array([1.0, -2.0]), np.array([0.5, 3.0]), np.array([-0.25, 0.1]), np.array([0.3, -0.7])]
    f = lambda t, k: sum(ci * t ** i for i, ci in enumerate(c[:k + 1]))
    df0 = lambda t0, k: sum(i * ci * t0 ** (i - 1) for i, ci in enumerate(c[:k + 1]) if i)
    nodes = (-1.0, -0.7, -0.1)
    for k in (1, 2, 3):
        pts = [(t, f(t, k)) for t in nodes[:k]]
        np.testing.assert_allclose(extrapolate_hermite(pts, df0(nodes[0], k), 0.4), f(0.4, k), rtol=1e-12)
    pts = [(t, f(t, 3)) for t in nodes]
    assert not np.allclose(extrapolate_hermite(pts, df0(nodes[0], 3) + 0.1, 0.4), f(0.4, 3))
    np.testing.assert_allclose(extrapolate_hermite(pts[:1], np.array([2.0, 1.0]), 0.4),
                               f(-1.0, 3) + 1.4 * np.array([2.0, 1.0]), rtol=1e-12)


def test_path_tangent_is_the_derivative_of_the_minima():
    """At a zero-loss minimum of L(v, δ) = ½Σ(vᵢ³ + vᵢ − δcᵢ)², v*(δ) solves v³ + v = δc, so
    dv*/d log δ = δc/(3v² + 1): path_tangent finds it (identity preconditioner) in at most n products.
    At a saddle (L = ½(v₀² − v₁²) − δ(v₀ + v₁), H = diag(1, −1)) CG meets negative curvature: None."""
    from symland._newton_krylov import path_tangent

    c = jnp.array([0.3, -1.2, 2.0, 0.7])
    prob = FlatProblem(lambda v, d: 0.5 * jnp.sum((v ** 3 + v - d * c) ** 2))
    delta = 1.7
    v = np.zeros(4)
    for _ in range(60):  # Newton on v³ + v = δc, componentwise
        v = v - (v ** 3 + v - delta * np.asarray(c)) / (3 * v ** 2 + 1)
    t, used = path_tangent(prob, v, (delta,), ())
    np.testing.assert_allclose(t, delta * np.asarray(c) / (3 * v ** 2 + 1), rtol=1e-9)
    assert 1 <= used <= 4
    saddle = FlatProblem(lambda v, d: 0.5 * (v[0] ** 2 - v[1] ** 2) - d * (v[0] + v[1]))
    t, used = path_tangent(saddle, np.array([delta, -delta]), (delta,), ())
    assert t is None and used == 1


def test_path_tangent_at_the_teacher_agrees_with_finite_differences(toy_paths):
    """On the toy's fixed-δ problem (Gauss–Newton preconditioner, zero loss at θ*), the tangent of the
    path of minima at θ* matches central differences of the minima at δ₀e^{±h} (solved to 1e-14,
    Richardson-extrapolated in h),
    mapped to θ (the direction u/‖u‖ makes θ independent of ‖u‖, which the loss does not fix)."""
    from jax.flatten_util import ravel_pytree

    import symland._newton_krylov as nk
    from symland._path import effective_params, free_parameters, rescale_direction

    prob, dense, _ = toy_paths
    problem = nk.path_problem(prob.model, 1, "mse", prob.x, preconditioner="gauss-newton")
    theta, unravel = ravel_pytree(prob.teacher)
    d0 = float(dense.delta[0])
    v0 = ravel_pytree(rescale_direction(free_parameters(prob.teacher, 1, L_, M_, None), 1, M_, d0))[0]
    to_theta = lambda v, d: ravel_pytree(effective_params(unravel(v), 1, L_, M_, d, None))[0]
    args = lambda d: (d, L_, M_, prob.x, prob.y)
    factors = problem.factorise(v0, *args(d0), damping=nk.GN_DAMPING_NEAR)
    t_v, used = nk.path_tangent(problem, v0, args(d0), factors)
    assert t_v is not None and used <= 10
    slope = jax.jvp(to_theta, (v0, jnp.asarray(d0)), (jnp.asarray(t_v), jnp.asarray(d0)))[1]

    def central(h):
        ends = []
        for sign in (1.0, -1.0):
            d = d0 * np.exp(sign * h)
            sol = minimise_matrix_free(problem, v0 + sign * h * t_v, args(d), gtol=1e-14, method="trust-ncg")
            assert sol.converged, sol.status
            ends.append(to_theta(jnp.asarray(sol.x), d))
        return (ends[0] - ends[1]) / (2 * h)

    # Richardson: the O(h²) error of the central difference cancels
    fd = (4 * central(5e-4) - central(1e-3)) / 3
    np.testing.assert_allclose(slope, fd, atol=1e-6 * float(jnp.max(jnp.abs(fd))))


def test_trust_gn_path_predicts_its_first_steps_from_the_tangent(toy_paths, monkeypatch):
    """tangent=True (default, trust-gn): step 0 (θ*) adds one factorisation at GN_DAMPING_NEAR and the
    tangent's HVPs, and the first steps get a Hermite candidate; the path finds the same minima as
    with tangent=False. Only above DENSE_THRESHOLD parameters does step 1 then start at
    GN_DAMPING_NEAR: on this toy that damping makes the first step take more HVPs."""
    import symland._newton_krylov as nk

    prob, dense, _ = toy_paths
    calls = []
    real = nk.extrapolate_hermite
    monkeypatch.setattr(nk, "extrapolate_hermite", lambda *a: calls.append(len(a[0])) or real(*a))
    runs = {}
    for tangent in (True, False):
        built = _log_factorisations(monkeypatch)
        logged = []
        path, = nk.matrix_free_paths(prob.model, prob.teacher, prob.x, prob.y, 1, [(L_, M_)],
                                     dense.delta[None, :5], loss="mse", gtol=1e-10, solver="trust-gn",
                                     tangent=tangent, on_step=lambda i, d, r: logged.append(r))
        assert path.all_converged, (tangent, path.status)
        np.testing.assert_allclose(path.loss, dense.loss[:5], atol=1e-20, rtol=1e-6)
        runs[tangent] = (logged, built, list(calls))
        calls.clear()
    (on, built_on, calls_on), (off, built_off, calls_off) = runs[True], runs[False]
    assert (on[0].factorisations, off[0].factorisations) == (1, 0) and on[0].hvps > 0 == off[0].hvps
    assert built_on[0] == nk.GN_DAMPING_NEAR and built_on[1] is None and built_off[0] is None
    assert calls_on and min(calls_on) == 1 and not calls_off  # step 1: the tangent line from θ* alone
    # above DENSE_THRESHOLD, step 1's factors are built at GN_DAMPING_NEAR, which on this toy costs HVPs
    monkeypatch.setattr(nk, "DENSE_THRESHOLD", 0)
    built = _log_factorisations(monkeypatch)
    near = []
    nk.matrix_free_paths(prob.model, prob.teacher, prob.x, prob.y, 1, [(L_, M_)], dense.delta[None, :2],
                         loss="mse", gtol=1e-10, solver="trust-gn", on_step=lambda i, d, r: near.append(r))
    assert built[:2] == [nk.GN_DAMPING_NEAR] * 2
    assert near[1].converged and near[1].hvps > on[1].hvps, (near[1].hvps, on[1].hvps)


@pytest.mark.parametrize("tangent", [None, 1, "yes"])
def test_matrix_free_paths_refuses_bad_tangent(toy_paths, tangent, monkeypatch):
    import symland._newton_krylov as nk

    prob, dense, _ = toy_paths
    monkeypatch.setattr(nk, "path_problem", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValueError, match="tangent"):
        nk.matrix_free_paths(prob.model, prob.teacher, prob.x, prob.y, 1, [(L_, M_)], dense.delta[None, :2],
                             loss="mse", solver="trust-gn", tangent=tangent)


@pytest.fixture(scope="module")
def layer2_toy():
    """A 3-4-3-2 softplus teacher (zero residual), its data and the δ schedule of pair 1 & 2 in layer 2."""
    from symland._path import delta_schedule

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3))
    teacher = model.init(jax.random.PRNGKey(1))
    deltas = float(s.pair_distance(teacher, 2, 1, 2)) * delta_schedule(1.0, 4, 1e-4)
    return model, teacher, x, model.apply(teacher, x), deltas[None, :]


def test_matrix_free_paths_finds_the_even_block_by_lobpcg(layer2_toy):
    """even_block="lobpcg": the report joins the exact σ-odd block with the even block's smallest
    eigenvalues (those of `even_block_spectrum` at the same point, kept as the path's `even_block`);
    its index is the dense Hessian's, one of its negatives in the even block; the record says it."""
    import json

    model, teacher, x, y, deltas = layer2_toy
    path, = matrix_free_paths(model, teacher, x, y, 2, [(1, 2)], deltas, loss="mse", max_steps=300,
                              solver="trust-gn", even_block="lobpcg")
    loss = lambda q: s.mse(model, q, x, y)
    r, e = path.permutation_point_report, path.even_block
    odd = s.odd_block_spectrum(loss, path.permutation_point, 2, 1, 2)
    assert r.part == "smallest" and e.converged and e.n_flat == 0
    again = s.even_block_spectrum(model, path.permutation_point, x, y, 2, 1, 2, k=e.eigenvalues.size)
    np.testing.assert_allclose(e.eigenvalues, again.eigenvalues, rtol=1e-8)
    assert set(np.round(r.eigenvalues, 14)) == set(np.round(np.concatenate([odd[odd <= e.eigenvalues[-1]],
                                                                            e.eigenvalues]), 14))
    full = np.asarray(s.hessian_spectrum(loss, path.permutation_point, method="dense"))
    assert np.max(np.min(np.abs(full[None, :] - e.eigenvalues[:, None]), axis=1)) <= 1e-9  # eigenvalues of ∇²L
    assert np.sum(e.eigenvalues < -r.zero_tol) >= 1 and r.decided
    assert path.permutation_point_index == (int(np.sum(full < -r.zero_tol)), True)
    assert r.nullity == int(np.sum(np.abs(full) <= r.zero_tol))
    record = json.loads(json.dumps(path.to_dict()))["permutation_point"]
    assert record["index"] == r.index and record["index_exact"] is True and record["part"] == "smallest"
    assert record["even_block"]["eigenvalues"] == e.eigenvalues.tolist()


def test_matrix_free_paths_even_block_auto(layer2_toy, monkeypatch):
    """even_block="auto" uses LOBPCG above DENSE_THRESHOLD at a critical point only: here (10,
    so that 39 parameters count as large) with a lax gradient tolerance that makes the point
    critical, and not with the default one; "lanczos" never."""
    import symland._critical as critical
    import symland._plateau as plateau

    model, teacher, x, y, deltas = layer2_toy
    calls, real = [], plateau.even_block_spectrum

    def counted(*a, **kw):
        calls.append(kw["k"])
        return real(*a, **kw)

    monkeypatch.setattr(plateau, "even_block_spectrum", counted)
    monkeypatch.setattr(critical, "DENSE_THRESHOLD", 10)
    kw = dict(loss="mse", max_steps=40, solver="trust-gn")
    plain, = matrix_free_paths(model, teacher, x, y, 2, [(1, 2)], deltas, even_block="auto", **kw)
    assert not plain.permutation_point_report.is_critical and plain.even_block is None and not calls
    monkeypatch.setattr(path_module, "CRITICAL_GTOL", 1e-3)
    auto, = matrix_free_paths(model, teacher, x, y, 2, [(1, 2)], deltas, even_block="auto", **kw)
    assert auto.permutation_point_report.is_critical and auto.even_block is not None and calls == [6]
    lanczos, = matrix_free_paths(model, teacher, x, y, 2, [(1, 2)], deltas, even_block="lanczos", **kw)
    assert lanczos.even_block is None and calls == [6] and lanczos.permutation_point_report.part != "partial"
    assert auto.permutation_point_index[0] == lanczos.permutation_point_index[0]


@pytest.mark.parametrize("even_block, layer", [("bogus", 2), (None, 2), ("congruence", 2), ("lobpcg", 1)])
def test_matrix_free_paths_refuses_bad_even_block(even_block, layer, monkeypatch):
    import symland._newton_krylov as nk

    model = s.MLP((3, 4, 3, 2), "softplus")
    x = jnp.ones((5, 3))
    p = model.init(jax.random.PRNGKey(1))
    monkeypatch.setattr(nk, "path_problem", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValueError, match="^even_block:"):
        matrix_free_paths(model, p, x, model.apply(p, x), layer, [(0, 1)], np.array([[1.0, 0.5]]),
                          even_block=even_block)
