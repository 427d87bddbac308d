"""`symland valley --out DIR`: an equal-loss valley on the toy (figure + JSON)."""

from __future__ import annotations

import sys
from pathlib import Path

from ._options import (ArgumentValueError, atomic_output, check_cost, choice_arg, int_arg, output_dir_arg,
                       seed_arg)

TOY_HIDDEN = 5
MOVES = 10                 # straight moves of a permutation, at most (six per transposition chain)
SECONDS_PER_SAMPLE = 5e-3  # one loss evaluation on 1000 samples plus bookkeeping, generous
BYTES_PER_SAMPLE = 1024    # the point (21 numbers), its loss and incoming vectors, as Python objects


def parse_perm(text):
    """'4,0,1,3,2' → [4, 0, 1, 3, 2]: a 0-based permutation of the 5 toy neurons."""
    if text is None:
        return None
    try:
        perm = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"perm: expected comma-separated 0-based indices like 4,0,1,3,2; got {text!r}") from None
    if sorted(perm) != list(range(TOY_HIDDEN)):
        raise ValueError(f"perm: {text!r} is not a permutation of 0…{TOY_HIDDEN - 1} (0-based, "
                         f"{TOY_HIDDEN} neurons)")
    return perm


def parse_perm_arg(text):
    """argparse type for `--perm` (see `parse_perm`)."""
    try:
        return parse_perm(text)
    except ValueError as err:
        raise ArgumentValueError(str(err)) from None


def add_parser(subparsers):
    from .._network import ACTIVATIONS

    p = subparsers.add_parser("valley", help="equal-loss valley realising a permutation on the toy (§4.2 (ii))")
    p.add_argument("--out", required=True, type=output_dir_arg("out"),
                   help="output folder (valley.png, valley.json)")
    p.add_argument("--activation", default="tanh", type=choice_arg("activation", ACTIVATIONS))
    p.add_argument("--seed", type=seed_arg("seed"), default=0, help="toy seed, 0 ≤ seed < 2³²")
    p.add_argument("--perm", default=None, type=parse_perm_arg,
                   help="0-based permutation of the 5 neurons, e.g. 4,0,1,3,2 (default: random from --seed)")
    p.add_argument("--pair", type=int_arg("pair", lo=0, hi=TOY_HIDDEN - 2), default=1,
                   help="neuron l (0…3, 0-based) duplicated into neuron 4")
    p.add_argument("--samples-per-move", type=int_arg("samples-per-move", lo=2), default=100)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args):
    from ..experiments.valley import run_valley

    n = MOVES * args.samples_per_move
    warning = check_cost("samples-per-move", seconds=n * SECONDS_PER_SAMPLE, nbytes=n * BYTES_PER_SAMPLE,
                         what=f"about {n} samples along the valley")
    if warning:
        print(f"symland valley: {warning}", file=sys.stderr)
    with atomic_output(args.out) as tmp:
        s = run_valley(tmp, activation=args.activation, seed=args.seed, perm=args.perm,
                       l=args.pair, samples_per_move=args.samples_per_move,
                       progress=not args.no_progress)
    print(f"permutation {[int(i) + 1 for i in s['perm']]} (1-based): {s['n_samples']} samples, "
          f"L = {s['loss_start']:.6e}, max relative loss change {s['max_rel_loss_change']:.2e}")
    print(f"figure: {Path(args.out) / s['figure']}")
    return 0
