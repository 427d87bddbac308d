"""`symland deep-connectivity`: one extra neuron per layer joins all permuted minima of a deep teacher."""

from __future__ import annotations

import argparse
import math
import sys

from ._options import atomic_output, check_cost, choice_arg, int_arg, most_raised, output_dir_arg, seed_arg

# Cost model (as `symland valley`): every permuted minimum is reached by one path of at most
# MOVES straight moves, each sampled at `--samples-per-move` points; a point costs about 5 ms
# (a loss evaluation on 200 samples plus bookkeeping) and 1 KiB plus its parameters.
MOVES = 10
SECONDS_PER_SAMPLE = 5e-3
BYTES_PER_SAMPLE = 1024


def estimate_cost(widths, samples_per_move: int) -> tuple[float, float]:
    """Worst-case (seconds, bytes) of `connect_permuted_minima` for a teacher of `widths`."""
    n_minima = math.prod(math.factorial(r) for r in widths[1:-1])
    n_params = sum((a + 1) * (b + 1) for a, b in zip(widths[:-1], widths[1:]))  # student: one more per layer
    points = n_minima * MOVES * samples_per_move
    return points * SECONDS_PER_SAMPLE, points * (BYTES_PER_SAMPLE + 8.0 * n_params)


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
    p.add_argument("--out", required=True, type=output_dir_arg("out"))
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from tqdm import tqdm

    from .._deep_connectivity import DEFAULT_MAX_MINIMA
    from ..experiments.deep_connectivity import run_deep_connectivity

    n = math.prod(math.factorial(r) for r in args.widths[1:-1])
    if n > DEFAULT_MAX_MINIMA:
        raise ValueError(f"widths: {n} permuted minima; at most {DEFAULT_MAX_MINIMA} are enumerated")
    seconds, nbytes = estimate_cost(args.widths, args.samples_per_move)
    blame = most_raised(samples_per_move=(args.samples_per_move, 10), widths=(n, 36))
    warning = check_cost(blame, seconds=seconds, nbytes=nbytes,
                         what=f"{n} paths × {MOVES} moves × {args.samples_per_move} samples")
    if warning:
        print(f"symland deep-connectivity: {warning}", file=sys.stderr)
    with atomic_output(args.out) as tmp:
        d = run_deep_connectivity(tmp, args.widths, activation=args.activation, seed=args.seed,
                                  samples_per_move=args.samples_per_move,
                                  progress=lambda total: tqdm(total=total, desc="minima", leave=False))
    print(f"teacher {'-'.join(map(str, d['widths']))}, student {'-'.join(map(str, d['student_widths']))}: "
          f"{d['n_reached']}/{d['n_expected']} permuted minima reached by {d['n_edges']} zero-loss paths; "
          f"max L/mean y^2 = {d['max_relative_loss']:.1e}; all connected: {d['all_connected']}")
    print(f"wrote {args.out}/deep_connectivity.json, report.html")
    return 0
