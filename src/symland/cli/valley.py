"""`symland valley --out DIR`: an equal-loss valley on the toy (figure + JSON)."""

from __future__ import annotations


def parse_perm(text):
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"perm: expected comma-separated 0-based indices like 4,0,1,3,2; got {text!r}") from None


def add_parser(subparsers):
    p = subparsers.add_parser("valley", help="equal-loss valley realising a permutation on the toy (§4.2 (ii))")
    p.add_argument("--out", required=True, help="output folder (valley.png, valley.json)")
    p.add_argument("--activation", default="tanh")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--perm", default=None, help="0-based permutation of the 5 neurons, e.g. 4,0,1,3,2")
    p.add_argument("--pair", type=int, default=1, help="neuron l (0…3) duplicated into neuron 4")
    p.add_argument("--samples-per-move", type=int, default=100)
    p.set_defaults(func=run)


def run(args):
    from .._network import activation_function
    from ..experiments.valley import run_valley

    activation_function(args.activation)
    s = run_valley(args.out, activation=args.activation, seed=args.seed, perm=parse_perm(args.perm),
                   l=args.pair, samples_per_move=args.samples_per_move)
    print(f"permutation {s['perm']}: {s['n_samples']} samples, L = {s['loss_start']:.6e}, "
          f"max relative loss change {s['max_rel_loss_change']:.2e}")
    print(f"figure: {s['figure']}")
    return 0
