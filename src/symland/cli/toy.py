"""`symland toy`: reproduce Fig. 1 of Brea et al. 2019.

Every argument is checked while parsing (see `symland.cli._options`); the cost
of the request is estimated before the problem is built: a run that would take
more than 12 h or half the memory is refused with the estimate, a run longer
than a minute gets a warning line (it shows a progress bar anyway).
"""

from __future__ import annotations

import sys

from pathlib import Path

from ..experiments.toy import METHODS
from ._options import atomic_output, choice_arg, check_cost, float_arg, int_arg, most_raised, output_dir_arg, seed_arg

TOY_HIDDEN = 5  # hidden neurons of the Fig. 1 toy (`toy_problem`'s default)
# Worst-case cost of one δ step of one path: about 0.2 ms per Newton step on the 21-parameter
# toy (BENCHMARKS.md: softplus seed 1, 10 pairs × 201 steps × ≤ 50 Newton steps in 22 s), and
# about 2 KiB of memory per stored step (θ(δ) as a pytree plus the per-step records).
SECONDS_PER_NEWTON_STEP = 2.2e-4
BYTES_PER_STEP = 2048


def parse_pair(text: str) -> tuple[int, int]:
    """'l,m' (0-based, l ≠ m, both in 0…4) → (l, m); `ValueError` naming `pairs` otherwise."""
    try:
        l, m = (int(s) for s in str(text).split(","))
    except ValueError:
        raise ValueError(f"pairs: expected 'all' or 0-based pairs l,m like 0,2; got {text!r}") from None
    for i in (l, m):
        if not 0 <= i < TOY_HIDDEN:
            raise ValueError(f"pairs: neuron index {i} in {text!r} out of range 0…{TOY_HIDDEN - 1} (0-based)")
    if l == m:
        raise ValueError(f"pairs: l, m must be two different neurons, got {text!r}")
    return l, m


def parse_pairs(values):
    """['all'] → 'all'; ['0,1', '2,3'] → [(0, 1), (2, 3)] (duplicates refused)."""
    if values is None or list(values) == ["all"]:
        return "all"
    if "all" in values:
        raise ValueError("pairs: 'all' cannot be combined with explicit pairs")
    pairs = [parse_pair(v) for v in values]
    seen = set()
    for p in pairs:
        if p in seen:
            raise ValueError(f"pairs: pair {p[0]},{p[1]} is given twice")
        seen.add(p)
    return pairs


def estimate_cost(n_pairs: int, steps: int, max_newton: int) -> tuple[float, float]:
    """Worst-case (seconds, bytes) of `n_pairs` paths with `steps` δ steps."""
    n_steps = n_pairs * (steps + 1)
    return n_steps * max_newton * SECONDS_PER_NEWTON_STEP, n_steps * BYTES_PER_STEP


def add_parser(subparsers):
    from .._network import ACTIVATIONS

    p = subparsers.add_parser("toy", help="permutation paths on the 2-D toy (Fig. 1)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--activation", default="relu", type=choice_arg("activation", ACTIVATIONS))
    p.add_argument("--pairs", nargs="+", default=["all"],
                   help="'all' or pairs l,m (0-based, like the API; reports print 1-based labels)")
    p.add_argument("--steps", type=int_arg("steps", lo=2), default=200,
                   help="log-spaced δ steps from δ₀ to ratio·δ₀ (a final δ = 0 step is added)")
    p.add_argument("--ratio", type=float_arg("ratio", lo=0.0, hi=1.0, open_lo=True, open_hi=True),
                   default=1e-4, help="last δ before 0, as a fraction of δ₀ (0 < ratio < 1)")
    p.add_argument("--seed", type=seed_arg("seed"), default=1, help="teacher and data seed, 0 ≤ seed < 2³²")
    p.add_argument("--max-newton", type=int_arg("max-newton", lo=1, hi=10_000), default=50,
                   help="Newton steps allowed per δ, chord steps with a reused Hessian included "
                        "(a δ that needs more is reported as not converged)")
    p.add_argument("--valley", action="store_true",
                   help="add the equal-loss valley of §4.2 (ii) for the same activation and seed "
                        "(about 10 s more)")
    p.add_argument("--method", type=choice_arg("method", METHODS), default="both",
                   help="fixed-delta paths, minimum-energy paths with certified saddles (mep), or both")
    p.add_argument("--out", required=True, type=output_dir_arg("out"), help="output folder")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args):
    from ..experiments.toy import run_toy

    pairs = parse_pairs(args.pairs)
    n_pairs = TOY_HIDDEN * (TOY_HIDDEN - 1) // 2 if pairs == "all" else len(pairs)
    seconds, nbytes = estimate_cost(n_pairs, args.steps, args.max_newton)
    warning = check_cost(most_raised(steps=(args.steps, 200), max_newton=(args.max_newton, 50)),
                         seconds=seconds, nbytes=nbytes,
                         what=f"{n_pairs} paths × {args.steps} δ steps (≤ {args.max_newton} Newton steps each)")
    if warning:
        print(f"symland toy: {warning}", file=sys.stderr)
    with atomic_output(args.out) as tmp:
        result = run_toy(tmp, activation=args.activation, pairs=pairs,
                         steps=args.steps, ratio=args.ratio, seed=args.seed,
                         max_newton_steps=args.max_newton, valley=args.valley,
                         progress=not args.no_progress, method=args.method)
    n_ok = sum(p["all_converged"] for p in result["paths"])
    print(f"{len(result['paths'])} paths, {n_ok} with every step converged")
    if "saddles" in result:
        n_cert = sum(r["certified"] for r in result["saddles"])
        print(f"{n_cert} of {len(result['saddles'])} pairs with a certified saddle (minimum-energy paths)")
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0
