"""The result vocabulary (`symland._results`): one enumeration, one verdict rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import symland as s
from symland._results import (RESULT_NAMES, CriticalPointReport, Kind, check_tolerance,
                              classify_spectrum, count_signs, result_item, result_message,
                              result_name, result_names, zero_tolerance)


def test_every_result_has_a_name_and_a_message():
    assert RESULT_NAMES[:4] == ("converged", "max_steps", "diverged", "stalled")
    assert {"kink", "escape", "rescaling", "failed"} <= set(RESULT_NAMES)
    for name in RESULT_NAMES:
        item = result_item(name)
        assert result_name(item) == name
        assert result_message(name).startswith(name + ":")
    with pytest.raises(ValueError, match="result"):
        result_name("done")


def test_solver_results_use_the_enumeration_under_vmap():
    f = lambda x: jnp.sum((x - 1.0) ** 2) + jnp.sum(x ** 4)
    x0 = jnp.zeros((3, 2))
    res = jax.vmap(lambda x: s.refine_critical_point(f, x, max_steps=1))(x0)
    assert result_names(res.status) == ("max_steps",) * 3
    one = s.minimise(f, jnp.zeros(2))
    assert one.status_name == "converged" and one.to_dict()["status"] == "converged"
    bad = s.minimise(lambda x: jnp.sum(x ** 2) - 1e3 * jnp.sum(x ** 3), jnp.ones(2), max_steps=3)
    assert bad.status_name in ("diverged", "max_steps", "stalled") and not bad.converged


@pytest.mark.parametrize("eig, part, grad, kind", [
    ([-1.0, 1.0, 2.0], "all", 0.0, Kind.strict_saddle),
    ([1.0, 2.0], "all", 0.0, Kind.minimum),
    ([0.0, 1.0, 2.0], "all", 0.0, Kind.degenerate),
    ([1.0, 2.0], "all", 1.0, Kind.not_critical),
    ([1.0, 2.0], "all", float("nan"), Kind.not_critical),
    # Lanczos: the k smallest all clearly positive decide a minimum.
    ([0.5, 0.7, 0.9], "smallest", 0.0, Kind.minimum),
    ([0.0, 0.7], "smallest", 0.0, Kind.degenerate),
    ([-3.0, 0.7], "smallest", 0.0, Kind.strict_saddle),
    ([5.0, 9.0], "largest", 0.0, Kind.undecided),
    ([1e-3, -1e-3], "nearest_zero", 0.0, Kind.strict_saddle),
    ([1e-3, 2e-3], "nearest_zero", 0.0, Kind.undecided),
])
def test_classify_spectrum(eig, part, grad, kind):
    got = classify_spectrum(np.array(eig), grad_norm=grad, gtol=1e-10, part=part, n=50)
    assert got is kind
    assert str(got) == kind.value


def test_classify_spectrum_bad_input():
    with pytest.raises(ValueError, match="part"):
        classify_spectrum([1.0], grad_norm=0.0, gtol=1.0, part="middle")
    with pytest.raises(ValueError, match="eigenvalues"):
        classify_spectrum([], grad_norm=0.0, gtol=1.0)
    for bad in (float("nan"), -1e-12, float("inf"), "0"):
        with pytest.raises(ValueError, match="^zero_tol: "):  # NaN made every eigenvalue "zero"
            classify_spectrum([-1.0, 2.0], grad_norm=0.0, gtol=1.0, zero_tol=bad)
        with pytest.raises(ValueError, match="^zero_tol: "):
            CriticalPointReport.from_spectrum(0.0, 0.0, [-1.0, 2.0], gtol=1.0, zero_tol=bad)
    for bad in (float("nan"), 0.0, -1.0, None):
        with pytest.raises(ValueError, match="^gtol: "):  # NaN made every point "not critical"
            classify_spectrum([-1.0, 2.0], grad_norm=0.0, gtol=bad)
    assert classify_spectrum([-1.0, 2.0], grad_norm=0.0, gtol=jnp.float64(1.0), zero_tol=0) == Kind.strict_saddle


def test_zero_tolerance_and_signs():
    eig = np.array([-1.0, -1e-20, 0.0, 1e-20, 2.0])
    tol = zero_tolerance(eig)
    assert tol == pytest.approx(100 * 5 * np.finfo(float).eps * 2.0)
    assert count_signs(eig, tol) == (1, 3, 1)
    assert zero_tolerance([1.0], n=10, scale=50.0) == pytest.approx(100 * 10 * np.finfo(float).eps * 50)


def test_report_from_spectrum_round_trips_to_dict():
    r = CriticalPointReport.from_spectrum(0.5, 1e-12, [3.0, -1.0, 0.0], gtol=1e-8)
    assert (r.index, r.nullity, r.n_positive, r.kind) == (1, 1, 1, Kind.strict_saddle)
    d = r.to_dict()
    assert d["kind"] == "strict saddle" and d["min_eigenvalue"] == -1.0 and d["part"] == "all"
    assert r.is_critical and r.complete and r.decided
    smallest = lambda eig: CriticalPointReport.from_spectrum(0.5, 0.0, eig, gtol=1e-8, part="smallest", n=9)
    assert smallest([-1.0, 2.0]).decided and not smallest([-1.0, -0.5]).decided
    assert not CriticalPointReport.from_spectrum(0.5, 0.0, [-1.0, 2.0], gtol=1e-8, part="partial", n=9).decided


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "1e-8", 1j])
def test_check_tolerance_rejects(value):
    with pytest.raises(ValueError, match="gtol"):
        check_tolerance(value, "gtol")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_solvers_and_classifier_reject_non_finite_params(bad):
    f = lambda x: jnp.sum(x ** 2)
    x = jnp.array([1.0, bad])
    for call in (lambda: s.minimise(f, x), lambda: s.refine_critical_point(f, x),
                 lambda: s.classify_critical_point(f, x), lambda: s.hessian_spectrum(f, x),
                 lambda: s.hessian_spectrum(f, jnp.concatenate([x, jnp.ones(3)]), method="lanczos", k=2)):
        with pytest.raises(ValueError, match="params"):
            call()
    with pytest.raises(ValueError, match="params"):
        s.minimise(f, np.array([1.0 + 1j]))
    for gtol in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="gtol"):
            s.minimise(f, jnp.ones(2), gtol=gtol)


def test_x64_and_machine_epsilon_have_one_home():
    """x64 is switched on only in symland/__init__.py; ε only in _results (issue 13, §3)."""
    import re
    from pathlib import Path

    src = Path(s.__file__).parent
    x64 = [p.relative_to(src).as_posix() for p in src.rglob("*.py") if "jax_enable_x64" in p.read_text()]
    assert x64 == ["__init__.py"], x64
    eps = [p.relative_to(src).as_posix() for p in src.rglob("*.py")
           if re.search(r"finfo\([^)]*\)\.eps\b", p.read_text())]
    assert eps == ["_results.py"], eps
