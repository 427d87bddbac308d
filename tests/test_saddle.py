import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import symland as s
from symland.experiments.saddle import saddle_section

# tanh seed 2, pair 2 & 3: the fixed-δ path is complete and θ_{l⇔m} has index 1
# (README table); pair 1 & 2 has no complete fixed-δ path, so its path comes from
# the transition network (descents from permutation points, joined over plateaus).
PROBLEM = s.toy_problem("tanh", seed=2)


@pytest.fixture(scope="module")
def results():
    return s.permutation_saddles(PROBLEM.model, PROBLEM.teacher, PROBLEM.x, PROBLEM.y, 1,
                                 [(2, 3), (1, 2)])


def test_certified_saddle_and_exact_endpoints(results):
    for r in results:
        assert r.certified, r.to_dict()
        rep = r.saddle_report
        assert rep.grad_norm <= 1e-10 and rep.complete and rep.index >= 1
        # The report's numbers are the dense Hessian's, recomputed independently.
        again = s.classify_critical_point(lambda p: s.mse(PROBLEM.model, p, PROBLEM.x, PROBLEM.y),
                                          r.saddle, gtol=1e-10)
        assert again.index == rep.index and again.nullity == rep.nullity
        start = np.asarray(ravel_pytree(PROBLEM.teacher)[0])
        end = np.asarray(ravel_pytree(s.swap_neurons(PROBLEM.teacher, 1, r.l, r.m))[0])
        np.testing.assert_array_equal(r.mep.images[0], start)
        np.testing.assert_array_equal(r.mep.images[-1], end)
        # Loss along the piecewise-linear path (denser than the error estimate's sampling).
        unravel = ravel_pytree(PROBLEM.teacher)[1]
        f = jax.jit(jax.vmap(lambda v: s.mse(PROBLEM.model, unravel(v), PROBLEM.x, PROBLEM.y)))
        X = r.mep.images
        w = np.linspace(0.0, 1.0, 33)
        pts = np.concatenate([(1 - w)[:, None] * X[i] + w[:, None] * X[i + 1] for i in range(len(X) - 1)])
        assert float(np.max(f(jnp.asarray(pts)))) <= rep.loss + r.mep.discretisation_error \
            + 1e-3 * r.barrier
        assert r.barrier == pytest.approx(rep.loss - float(r.mep.loss[0]))


def test_consistency_with_the_complete_fixed_delta_path(results):
    """Where the fixed-δ path is complete and θ_{l⇔m} has index 1, the MEP saddle is
    θ_{l⇔m} (Fig. 4 A) or lies below it. (`permutation_saddle`'s docstring runs this pair alone, in the
    slow suite: status converged, certified, relation top by the fixed-δ route.)"""
    r = results[0]
    assert (r.l, r.m, r.status) == (2, 3, "converged")
    assert r.init == "fixed-delta" and r.permutation_point is not None
    assert r.permutation_point.index == 1
    rel = r.relation
    assert rel["route"] == "fixed-delta"
    assert rel["relation"] == "top" or rel["loss_difference"] < 0
    if rel["relation"] == "top":
        assert abs(rel["loss_difference"]) <= 1e-10 and rel["saddle_incoming_distance"] <= 1e-6
    d = r.to_dict()
    assert d["relation"]["route"] == "fixed-delta" and d["certified"]
    assert r.network is None and d["network"] is None  # the fixed-δ band certified: no network consulted


def test_network_route_when_the_fixed_delta_path_fails(results):
    r = results[1]
    assert r.fixed_delta is not None and not r.fixed_delta.all_converged
    assert r.init in ("network", "valley") and r.permutation_point is None
    assert r.mep.method == r.init and r.relation["route"] == "mep"
    # Its top is a permutation point of the loss of θ_{2⇔3} (README table), the lowest
    # plateau of this teacher.
    assert r.saddle_report.loss == pytest.approx(1.74077e-3, rel=1e-5)
    assert r.to_dict()["mep"]["method"] == r.init
    assert r.network == "joined" and r.to_dict()["network"] == "joined"


@pytest.mark.parametrize("init", ["merged", "descent"])
def test_band_initialisations_are_honest(init):
    """A band (from the merged configuration, or through the minimum on Fix(σ) and its
    descents) is never reported certified unless it is."""
    r = s.permutation_saddle(PROBLEM.model, PROBLEM.teacher, PROBLEM.x, PROBLEM.y, 1, 1, 2,
                             init=init, max_steps=300)
    assert r.init in ({"merged"} if init == "merged" else {"descent", "fix-minimum"})
    assert r.mep.method == "neb" and r.mep.images.shape[0] >= 3
    if r.certified:
        assert r.saddle_report.grad_norm <= 1e-10 and str(r.saddle_report.kind) == "strict saddle"
    else:
        assert r.status != "converged" or str(r.saddle_report.kind) != "strict saddle"


def test_merged_configuration_is_sigma_fixed():
    p = s.merged_configuration(PROBLEM.teacher, 1, 0, 3)
    q = s.swap_neurons(p, 1, 0, 3)
    np.testing.assert_array_equal(ravel_pytree(p)[0], ravel_pytree(q)[0])
    # The output sum is kept.
    assert float(p[1][0][0, 0] + p[1][0][0, 3]) == pytest.approx(
        float(PROBLEM.teacher[1][0][0, 0] + PROBLEM.teacher[1][0][0, 3]))


def test_bad_input_names_the_argument():
    P = PROBLEM
    with pytest.raises(ValueError, match="^l, m"):
        s.permutation_saddle(P.model, P.teacher, P.x, P.y, 1, 2, 2)
    with pytest.raises(ValueError, match="^images"):
        s.permutation_saddle(P.model, P.teacher, P.x, P.y, 1, 0, 1, images=2)
    bad = [(P.teacher[0][0].at[0, 0].set(jnp.nan), P.teacher[0][1]), P.teacher[1]]
    with pytest.raises(ValueError, match="^params"):
        s.permutation_saddle(P.model, bad, P.x, P.y, 1, 0, 1)
    with pytest.raises(ValueError, match="^init"):
        s.permutation_saddle(P.model, P.teacher, P.x, P.y, 1, 0, 1, init="straight")
    with pytest.raises(ValueError, match="^pairs"):
        s.permutation_saddles(P.model, P.teacher, P.x, P.y, 1, "some")


def test_a_path_that_rises_above_its_saddle_is_not_certified(results):
    r = results[0]
    assert r.certified
    risen = dataclasses.replace(r, mep=dataclasses.replace(r.mep, discretisation_error=0.2 * r.barrier))
    assert not risen.certified and not risen.to_dict()["certified"]


def test_report_says_why_the_network_gave_no_path(results):
    """The toy report's MEP-init cell names the network's gap beside the fallback route."""
    gap = dataclasses.replace(results[1], init="descent", network="no plateau reaches θ*")
    page = saddle_section([results[0], gap])
    assert "descent (network: no plateau reaches θ*)" in page
    assert "(network:" not in saddle_section([results[0], results[1]])
