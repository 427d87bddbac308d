"""`symland deep-connectivity`: one extra neuron per layer joins all permuted minima of a deep teacher."""

from __future__ import annotations

import argparse

from ._options import atomic_output, choice_arg, int_arg, output_dir, seed_arg


def parse_widths(text: str):
    from .._deep_connectivity import check_widths

    try:
        return check_widths(text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths: expected hyphen-separated positive integers like 2-3-3-1, got {text!r}") from None


def add_parser(subparsers):
    from .._network import ACTIVATIONS

    p = subparsers.add_parser("deep-connectivity", help="zero-loss paths between all permuted minima (Şimşek et al. 2021)",
                              description=__doc__)
    p.add_argument("--widths", type=parse_widths, default=(2, 3, 3, 1),
                   help="teacher widths n_0-r_1-…-n_L (default 2-3-3-1)")
    p.add_argument("--activation", type=choice_arg("activation", [a for a in ACTIVATIONS if a != "relu"]),
                   default="softplus", help="a smooth activation (default softplus)")
    p.add_argument("--samples-per-move", type=int_arg("samples-per-move", lo=1), default=10)
    p.add_argument("--seed", type=seed_arg(), default=0)
    p.add_argument("--out", required=True, type=output_dir)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import math

    from tqdm import tqdm

    from .._deep_connectivity import DEFAULT_MAX_MINIMA
    from ..experiments.deep_connectivity import run_deep_connectivity

    n = math.prod(math.factorial(r) for r in args.widths[1:-1])
    if n > DEFAULT_MAX_MINIMA:
        raise ValueError(f"widths: {n} permuted minima; at most {DEFAULT_MAX_MINIMA} are enumerated")
    with atomic_output(args.out) as tmp:
        d = run_deep_connectivity(tmp, args.widths, activation=args.activation, seed=args.seed,
                                  samples_per_move=args.samples_per_move,
                                  progress=lambda total: tqdm(total=total, desc="minima", leave=False))
    print(f"teacher {'-'.join(map(str, d['widths']))}, student {'-'.join(map(str, d['student_widths']))}: "
          f"{d['n_reached']}/{d['n_expected']} permuted minima reached by {d['n_edges']} zero-loss paths; "
          f"max L/mean y^2 = {d['max_relative_loss']:.1e}; all connected: {d['all_connected']}")
    print(f"wrote {args.out}/deep_connectivity.json, report.html")
    return 0
