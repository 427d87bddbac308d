import numpy as np
import pytest
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from symland import classify_critical_point, loss_function, minimise, refine_critical_point
from symland._embedding import embed_in_wider

from microscope_points import toy_narrow_critical_point


def _perturb_to_grad(L, p, target=1e-6, seed=0):
    """p + ε·u with ε chosen so that ‖∇L‖∞ ≈ `target`."""
    x0, unravel = ravel_pytree(p)
    u = jax.random.normal(jax.random.PRNGKey(seed), x0.shape)
    g = lambda eps: float(jnp.max(jnp.abs(jax.grad(lambda x: L(unravel(x)))(x0 + eps * u))))
    eps = target / g(1e-4) * 1e-4
    q = unravel(x0 + eps * u)
    assert 3e-7 <= g(eps) <= 3e-6
    return q


@pytest.fixture(scope="module")
def toy_points():
    toy, model4, p4, r = toy_narrow_critical_point("tanh", 0)
    assert r.converged
    L4 = loss_function(model4, toy.x, toy.y)
    L5 = loss_function(toy.model, toy.x, toy.y)
    saddle = embed_in_wider(p4, 1, [0, 1, 2, 3, 1])   # the toy permutation point θ_{1⇔4}
    return L4, p4, L5, saddle


def test_refine_toy_permutation_saddle(toy_points):
    _, _, L5, saddle = toy_points
    assert classify_critical_point(L5, saddle, gtol=1e-12).kind == "strict saddle"
    q = _perturb_to_grad(L5, saddle)
    r = refine_critical_point(L5, q)
    assert r.status_name == "converged"
    assert int(r.steps) <= 20
    assert float(r.grad_norm) <= 1e-13 * max(1.0, abs(float(r.loss)))
    assert classify_critical_point(L5, r.value, gtol=1e-12).kind == "strict saddle"
    hist = np.asarray(r.grad_norm_history)
    assert hist[0] > 1e-7 and np.isnan(hist[int(r.steps) + 1:]).all()


def test_refine_toy_minimum(toy_points):
    L4, p4, _, _ = toy_points
    q = _perturb_to_grad(L4, p4, seed=1)
    r = refine_critical_point(L4, q)
    assert r.converged and int(r.steps) <= 20
    assert float(r.grad_norm) <= 1e-13
    assert classify_critical_point(L4, r.value, gtol=1e-12).kind == "minimum"


def test_refine_reports_non_convergence(toy_points):
    L4, p4, _, _ = toy_points
    far = jax.tree_util.tree_map(lambda a: a + 0.7, p4)
    r = refine_critical_point(L4, far, max_steps=2)
    assert not r.converged and r.status_name == "max_steps"
    assert float(r.grad_norm) > float(r.gtol)
    r = minimise(L4, far, max_steps=1)
    assert r.status_name == "max_steps"


def test_refine_bad_arguments(toy_points):
    L4, p4, _, _ = toy_points
    with pytest.raises(ValueError, match="gtol"):
        refine_critical_point(L4, p4, gtol=0.0)
    with pytest.raises(ValueError, match="max_steps"):
        refine_critical_point(L4, p4, max_steps=0)
