"""`symland tensor`: symmetric tensor decomposition, many random starts, isotropy of the minima found."""

from __future__ import annotations

import sys

from ._options import atomic_output, check_cost, int_arg, most_raised, output_dir_arg, range_arg, seed_arg

# Cost model (BENCHMARKS.md, "Tensor decomposition": 1,000 starts at k = d = 10, p = 3, 2,000 Adam
# steps: 119 s CPU). Per start: an Adam step costs ~1.5e-9·d³ s (closed-form loss, O(k²d));
# the ≤ 8 Levenberg–Marquardt steps and the spectrum ~1.25e-7·d⁶ s (eigh of the d² × d² Hessian);
# a scan step of a batch (≤ 500 starts) costs at least ~2 µs; about 5 s of compilation per (d, p).
# Every start's Hessian is kept (8·d⁴ bytes, three copies).
SECONDS_PER_ADAM_STEP_D3 = 1.5e-9
SECONDS_PER_REFINE_D6 = 1.25e-7
SECONDS_PER_SCAN_STEP = 2e-6
BATCH = 500  # starts per compiled call (`tensor_minima`'s default)
COMPILE_SECONDS = 5.0


def estimate_cost(ds, ps, starts: int, steps: int) -> tuple[float, float]:
    """Worst-case (seconds, bytes) of `tensor_minima` for every d in `ds`, p in `ps`."""
    batches = -(-starts // BATCH)
    seconds = len(ps) * sum(starts * (steps * SECONDS_PER_ADAM_STEP_D3 * d ** 3 + SECONDS_PER_REFINE_D6 * d ** 6)
                            + batches * steps * SECONDS_PER_SCAN_STEP + COMPILE_SECONDS for d in ds)
    return seconds, 3 * 8.0 * starts * max(ds) ** 4


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
    p.add_argument("--out", required=True, type=output_dir_arg("out"),
                   help="output folder (tensor.json, figure, report.html)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from tqdm import tqdm

    from ..experiments.tensor import run_tensor

    seconds, nbytes = estimate_cost(args.d, args.p, args.starts, args.steps)
    blame = most_raised(starts=(args.starts, 200), steps=(args.steps, 1000), d=(max(args.d), 8),
                        p=(max(args.p), 4))
    warning = check_cost(blame, seconds=seconds, nbytes=nbytes,
                         what=f"{len(args.d) * len(args.p)} (d, p) × {args.starts} starts × {args.steps} steps")
    if warning:
        print(f"symland tensor: {warning}", file=sys.stderr)

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
