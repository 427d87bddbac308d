"""`symland symmetry-breaking`: frequency and isotropy of the minima gradient descent finds, beyond Gaussian ReLU."""

from __future__ import annotations

import argparse
import sys

from ._options import atomic_output, check_cost, int_arg, most_raised, output_dir_arg, seed_arg

# Cost model, about 1e9 flop/s on one core. A sampled setting's Adam step costs ~6·T·k² flops per
# weight layer (forward and backward through T samples); its final Hessian (jax.hessian: n
# tangents of the backward pass, n = k²·layers parameters) 2n times that, and n + 4 arrays of
# T × k numbers per run of a batch. A closed-form setting's step costs ~100·k³ flops. Check: the
# default (6 settings, k = 6, 60 runs × 1500 steps, T = 5000) is estimated at 13 min (1.1 GiB),
# measured 385 s CPU (docs/seeds_extensions.md).
FLOPS = 1e9
BATCH = 100  # runs per compiled call (`least_symmetry_breaking`'s default)


def estimate_cost(settings, k: int, runs: int, steps: int, samples: int) -> tuple[float, float]:
    """Worst-case (seconds, bytes) of `least_symmetry_breaking` for each setting."""
    from .._symmetry_breaking import SETTINGS

    flops, nbytes = 0.0, 0.0
    for name in settings:
        s = SETTINGS[name]
        n = k * k * s.layers
        if s.closed_form:
            flops += runs * steps * 100.0 * k ** 3
            continue
        step = 6.0 * samples * k * k * s.layers
        flops += runs * (steps + 2 * n) * step
        nbytes = max(nbytes, 8.0 * samples * k * (1 + min(runs, BATCH) * (n + 4)))
    return flops / FLOPS, max(nbytes, 8.0 * runs * 2 * k * k * 4)


def parse_settings(text: str):
    from .._symmetry_breaking import SETTINGS, check_setting

    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"settings: give at least one of {', '.join(SETTINGS)}")
    for n in names:
        try:
            check_setting(n)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"settings: {str(err).split(': ', 1)[1]}") from None
    return names


def add_parser(subparsers):
    from .._symmetry_breaking import SETTINGS

    p = subparsers.add_parser("symmetry-breaking", help="least symmetry breaking: isotropy of the minima found",
                              description=__doc__)
    p.add_argument("--settings", type=parse_settings, default=list(SETTINGS),
                   help=f"comma list from: {', '.join(SETTINGS)} (default: all)")
    p.add_argument("--k", type=int_arg("k", lo=2, hi=20), default=6, help="k = d (default 6)")
    p.add_argument("--runs", type=int_arg("runs", lo=1), default=60, help="descents per setting (default 60)")
    p.add_argument("--steps", type=int_arg("steps", lo=1), default=1500, help="Adam steps (default 1500)")
    p.add_argument("--samples", type=int_arg("samples", lo=100), default=5_000,
                   help="fixed sample size where no closed form exists")
    p.add_argument("--seed", type=seed_arg(), default=0)
    p.add_argument("--out", required=True, type=output_dir_arg("out"))
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from tqdm import tqdm

    from ..experiments.symmetry_breaking import run_symmetry_breaking

    seconds, nbytes = estimate_cost(args.settings, args.k, args.runs, args.steps, args.samples)
    blame = most_raised(runs=(args.runs, 60), steps=(args.steps, 1500), samples=(args.samples, 5000),
                        k=(args.k, 6))
    warning = check_cost(blame, seconds=seconds, nbytes=nbytes,
                         what=f"{len(args.settings)} settings × {args.runs} runs × {args.steps} steps at k = {args.k}")
    if warning:
        print(f"symland symmetry-breaking: {warning}", file=sys.stderr)
    with atomic_output(args.out) as tmp:
        s = run_symmetry_breaking(tmp, args.settings, args.k, n_runs=args.runs, steps=args.steps,
                                  n_samples=args.samples, seed=args.seed,
                                  progress=lambda name: (lambda it: tqdm(it, desc=name, unit="batch", leave=False)))
    for r in s["settings"]:
        v = r["least_symmetry_breaking"]
        print(f"{r['setting']:18s} {r['kinds']}; spurious minima {v['spurious_minima']}, "
              f"most frequent {v.get('most_frequent', '-')}, largest isotropy found: {v['holds']}")
    print(f"wrote {args.out}/symmetry_breaking.json, report.html")
    return 0
