"""Small critical points shared by the microscope tests.

Computing them (trust-region Newton, then `refine_critical_point`) costs
several seconds of compilation each, so the refined parameters are stored in
`tests/data/microscope_points.npz` (full float64) and only recomputed when
missing. Regenerate with `PYTHONPATH=src python tests/microscope_points.py`.
Every loaded point is re-checked: `result.converged` is recomputed from ‖∇L‖∞.
"""

from __future__ import annotations

import functools
import types
from pathlib import Path

import numpy as np
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from symland import (MLP, gaussian_teacher_data, loss_function, minimise,
                     refine_critical_point, toy_problem)

STORE = Path(__file__).parent / "data" / "microscope_points.npz"

NARROW = [
    dict(widths=(2, 3, 1), teacher_widths=(2, 4, 1), seed=3),
    dict(widths=(2, 3, 3), teacher_widths=(2, 4, 3), seed=0),
    dict(widths=(2, 4, 3, 1), teacher_widths=(2, 5, 3, 1), seed=0, start="teacher"),
    dict(widths=(2, 2, 1), teacher_widths=(2, 4, 1), activation="softplus", seed=0, bias=False),
    dict(widths=(2, 2, 1), teacher_widths=(2, 4, 1), activation="softplus", seed=1, bias=False),
]
TOY = [dict(activation="tanh", seed=0)]


def _key(kind, **kw):
    return kind + ":" + ",".join(f"{k}={kw[k]}" for k in sorted(kw))


@functools.lru_cache(maxsize=1)
def _store():
    if not STORE.is_file():
        return {}
    with np.load(STORE) as z:
        return {k: z[k] for k in z.files}


def _status(L, params):
    loss, g = jax.value_and_grad(L)(params)
    gn = float(jnp.max(jnp.abs(ravel_pytree(g)[0])))
    return types.SimpleNamespace(converged=gn <= 1e-13 * max(1.0, abs(float(loss))),
                                 grad_norm=gn, loss=float(loss), value=params)


def _narrow_data(widths, teacher_widths, activation, seed, n_samples, bias):
    tm = MLP(teacher_widths, activation, bias=bias)
    tp = tm.init(jax.random.PRNGKey(seed), scale=1.5)
    x, y = gaussian_teacher_data(tm, tp, n_samples, seed=seed + 100)
    return tp, x, y, MLP(widths, activation, bias=bias)


@functools.lru_cache(maxsize=None)
def narrow_critical_point(widths=(2, 3, 1), teacher_widths=(2, 4, 1), activation="tanh",
                          seed=0, n_samples=200, bias=True, start="random", compute=False):
    """A minimum of a narrow student trained on a wider teacher, refined to machine precision.

    Returns `(model, params, x, y, result)`; `result.converged` says whether
    ‖∇L‖∞ ≤ 1e−13·max(1, |L|).
    """
    tp, x, y, model = _narrow_data(widths, teacher_widths, activation, seed, n_samples, bias)
    L = loss_function(model, x, y)
    key = _key("narrow", widths=widths, teacher_widths=teacher_widths, activation=activation,
               seed=seed, n_samples=n_samples, bias=bias, start=start)
    if key in _store() and not compute:
        params = ravel_pytree(model.init(jax.random.PRNGKey(0)))[1](jnp.asarray(_store()[key]))
        return model, params, x, y, _status(L, params)
    if start == "teacher":  # the teacher without layer 1's neuron of smallest outgoing weight
        keep = np.sort(np.argsort(np.linalg.norm(np.asarray(tp[1][0]), axis=0))[1:])
        p0 = list(tp)
        p0[0] = (tp[0][0][keep], None if tp[0][1] is None else tp[0][1][keep])
        p0[1] = (tp[1][0][:, keep], tp[1][1])
    else:
        p0 = model.init(jax.random.PRNGKey(seed + 200))
    r = minimise(L, p0, gtol=1e-11, max_steps=400)
    r = refine_critical_point(L, r.value)
    return model, r.value, x, y, _status(L, r.value)


@functools.lru_cache(maxsize=None)
def toy_narrow_critical_point(activation="softplus", seed=0, compute=False):
    """The Fig. 1 toy with one hidden neuron removed, minimised and refined.

    Starts from the teacher without its neuron of smallest outgoing weight.
    Returns `(toy, model4, params4, result)`.
    """
    toy = toy_problem(activation, seed=seed)
    model = MLP((2, 4, 1), activation)
    L = loss_function(model, toy.x, toy.y)
    key = _key("toy", activation=activation, seed=seed)
    if key in _store() and not compute:
        params = ravel_pytree(model.init(jax.random.PRNGKey(0)))[1](jnp.asarray(_store()[key]))
        return toy, model, params, _status(L, params)
    (W1, b1), (W2, b2) = toy.teacher
    keep = np.sort(np.argsort(np.abs(np.asarray(W2[0])))[1:])
    p0 = [(W1[keep], b1[keep]), (W2[:, keep], b2)]
    r = minimise(L, p0, gtol=1e-11, max_steps=400)
    r = refine_critical_point(L, r.value)
    return toy, model, r.value, _status(L, r.value)


if __name__ == "__main__":
    out = {}
    for kw in NARROW:
        model, p, x, y, r = narrow_critical_point(**kw, compute=True)
        full = dict(dict(activation="tanh", n_samples=200, bias=True, start="random"), **kw)
        out[_key("narrow", **full)] = np.asarray(ravel_pytree(p)[0])
        print(kw, r.converged, r.grad_norm)
    for kw in TOY:
        toy, model, p, r = toy_narrow_critical_point(**kw, compute=True)
        out[_key("toy", **kw)] = np.asarray(ravel_pytree(p)[0])
        print(kw, r.converged, r.grad_norm)
    STORE.parent.mkdir(exist_ok=True)
    np.savez(STORE, **out)
    print(f"wrote {STORE}")
