"""Saved parameters and data sets (NumPy `.npz`).

Parameter file: arrays `W1, b1, W2, b2, …` (W^(k) of shape n_k × n_{k−1},
b^(k) of shape n_k; no `b` arrays for a network without bias) and a string
array `activation`. Data file: arrays `x` (T × n_0) and `y` (T × n_d, or T
for one output).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import jax.numpy as jnp

from ._network import MLP, Params


def save_params(path, model: MLP, params: Params) -> Path:
    """Write `params` of `model` to an `.npz` file (format above); returns the path."""
    model.check_params(params)
    arrays = {"activation": np.array(model.activation)}
    for k, (W, b) in enumerate(params, start=1):
        arrays[f"W{k}"] = np.asarray(W, dtype=np.float64)
        if b is not None:
            arrays[f"b{k}"] = np.asarray(b, dtype=np.float64)
    path = Path(path)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_params(path) -> tuple[MLP, Params]:
    """Read an `.npz` parameter file; returns `(model, params)`.

    `ValueError` naming what is missing or inconsistent.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"params: no file at {path}")
    with np.load(path, allow_pickle=False) as z:
        names = set(z.files)
        if "activation" not in names or "W1" not in names:
            raise ValueError(f"params: {path} needs arrays 'activation' and 'W1', 'W2', …")
        d = 1
        while f"W{d + 1}" in names:
            d += 1
        if d < 2:
            raise ValueError(f"params: {path} has only W1; a network needs W1 and W2 at least")
        bias = "b1" in names
        params, widths = [], [int(z["W1"].shape[1])]
        for k in range(1, d + 1):
            W = z[f"W{k}"]
            if W.ndim != 2 or W.shape[1] != widths[-1]:
                raise ValueError(f"params: W{k} has shape {W.shape}, expected (n_{k}, {widths[-1]})")
            widths.append(int(W.shape[0]))
            if bias != (f"b{k}" in names):
                raise ValueError(f"params: b{k} {'missing' if bias else 'unexpected'} in {path}")
            b = jnp.asarray(z[f"b{k}"], dtype=jnp.float64) if bias else None
            params.append((jnp.asarray(W, dtype=jnp.float64), b))
        model = MLP(tuple(widths), str(z["activation"]), bias=bias)
    model.check_params(params)
    return model, params


def load_data(path) -> tuple[np.ndarray, np.ndarray]:
    """Read an `.npz` data file with arrays `x` and `y`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data: no file at {path}")
    with np.load(path, allow_pickle=False) as z:
        if "x" not in z.files or "y" not in z.files:
            raise ValueError(f"data: {path} needs arrays 'x' and 'y'")
        return np.asarray(z["x"], dtype=np.float64), np.asarray(z["y"], dtype=np.float64)
