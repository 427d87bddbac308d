"""Losses L(θ; D) = (1/T) Σ_μ ℓ(y^μ, f(x^μ; θ)) (Brea et al. 2019, §3)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import jax.numpy as jnp

from ._network import MLP, Params

LOSSES = ("mse", "nmse")


def check_data(model: MLP, x, y) -> tuple:
    """Validate a data set for `model`: shapes (T, n_0) and (T, n_d), finite values.

    **Returns:** `(x, y)` as float64 JAX arrays.
    """
    x_np, y_np = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x_np.ndim != 2 or x_np.shape[1] != model.widths[0]:
        raise ValueError(f"x: expected shape (T, {model.widths[0]}), got {x_np.shape}")
    if y_np.ndim == 1 and model.widths[-1] == 1:
        y_np = y_np[:, None]
    if y_np.ndim != 2 or y_np.shape != (x_np.shape[0], model.widths[-1]):
        raise ValueError(f"y: expected shape ({x_np.shape[0]}, {model.widths[-1]}), got {y_np.shape}")
    if x_np.shape[0] == 0:
        raise ValueError("x: the data set is empty")
    for name, arr in (("x", x_np), ("y", y_np)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains NaN or inf")
    return jnp.asarray(x_np), jnp.asarray(y_np)


def mse(model: MLP, params: Params, x, y):
    """Mean squared error L = (1/T) Σ_μ ‖y^μ − f(x^μ; θ)‖² (no factor ½)."""
    r = y - model.apply(params, x)
    return jnp.mean(jnp.sum(r * r, axis=-1))


def nmse(model: MLP, params: Params, x, y):
    """Normalised MSE of Brea et al. 2019, Fig. 3: L = (1/T) Σ_μ ‖y^μ − f‖² / ⟨(y_i^μ)²⟩.

    ⟨·⟩ is the mean over patterns and output dimensions.
    """
    return mse(model, params, x, y) / jnp.mean(y * y)


def loss_function(model: MLP, x, y, kind: str = "mse") -> Callable[[Params], jnp.ndarray]:
    """The loss θ ↦ L(θ; D) for data (x, y), checked; `kind` is `mse` or `nmse`."""
    if kind not in LOSSES:
        raise ValueError(f"kind: unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
    x, y = check_data(model, x, y)
    fn = mse if kind == "mse" else nmse
    return lambda params: fn(model, params, x, y)
