"""`symland analyze PARAMS --data DATA`: the critical-point report of a saved point.

PARAMS is an `.npz` with `W1, b1, W2, b2, …` and `activation`; DATA an
`.npz` with `x` and `y` (see `symland._io`). Prints the report and writes it
as JSON (default `PARAMS` with suffix `.report.json`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ._options import (atomic_write_text, check_cost, choice_arg, float_arg, input_file_arg, int_arg,
                       output_file, output_file_arg)


# Cost model (float64, one core): a dense Hessian holds n² numbers and `eigh` needs about
# three more copies; building it costs n Hessian-vector products of ~10·T·n flops each, and
# the eigendecomposition ~4·n³ flops. Lanczos: ~30·k products. About 1e9 flop/s.
FLOPS = 1e9


def estimate_cost(n: int, T: int, *, dense: bool, k: int, refine: bool) -> tuple[float, float]:
    """(seconds, bytes) for the spectrum (and `--refine`'s ≤ 50 dense steps) of n parameters, T samples."""
    hvp = 10.0 * T * n / FLOPS
    if dense:
        seconds, nbytes = n * hvp + 4.0 * n ** 3 / FLOPS, 4.0 * 8 * n * n
    else:
        seconds, nbytes = 30 * k * hvp, 8.0 * n * (3 * k + 10)
    if refine:
        seconds += 50 * (n * hvp + 4.0 * n ** 3 / FLOPS)
        nbytes = max(nbytes, 4.0 * 8 * n * n)
    return seconds, nbytes


def add_parser(subparsers):
    from .._loss import LOSSES

    p = subparsers.add_parser("analyze", help="gradient, Hessian index and nullity of a saved point",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("params", metavar="PARAMS", type=input_file_arg("params"),
                   help=".npz with W1, b1, W2, …, activation")
    p.add_argument("--data", required=True, type=input_file_arg("data"), help=".npz with x and y")
    p.add_argument("--loss", default="mse", type=choice_arg("loss", LOSSES), help="mse or nmse")
    p.add_argument("--gtol", type=float_arg("gtol", positive=True), default=1e-8,
                   help="‖∇L‖∞ below which θ counts as critical")
    p.add_argument("--method", default="auto", type=choice_arg("method", ("auto", "dense", "lanczos")),
                   help="auto (dense up to DENSE_THRESHOLD parameters), dense or lanczos")
    p.add_argument("-k", type=int_arg("k", lo=1), default=20, help="Lanczos: number of smallest eigenvalues")
    p.add_argument("--refine", action="store_true",
                   help="first refine the point with refine_critical_point")
    p.add_argument("--out", default=None, type=output_file_arg("out"),
                   help="JSON file (default PARAMS.report.json)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def load_inputs(params_path, data_path):
    """The model, parameters and data, checked against each other (`ValueError` naming the file)."""
    from .._io import load_data, load_params

    model, params = load_params(params_path)
    x, y = load_data(data_path)
    if x.shape[1] != model.widths[0]:
        raise ValueError(f"data: x has {x.shape[1]} columns but the network's input width is {model.widths[0]}")
    n_out = 1 if y.ndim == 1 else y.shape[1]
    if n_out != model.widths[-1]:
        raise ValueError(f"data: y has {n_out} column(s) but the network's output width is {model.widths[-1]}")
    return model, params, x, y


def analyze(params_path, data_path, *, loss: str = "mse", gtol: float = 1e-8,
            method: str = "auto", k: int = 20, refine: bool = False, progress: bool = False,
            inputs=None) -> dict:
    """The report as a dict (dense: `classify_critical_point`; Lanczos: the k smallest eigenvalues)."""
    from tqdm.auto import tqdm

    from .._critical import DENSE_THRESHOLD, classify_critical_point
    from .._loss import loss_function
    from .._solver import refine_critical_point

    model, params, x, y = inputs if inputs is not None else load_inputs(params_path, data_path)
    if method not in ("auto", "dense", "lanczos"):
        raise ValueError(f"method: unknown method {method!r}; choose auto, dense or lanczos")
    L = loss_function(model, x, y, kind=loss)
    out = {"params": str(params_path), "data": str(data_path), "widths": list(model.widths),
           "activation": model.activation, "bias": model.bias, "n_params": model.n_params}
    bar = tqdm(total=1 + refine, desc="analyze", unit="stage", disable=not progress, delay=2.0)
    if refine:
        bar.set_postfix_str("refine")
        r = refine_critical_point(L, params)
        params = r.value
        out["refine"] = {"status": r.status_name, "steps": int(r.steps), "grad_norm": float(r.grad_norm)}
        bar.update()
    dense = method == "dense" or (method == "auto" and model.n_params <= DENSE_THRESHOLD)
    bar.set_postfix_str("dense Hessian" if dense else "Lanczos")
    rep = classify_critical_point(L, params, gtol=gtol, method="dense" if dense else "lanczos", k=k)
    bar.update()
    bar.close()
    out.update(rep.to_dict(), method="dense" if dense else "lanczos",
               index_is_exact=rep.complete or rep.index < rep.eigenvalues.size,
               **({} if rep.complete else {"index_lower_bound": rep.index}),
               smallest_eigenvalues=[float(v) for v in rep.eigenvalues[:k]])
    return out


def run(args):
    from .._critical import DENSE_THRESHOLD

    inputs = load_inputs(args.params, args.data)
    model, x = inputs[0], inputs[2]
    n = model.n_params
    if args.method == "lanczos" and args.k >= n:
        raise ValueError(f"k: must be < the number of parameters ({n}) for Lanczos; use --method dense")
    path = args.out if args.out is not None else Path(args.params).with_suffix(".report.json")
    output_file(path, "out")
    for name in ("params", "data"):
        if Path(path).resolve() == Path(getattr(args, name)).resolve():
            raise ValueError(f"out: {str(path)!r} is the {name.upper()} input; the report would overwrite it")
    dense = args.method == "dense" or (args.method == "auto" and n <= DENSE_THRESHOLD)
    seconds, nbytes = estimate_cost(n, x.shape[0], dense=dense, k=min(args.k, n), refine=args.refine)
    warning = check_cost("method" if dense else "k", seconds=seconds, nbytes=nbytes,
                         what=f"{'a dense Hessian' if dense else 'Lanczos'} of {n} parameters "
                              f"on {x.shape[0]} samples")
    if warning:
        print(f"symland analyze: {warning}", file=sys.stderr)
    out = analyze(args.params, args.data, loss=args.loss, gtol=args.gtol, method=args.method,
                  k=args.k, refine=args.refine, progress=not args.no_progress, inputs=inputs)
    atomic_write_text(path, json.dumps(out, indent=2))
    for key in ("widths", "activation", "loss", "grad_norm", "kind", "index", "nullity", "zero_tol"):
        if key in out:
            print(f"{key}: {out[key]}")
    print(f"report: {path}")
    return 0
