import jax.numpy as jnp
import numpy as np
import pytest

import symland as s
from symland._mep import segment_losses, sublevel_path

# Müller–Brown potential (Müller & Brown 1979, Theor. Chim. Acta 53, 75).
A = jnp.array([-200.0, -100.0, -170.0, 15.0])
a = jnp.array([-1.0, -1.0, -6.5, 0.7])
b = jnp.array([0.0, 0.0, 11.0, 0.6])
c = jnp.array([-10.0, -10.0, -6.5, 0.7])
X0 = jnp.array([1.0, 0.0, -0.5, -1.0])
Y0 = jnp.array([0.0, 0.5, 1.5, 1.0])


def muller_brown(p):
    dx, dy = p[0] - X0, p[1] - Y0
    return jnp.sum(A * jnp.exp(a * dx ** 2 + b * dx * dy + c * dy ** 2))


# Literature values (e.g. Müller & Brown 1979; Bonfanti & Kob 2017, Table 1), 3 decimals.
MINIMA = [(-0.558, 1.442, -146.70), (0.623, 0.028, -108.17), (-0.050, 0.467, -80.77)]
SADDLES = [(-0.822, 0.624, -40.66), (0.212, 0.293, -72.25)]


@pytest.fixture(scope="module")
def mep():
    m1 = s.minimise(muller_brown, jnp.array([-0.55, 1.44])).value
    m2 = s.minimise(muller_brown, jnp.array([0.62, 0.03])).value
    return s.minimum_energy_path(muller_brown, m1, m2), m1, m2


def test_muller_brown_saddles_to_1e_8(mep):
    path, m1, m2 = mep
    assert path.status == "converged", path.to_dict()
    assert len(path.saddles) == 2
    for (params, report), (xs, ys, ls) in zip(path.saddles, SADDLES):  # highest first
        assert report.grad_norm <= 1e-8 * max(1.0, abs(report.loss))
        assert str(report.kind) == "strict saddle" and report.index == 1 and report.nullity == 0
        assert abs(float(params[0]) - xs) < 1e-3 and abs(float(params[1]) - ys) < 1e-3
        assert abs(report.loss - ls) < 1e-2
        # An independent refinement from the literature's 3-decimal point reaches the same saddle.
        ref = s.refine_critical_point(muller_brown, jnp.array([xs, ys]))
        assert ref.converged
        np.testing.assert_allclose(np.asarray(params), np.asarray(ref.value), atol=1e-8)
        # Finite differences agree that the gradient vanishes there.
        h = 1e-6
        fd = [(muller_brown(params + h * e) - muller_brown(params - h * e)) / (2 * h)
              for e in jnp.eye(2)]
        assert max(abs(float(g)) for g in fd) < 1e-5
    # The path crosses the intermediate minimum (−0.050, 0.467).
    v = path.loss
    minima = [i for i in range(1, len(v) - 1) if v[i] < v[i - 1] and v[i] < v[i + 1]]
    assert len(minima) == 1
    assert np.linalg.norm(path.images[minima[0]] - np.array(MINIMA[2][:2])) < 0.1
    assert path.barrier == pytest.approx(SADDLES[0][2] - MINIMA[0][2], abs=1e-2)


def test_endpoints_exact_and_discretisation_error(mep):
    path, m1, m2 = mep
    np.testing.assert_array_equal(path.images[0], np.asarray(m1))
    np.testing.assert_array_equal(path.images[-1], np.asarray(m2))
    assert path.loss[0] == pytest.approx(float(muller_brown(m1)), abs=1e-12)
    assert path.arclength[0] == 0.0 and np.all(np.diff(path.arclength) > 0)
    # A 4× denser sampling of the piecewise-linear path than the one that set the error.
    w = np.linspace(0.0, 1.0, 65)
    X = path.images
    dense = [float(muller_brown(jnp.asarray((1 - t) * X[i] + t * X[i + 1])))
             for i in range(len(X) - 1) for t in w]
    top = path.saddle_report.loss
    assert max(dense) <= top + path.discretisation_error + 1e-3 * path.barrier
    d = path.to_dict()
    assert d["status"] == "converged" and len(d["saddles"]) == 2
    assert path.params(0).shape == (2,)


def test_monotone_band_has_no_saddle():
    bowl = lambda p: jnp.sum(p ** 2)
    path = s.minimum_energy_path(bowl, jnp.array([1.0, 0.0]), jnp.array([0.0, 0.0]), images=5)
    assert path.saddles == [] and path.saddle is None and np.isnan(path.barrier)


def bump(p, data=None):
    """A double well (saddle (0, 0), L = 1) whose straight path between its minima crosses a bump of height 2
    (just off the axis, so that the straight start is not a symmetric point of the objective)."""
    return (p[0] ** 2 - 1.0) ** 2 + 2.0 * p[1] ** 2 + 2.0 * jnp.exp(-((p[0] + 0.5) ** 2 + (p[1] - 0.03) ** 2) / 0.02)


def test_sublevel_path_goes_round_a_bump_below_the_level():
    """From one well to the other below L = 1.1 (the saddle (0, 0) has L = 1): the straight path is blocked."""
    a, b = np.array([-1.0, 0.0]), np.array([1.0, 0.0])
    straight = np.linspace(a, b, 41)
    assert max(float(bump(x)) for x in straight) > 2.0
    X = sublevel_path(bump, a, b, 1.1, images=16, steps=1000)
    np.testing.assert_array_equal(X[0], a)
    np.testing.assert_array_equal(X[-1], b)
    dense = np.asarray(segment_losses(bump, jnp.asarray(X), 32))
    assert dense.max() < 1.1 and max(float(bump(x)) for x in X) < 1.1
    assert np.max(np.abs(X[:, 1])) > 0.1  # it went round the bump


def test_bad_input_names_the_argument():
    f = lambda p: jnp.sum(p ** 2)
    with pytest.raises(ValueError, match="^end"):
        s.minimum_energy_path(f, jnp.zeros(2), jnp.zeros(3))
    with pytest.raises(ValueError, match="^end"):
        s.minimum_energy_path(lambda p: p["a"] ** 2, {"a": jnp.zeros(())}, {"b": jnp.zeros(())})
    with pytest.raises(ValueError, match="^images"):
        s.minimum_energy_path(f, jnp.zeros(2), jnp.ones(2), images=2)
    with pytest.raises(ValueError, match="^start"):
        s.minimum_energy_path(f, jnp.array([jnp.nan, 0.0]), jnp.ones(2))
    with pytest.raises(ValueError, match="^end"):
        s.minimum_energy_path(f, jnp.zeros(2), jnp.array([jnp.inf, 0.0]))
    with pytest.raises(ValueError, match="^init"):
        s.minimum_energy_path(f, jnp.zeros(2), jnp.ones(2), init=np.zeros((3, 5)))
    with pytest.raises(ValueError, match="^gtol"):
        s.minimum_energy_path(f, jnp.zeros(2), jnp.ones(2), gtol=0.0)
