"""Saved parameters and data sets (NumPy `.npz`).

Parameter file: arrays `W1, b1, W2, b2, …` (W^(k) of shape n_k × n_{k−1},
b^(k) of shape n_k; no `b` arrays for a network without bias) and a string
array `activation`. Data file: arrays `x` (T × n_0) and `y` (T × n_d, or T
for one output).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import jax.numpy as jnp

from ._network import MLP, Params, check_finite_params


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary name in the same folder and a rename.

    A reader sees the old file or the new one, never a partial one; on any
    error the temporary file is removed and `path` is left as it was.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return p


def atomic_write_text(path, text: str) -> Path:
    """`atomic_write_bytes` of `text` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def _open_npz(path, name: str):
    """`np.load(path, allow_pickle=False)`, with every unreadable file as `ValueError` naming `name`.

    Truncated, empty and non-zip files, and object arrays, are refused;
    Python objects stored in a file are never loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no file at {path}")
    with open(path, "rb") as fh:
        try:
            z = np.load(fh, allow_pickle=False)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
            raise ValueError(f"{name}: {path} is not a readable .npz file (truncated, empty or "
                             f"not a zip archive; {type(err).__name__})") from None
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError(f"{name}: {path} is a single .npy array, expected an .npz archive")
        with z:
            yield z


def _array(z, key: str, name: str, path) -> np.ndarray:
    """Array `key` of the open archive as finite float64; `ValueError` naming `name` otherwise."""
    try:
        a = z[key]
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise ValueError(f"{name}: array {key!r} in {path} is damaged or holds Python objects; "
                         f"only numeric arrays are read ({type(err).__name__})") from None
    if np.iscomplexobj(a):
        raise ValueError(f"{name}: array {key!r} in {path} is complex; parameters must be real")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name}: array {key!r} in {path} has dtype {a.dtype}, expected real numbers")
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: array {key!r} in {path} contains NaN or inf")
    return a


def save_params(path, model: MLP, params: Params) -> Path:
    """Write `params` of `model` to an `.npz` file (format above); returns the path.

    `ValueError` naming `params` for parameters that do not match `model` or
    are NaN, inf or complex. The file is written through a temporary name.
    """
    model.check_params(params)
    check_finite_params(params)
    arrays = {"activation": np.array(model.activation)}
    for k, (W, b) in enumerate(params, start=1):
        arrays[f"W{k}"] = np.asarray(W, dtype=np.float64)
        if b is not None:
            arrays[f"b{k}"] = np.asarray(b, dtype=np.float64)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_params(path) -> tuple[MLP, Params]:
    """Read an `.npz` parameter file; returns `(model, params)`.

    `ValueError` naming what is missing or inconsistent.
    """
    path = Path(path)
    with _open_npz(path, "params") as z:
        names = set(z.files)
        if "activation" not in names or "W1" not in names:
            raise ValueError(f"params: {path} needs arrays 'activation' and 'W1', 'W2', …")
        try:
            act = z["activation"]
        except ValueError:
            raise ValueError(f"params: 'activation' in {path} must be a plain string array") from None
        if act.dtype.kind not in "US" or act.ndim != 0:
            raise ValueError(f"params: 'activation' in {path} must be a string, got dtype {act.dtype}")
        activation = str(act)
        d = 1
        while f"W{d + 1}" in names:
            d += 1
        bias = "b1" in names
        params = []
        W = _array(z, "W1", "params", path)
        if W.ndim != 2:
            raise ValueError(f"params: W1 has shape {W.shape}, expected a matrix (n_1, n_0)")
        widths = [int(W.shape[1])]
        for k in range(1, d + 1):
            W = _array(z, f"W{k}", "params", path)
            if W.ndim != 2 or W.shape[1] != widths[-1] or 0 in W.shape:
                raise ValueError(f"params: W{k} has shape {W.shape}, expected (n_{k}, {widths[-1]})")
            widths.append(int(W.shape[0]))
            if bias != (f"b{k}" in names):
                raise ValueError(f"params: b{k} {'missing' if bias else 'unexpected'} in {path}")
            b = None
            if bias:
                b = _array(z, f"b{k}", "params", path)
                if b.shape != (widths[-1],):
                    raise ValueError(f"params: b{k} has shape {b.shape}, expected ({widths[-1]},)")
                b = jnp.asarray(b)
            params.append((jnp.asarray(W), b))
        known = {f"W{k}" for k in range(1, d + 1)} | ({f"b{k}" for k in range(1, d + 1)} if bias else set())
        extra = sorted(n for n in names if re.fullmatch(r"[Wb]\d+", n) and n not in known)
        if extra:
            raise ValueError(f"params: unexpected arrays {', '.join(extra)} in {path}")
        model = MLP(tuple(widths), activation, bias=bias)
    model.check_params(params)
    return model, params


def load_data(path) -> tuple[np.ndarray, np.ndarray]:
    """Read an `.npz` data file with arrays `x` (T × n_0) and `y` (T or T × n_d).

    `ValueError` naming `data` for unreadable files, missing, complex or
    non-finite arrays and shapes that do not match.
    """
    path = Path(path)
    with _open_npz(path, "data") as z:
        if "x" not in z.files or "y" not in z.files:
            raise ValueError(f"data: {path} needs arrays 'x' and 'y'")
        x, y = _array(z, "x", "data", path), _array(z, "y", "data", path)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"data: x in {path} has shape {x.shape}, expected (T, n_0) with T ≥ 1")
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(f"data: y in {path} has shape {y.shape}, expected ({x.shape[0]},) or ({x.shape[0]}, n_d)")
    return x, y
