"""`symland toy`: reproduce Fig. 1 of Brea et al. 2019."""

from __future__ import annotations

from ..experiments.toy import run_toy


def parse_pairs(values):
    if values == ["all"] or values is None:
        return "all"
    pairs = []
    for v in values:
        try:
            l, m = (int(s) for s in v.split(","))
        except ValueError:
            raise ValueError(f"pairs: expected 'all' or l,m pairs like 0,2; got {v!r}") from None
        pairs.append((l, m))
    return pairs


def add_parser(subparsers):
    p = subparsers.add_parser("toy", help="permutation paths on the 2-D toy (Fig. 1)")
    p.add_argument("--activation", default="relu")
    p.add_argument("--pairs", nargs="+", default=["all"], help="'all' or pairs l,m (0-based)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--ratio", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-newton", type=int, default=50,
                   help="Newton steps allowed per δ, chord steps with a reused Hessian included "
                        "(a δ that needs more is reported as not converged)")
    p.add_argument("--method", choices=("fixed-delta", "mep", "both"), default="both",
                   help="fixed-δ paths, minimum-energy paths with certified saddles, or both")
    p.add_argument("--out", required=True)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args):
    from .._network import activation_function

    activation_function(args.activation)
    result = run_toy(args.out, activation=args.activation, pairs=parse_pairs(args.pairs),
                     steps=args.steps, ratio=args.ratio, seed=args.seed,
                     max_newton_steps=args.max_newton,
                     progress=not args.no_progress, method=args.method)
    n_ok = sum(p["all_converged"] for p in result["paths"])
    print(f"{len(result['paths'])} paths, {n_ok} with every step converged")
    if "saddles" in result:
        n_cert = sum(r["certified"] for r in result["saddles"])
        print(f"{n_cert} of {len(result['saddles'])} pairs with a certified saddle (minimum-energy paths)")
    print(f"report: {result['report']}")
    return 0
