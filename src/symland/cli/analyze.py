"""`symland analyze PARAMS --data DATA`: the critical-point report of a saved point.

PARAMS is an `.npz` with `W1, b1, W2, b2, …` and `activation`; DATA an
`.npz` with `x` and `y` (see `symland._io`). Prints the report and writes it
as JSON (default `PARAMS` with suffix `.report.json`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def add_parser(subparsers):
    p = subparsers.add_parser("analyze", help="gradient, Hessian index and nullity of a saved point")
    p.add_argument("params", metavar="PARAMS", help=".npz with W1, b1, W2, …, activation")
    p.add_argument("--data", required=True, help=".npz with x and y")
    p.add_argument("--loss", default="mse", help="mse or nmse")
    p.add_argument("--gtol", type=float, default=1e-8, help="‖∇L‖∞ below which θ counts as critical")
    p.add_argument("--method", default="auto", help="auto, dense or lanczos")
    p.add_argument("-k", type=int, default=20, help="Lanczos: number of smallest eigenvalues")
    p.add_argument("--refine", action="store_true",
                   help="first refine the point with refine_critical_point")
    p.add_argument("--out", default=None, help="JSON file (default PARAMS.report.json)")
    p.set_defaults(func=run)


def analyze(params_path, data_path, *, loss: str = "mse", gtol: float = 1e-8,
            method: str = "auto", k: int = 20, refine: bool = False) -> dict:
    """The report as a dict (dense: `classify_critical_point`; Lanczos: the k smallest eigenvalues)."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from .._critical import DENSE_THRESHOLD, classify_critical_point
    from .._io import load_data, load_params
    from .._loss import loss_function
    from .._solver import refine_critical_point

    model, params = load_params(params_path)
    x, y = load_data(data_path)
    L = loss_function(model, x, y, kind=loss)
    out = {"params": str(params_path), "data": str(data_path), "widths": list(model.widths),
           "activation": model.activation, "bias": model.bias, "n_params": model.n_params}
    if refine:
        r = refine_critical_point(L, params)
        params = r.value
        out["refine"] = {"status": r.status_name, "steps": int(r.steps), "grad_norm": float(r.grad_norm)}
    if method not in ("auto", "dense", "lanczos"):
        raise ValueError(f"method: unknown method {method!r}; choose auto, dense or lanczos")
    dense = method == "dense" or (method == "auto" and model.n_params <= DENSE_THRESHOLD)
    rep = classify_critical_point(L, params, gtol=gtol, method="dense" if dense else "lanczos", k=k)
    out.update(rep.to_dict(), method="dense" if dense else "lanczos",
               index_is_exact=rep.complete or rep.index < rep.eigenvalues.size,
               smallest_eigenvalues=[float(v) for v in rep.eigenvalues[:k]])
    return out


def run(args):
    out = analyze(args.params, args.data, loss=args.loss, gtol=args.gtol, method=args.method,
                  k=args.k, refine=args.refine)
    path = Path(args.out) if args.out else Path(args.params).with_suffix(".report.json")
    path.write_text(json.dumps(out, indent=2))
    for key in ("widths", "activation", "loss", "grad_norm", "kind", "index", "nullity", "zero_tol"):
        if key in out:
            print(f"{key}: {out[key]}")
    print(f"report: {path}")
    return 0
