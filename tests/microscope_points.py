"""Small critical points shared by the microscope tests (cached per process)."""

from __future__ import annotations

import functools

import numpy as np
import jax
import jax.numpy as jnp

from symland import (MLP, gaussian_teacher_data, loss_function, minimise,
                     refine_critical_point, toy_problem)


@functools.lru_cache(maxsize=None)
def narrow_critical_point(widths=(2, 3, 1), teacher_widths=(2, 4, 1), activation="tanh",
                          seed=0, n_samples=200, bias=True, noise=0.0, start="random"):
    """A minimum of a narrow student trained on a wider teacher, refined to machine precision.

    Returns `(model, params, x, y, result)`.
    """
    tm = MLP(teacher_widths, activation, bias=bias)
    tp = tm.init(jax.random.PRNGKey(seed), scale=1.5)
    x, y = gaussian_teacher_data(tm, tp, n_samples, seed=seed + 100)
    y = y + noise * jax.random.normal(jax.random.PRNGKey(seed + 300), y.shape)
    model = MLP(widths, activation, bias=bias)
    L = loss_function(model, x, y)
    if start == "teacher":  # the teacher without layer 1's neuron of smallest outgoing weight
        keep = np.sort(np.argsort(np.linalg.norm(np.asarray(tp[1][0]), axis=0))[1:])
        p0 = list(tp)
        p0[0] = (tp[0][0][keep], None if tp[0][1] is None else tp[0][1][keep])
        p0[1] = (tp[1][0][:, keep], tp[1][1])
    else:
        p0 = model.init(jax.random.PRNGKey(seed + 200))
    r = minimise(L, p0, gtol=1e-11, max_steps=400)
    r = refine_critical_point(L, r.value)
    return model, r.value, x, y, r


@functools.lru_cache(maxsize=None)
def toy_narrow_critical_point(activation="softplus", seed=0):
    """The Fig. 1 toy with one hidden neuron removed, minimised and refined.

    Starts from the teacher without its neuron of smallest outgoing weight.
    Returns `(toy, model4, params4, result)`.
    """
    toy = toy_problem(activation, seed=seed)
    (W1, b1), (W2, b2) = toy.teacher
    keep = np.sort(np.argsort(np.abs(np.asarray(W2[0])))[1:])
    p0 = [(W1[keep], b1[keep]), (W2[:, keep], b2)]
    model = MLP((2, 4, 1), activation)
    L = loss_function(model, toy.x, toy.y)
    r = minimise(L, p0, gtol=1e-11, max_steps=400)
    r = refine_critical_point(L, r.value)
    return toy, model, r.value, r
