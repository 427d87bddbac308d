"""`symland tensor`: symmetric tensor decomposition, many random starts, isotropy of the minima found."""

from __future__ import annotations

from ._options import atomic_output, int_arg, output_dir, range_arg, seed_arg


def add_parser(subparsers):
    p = subparsers.add_parser("tensor", help="symmetric tensor decomposition: isotropy of the minima found",
                              description=__doc__)
    p.add_argument("--d", type=range_arg("d", lo=2, hi=30), default=[3, 4, 5, 6, 7, 8],
                   help="dimension d = k, 'a:b' or one integer (default 3:8)")
    p.add_argument("--p", type=range_arg("p", lo=3, hi=12), default=[3, 4],
                   help="tensor order(s) p >= 3, 'a:b' or one integer (default 3:4)")
    p.add_argument("--starts", type=int_arg("starts", lo=1), default=200,
                   help="random starts per (d, p) (default 200; 1000 at d = 10 is the benchmark)")
    p.add_argument("--steps", type=int_arg("steps", lo=1), default=1000, help="Adam steps before refinement")
    p.add_argument("--seed", type=seed_arg(), default=0)
    p.add_argument("--out", required=True, type=output_dir, help="output folder (tensor.json, figure, report.html)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from tqdm import tqdm

    from ..experiments.tensor import run_tensor

    def progress(desc):
        return lambda it: tqdm(it, desc=desc, unit="batch", leave=False)

    with atomic_output(args.out) as tmp:
        s = run_tensor(tmp, args.d, args.p, n_starts=args.starts, seed=args.seed, steps=args.steps,
                       progress=progress)
    for r in s["runs"]:
        top = ", ".join(f"{e['isotropy']}{' (global)' if e['global'] else ''}: {e['count']}"
                        for e in r["isotropy_of_minima"][:4])
        print(f"d = k = {r['d']:2d}, p = {r['p']}: {r['kinds']}; minima by isotropy: {top}")
    print(f"wrote {args.out}/tensor.json, report.html")
    return 0
