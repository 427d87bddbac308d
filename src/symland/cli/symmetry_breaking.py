"""`symland symmetry-breaking`: frequency and isotropy of the minima gradient descent finds, beyond Gaussian ReLU."""

from __future__ import annotations

import argparse

from ._options import atomic_output, int_arg, output_dir, seed_arg


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
    p.add_argument("--out", required=True, type=output_dir)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from tqdm import tqdm

    from ..experiments.symmetry_breaking import run_symmetry_breaking

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
