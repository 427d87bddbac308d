import json

import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from symland import MLP, classify_critical_point, loss_function
from symland._splitting import (classify_splitting_line, split_neuron, splitting_direction,
                                splitting_matrix)

from microscope_points import narrow_critical_point

LAMS = (-0.5, 0.3, 0.5, 1.6)


@pytest.fixture(scope="module")
def narrow():
    # softplus, no bias, 2 inputs: F is 2×2; neuron 0 of seed 0 has F > 0, neuron 1 of seed 1 F < 0
    out = {}
    for seed in (0, 1):
        model, p, x, y, r = narrow_critical_point((2, 2, 1), (2, 4, 1), activation="softplus",
                                                  seed=seed, bias=False)
        assert r.converged
        out[seed] = (model, p, x, y, loss_function(MLP((2, 3, 1), "softplus", bias=False), x, y))
    return out


@pytest.mark.parametrize("seed, m, expect", [
    (0, 0, {"(-inf,0)": "strict saddle", "(0,1)": "minimum", "(1,inf)": "strict saddle"}),     # F positive definite
    (1, 1, {"(-inf,0)": "minimum", "(0,1)": "strict saddle", "(1,inf)": "minimum"}),    # F negative definite
    (0, 1, {"(-inf,0)": "strict saddle", "(0,1)": "strict saddle", "(1,inf)": "strict saddle"}),      # F indefinite
])
def test_line_classification_matches_hessian(narrow, seed, m, expect):
    model, p, x, y, Lw = narrow[seed]
    line = classify_splitting_line(model, p, x, y, 1, m)
    assert line.segments == expect
    assert json.loads(json.dumps(line.to_dict()))["segments"] == expect
    for lam in LAMS:
        wide = split_neuron(p, 1, m, lam)
        rep = classify_critical_point(Lw, wide, gtol=1e-13)       # Th. 1: critical for every λ
        assert rep.index == line.index(lam)
        assert rep.nullity >= 1                                    # the line itself
        assert (rep.index == 0) == (line.kind(lam) == "minimum")


def test_second_order_constant_by_finite_differences(narrow):
    """L(θ_λ + t d) − L(θ_λ) = ½ λ(1−λ) t² uᵀFu + O(t³): the ½ and the 1/T of the mean loss."""
    model, p, x, y, Lw = narrow[0]
    F = splitting_matrix(model, p, x, y, 1, 1)
    u = np.array([0.6, -0.8])
    for lam in (0.3, 1.6):
        wide = split_neuron(p, 1, 1, lam)
        x0, unravel = ravel_pytree(wide)
        d = ravel_pytree(splitting_direction(p, 1, 1, lam, u))[0]
        pred = 0.5 * lam * (1 - lam) * u @ F @ u
        ratios = [(float(Lw(unravel(x0 + t * d))) - float(Lw(wide))) / (pred * t * t) for t in (1e-2, 3e-3)]
        assert abs(ratios[1] - 1) < 0.02 and abs(ratios[1] - 1) < abs(ratios[0] - 1) + 1e-3


def test_split_neuron_layout_and_bad_input(narrow):
    model, p, *_ = narrow[0]
    wide = split_neuron(p, 1, 1, 0.25)
    np.testing.assert_array_equal(wide[0][0][2], p[0][0][1])
    np.testing.assert_allclose(wide[1][0][0, [1, 2]], [0.25 * p[1][0][0, 1], 0.75 * p[1][0][0, 1]])
    with pytest.raises(ValueError, match="lam"):
        split_neuron(p, 1, 1, float("nan"))
    with pytest.raises(ValueError, match="m: neuron index 2"):
        split_neuron(p, 1, 2, 0.5)
    line = classify_splitting_line(*narrow[0][:4], 1, 0)
    with pytest.raises(ValueError, match="lam: λ = 0"):
        line.index(1.0)
