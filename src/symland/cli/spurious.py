"""`symland spurious`: symmetric spurious minima of the Gaussian-input ReLU
student–teacher problem (Safran & Shamir 2018; Arjevani & Field 2020).

Wires library functions of `symland.gaussian` together: follows the named
families in k, writes `spurious.json` and two figures (k·L against k, and the
Hessian spectrum with multiplicities at one k).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from symland.gaussian import DECAY_CONSTANT, SPURIOUS_FAMILIES, critical_value_decay, empirical_frequency, spurious_family

from ._options import (typed_arg, atomic_output, check_cost, int_arg, output_dir_arg, parse_range,
                       seed_arg)

K_MAX = 200
FLOPS = 1e9


def parse_k_range(spec: str) -> list[int]:
    """'6:20' → 6…20 (inclusive), '7' → [7], '6,8,10' → [6, 8, 10]; 2 ≤ k ≤ K_MAX."""
    ks = []
    for item in str(spec).split(","):
        ks += parse_range(item.strip(), "k", lo=2, hi=K_MAX)
    return sorted(set(ks))


def parse_families(spec: str) -> list[str]:
    """'delta_sk1,delta_sk' → the names, each one of `SPURIOUS_FAMILIES`."""
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not names:
        raise ValueError("families: give at least one family")
    for n in names:
        if n not in SPURIOUS_FAMILIES:
            raise ValueError(f"families: unknown family {n!r}; choose from {', '.join(SPURIOUS_FAMILIES)}")
    return names


def estimate_cost(ks, n_families: int, runs: int) -> tuple[float, float]:
    """Worst-case (seconds, bytes): a dense k²×k² Hessian per family and k, and `runs` descents.

    A descent is 1500 Adam steps of ~20·k³ flops, all runs in one vmap (k×k weights each).
    """
    seconds = sum(n_families * (4.0 * k ** 6 / FLOPS + 0.05) for k in ks)
    nbytes = max(4.0 * 8 * k ** 4 for k in ks)
    if runs:
        seconds += sum(runs * 1500 * 20.0 * k ** 3 / FLOPS for k in ks)
        nbytes = max(nbytes, max(20.0 * 8 * runs * k * k for k in ks))
    return seconds, nbytes


def add_parser(subparsers):
    p = subparsers.add_parser("spurious", help="symmetric spurious minima for Gaussian inputs (ReLU, V = I_k)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--k", default="6:20", type=typed_arg("k", parse_k_range),
                   help=f"k range, 'LO:HI' inclusive or a comma list, 2 ≤ k ≤ {K_MAX} (default 6:20)")
    p.add_argument("--families", default="delta_sk1,delta_sk,delta_s2_sk2", type=typed_arg("families", parse_families),
                   help=f"comma list from: {', '.join(SPURIOUS_FAMILIES)}")
    p.add_argument("--runs", type=int_arg("runs", lo=0), default=0,
                   help="gradient descents per k for the empirical frequency of each family (0: skip; e.g. 500)")
    p.add_argument("--decay-kmax", type=int_arg("decay-kmax", lo=0, hi=10 ** 6), default=0,
                   help="also fit L ≈ a/k up to this k (0: skip; e.g. 10000; at most 10⁶)")
    p.add_argument("--spectrum-k", type=int_arg("spectrum-k", lo=2, hi=K_MAX), default=None,
                   help="k of the spectrum figure (default: largest k)")
    p.add_argument("--seed", type=seed_arg("seed"), default=0, help="seed of --runs, 0 ≤ seed < 2³²")
    p.add_argument("--out", required=True, type=output_dir_arg("out"), help="output directory")
    p.add_argument("--no-progress", action="store_true")
    _add_extension_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if args.perturb_steps is not None and args.perturb is None:
        raise ValueError("perturb-steps: only used with --perturb")
    if args.d is not None or args.fractional is not None or args.perturb is not None:
        for name, value, default in (("runs", args.runs, 0), ("decay-kmax", args.decay_kmax, 0),
                                     ("spectrum-k", args.spectrum_k, None)):
            if value != default:  # the parts run instead of the family table: refuse, do not ignore
                raise ValueError(f"{name}: not used with --d, --fractional or --perturb")
        return _run_extensions(args)
    ks = parse_k_range(args.k) if isinstance(args.k, str) else args.k
    names = parse_families(args.families) if isinstance(args.families, str) else args.families
    if args.spectrum_k is not None and args.spectrum_k not in ks:
        raise ValueError(f"spectrum-k: {args.spectrum_k} is not in the --k range")
    seconds, nbytes = estimate_cost(ks, len(names), args.runs)
    warning = check_cost("runs" if args.runs else "k", seconds=seconds, nbytes=nbytes,
                         what=f"{len(names)} families at {len(ks)} values of k"
                              + (f" and {args.runs} descents per k" if args.runs else ""))
    if warning:
        print(f"symland spurious: {warning}", file=sys.stderr)
    with atomic_output(args.out) as tmp:
        _compute(args, ks, names, tmp)
    return 0


def _compute(args, ks, names, out) -> None:
    quiet = getattr(args, "no_progress", False)
    result = {"k": ks, "activation": "relu", "teacher": "V = I_k, a = b = 1", "families": {}}
    points = {}
    for name in names:
        isotropy, _, _, description = SPURIOUS_FAMILIES[name]
        bar = tqdm(desc=f"family {name}", total=len(ks), unit="k", leave=False, disable=quiet, delay=2.0)
        fam = spurious_family(name, ks, progress=lambda it: _ticking(it, bar))
        bar.close()
        points[name] = fam
        result["families"][name] = {
            "isotropy": isotropy, "description": description,
            "points": {str(k): p.to_dict() for k, p in sorted(fam.items())},
            "missing_k": [k for k in ks if k not in fam],
        }
    if args.runs > 0:
        result["frequency"] = {}
        for k in tqdm(ks, desc="frequency", unit="k", disable=quiet, delay=2.0):
            result["frequency"][str(k)] = empirical_frequency(k, n_runs=args.runs, seed=args.seed).to_dict()
    if args.decay_kmax > 0:
        fit = critical_value_decay(args.decay_kmax)
        result["decay"] = {"k_max": args.decay_kmax, "a": fit.a, "a_stderr": fit.a_stderr,
                           "a_spread": fit.a_spread, "windows": fit.windows, "n_terms": fit.n_terms,
                           "status": fit.status, "closed_form": "1/2 - 2/pi^2",
                           "closed_form_value": DECAY_CONSTANT}
    with open(os.path.join(out, "spurious.json"), "w") as fh:
        json.dump(result, fh, indent=1, ensure_ascii=False)
    _figures(points, ks, args.spectrum_k or max(ks), out)
    print(f"wrote {Path(args.out) / 'spurious.json'}")
    for name, fam in points.items():
        for k, p in sorted(fam.items()):
            print(f"{name:16s} k={k:3d} L={p.loss:.8e} kL={k * p.loss:.6f} |grad|={p.grad_norm:.1e} "
                  f"min_eig={p.min_eigenvalue:+.4e} index={p.index} {p.kind}")


def _ticking(it, bar):
    for x in it:
        yield x
        bar.update(1)


def _figures(points, ks, k_spec, out):
    import matplotlib

    from ..experiments.figures import family_label

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, fam in points.items():
        kk = sorted(fam)
        ax.plot(kk, [k * fam[k].loss for k in kk], "o-", ms=3, label=family_label(name))
        mins = [k for k in kk if fam[k].kind == "minimum"]
        ax.plot(mins, [k * fam[k].loss for k in mins], "o", ms=6, mfc="none", color="k")
    ax.axhline(DECAY_CONSTANT, ls=":", color="gray",
               label=r"$1/2 - 2/\pi^2$ ($k \to \infty$, $\Delta S_{k-1}$)")
    ax.set_xlabel(r"$k$ (neurons)")
    ax.set_ylabel(r"$k \cdot L$")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("critical values (circled: local minima)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "kL.png"), dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, (name, fam) in enumerate(points.items()):
        if k_spec in fam:
            vals, mult = zip(*fam[k_spec].multiplicities)
            ax.stem(vals, mult, linefmt=f"C{i}-", markerfmt=f"C{i}o", basefmt=" ",
                    label=family_label(name))
    ax.set_xscale("symlog", linthresh=1e-2)
    ax.set_yscale("log")
    ax.set_xlabel("Hessian eigenvalue")
    ax.set_ylabel("multiplicity")
    ax.set_title(rf"spectrum at $k = {k_spec}$")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"spectrum_k{k_spec}.png"), dpi=120)
    plt.close(fig)


# --- issue 12, parts 1-3: --d, --fractional, --perturb (symland.experiments.gaussian_extensions) ---


def _add_extension_arguments(p):
    from symland.cli._options import float_arg, int_arg
    from symland.experiments.gaussian_extensions import parse_d_spec, parse_real_range

    g = p.add_argument_group("issue 12 (each given part runs instead of the family table)")
    g.add_argument("--d", type=typed_arg("d", parse_d_spec), default=None,
                   help="inputs wider than the network: 'k:4k' (d from k to 4k for each k), 'a:b' or 'a'; d >= k")
    g.add_argument("--fractional", type=typed_arg("fractional", parse_real_range), default=None,
                   metavar="LO:HI", help="follow the families in real k over LO:HI (e.g. 4:20)")
    g.add_argument("--perturb", type=float_arg("perturb", lo=0.0), default=None, metavar="EPS_MAX",
                   help="follow the minima along V = I + eps E, eps in [0, EPS_MAX] (e.g. 0.5)")
    g.add_argument("--perturb-steps", type=int_arg("perturb-steps", lo=1), default=None,
                   help="steps in ε with --perturb (default 10)")


NEWTON_STEPS = 20  # worst case per perturbation step (`follow_perturbed_minimum`)


def estimate_extension_cost(ks, n_families: int, *, d_spec=None, perturb_steps: int = 0) -> tuple[float, float]:
    """Worst-case (seconds, bytes) of `run_extensions`: the families, then per part.

    `--d`: per k, every d of the spec and every family (and the global minimum) keeps spectra
    of k²·(d − k) eigenvalues (about six arrays of them, sorted: ~100·k²·d flops);
    `--perturb`: ≤ `NEWTON_STEPS` dense Newton steps (k² × k² Hessian) per perturbation step.
    ValueError naming `--d` when some d < k.
    """
    from symland.experiments.gaussian_extensions import d_values

    seconds, nbytes = estimate_cost(ks, n_families, 0)
    if d_spec is not None:
        for k in ks:
            ds = d_values(d_spec, k)
            seconds += len(ds) * (n_families + 1) * 100.0 * k * k * max(ds) / FLOPS
            nbytes = max(nbytes, 6 * 8.0 * k * k * max(ds))
    seconds += sum((n_families + 1) * perturb_steps * NEWTON_STEPS * 4.0 * k ** 6 / FLOPS for k in ks)
    return seconds, nbytes


def _run_extensions(args) -> int:
    from symland.experiments.gaussian_extensions import run_extensions

    ks, names = args.k, args.families  # parsed and checked by argparse
    perturb_steps = 10 if args.perturb_steps is None else args.perturb_steps
    seconds, nbytes = estimate_extension_cost(ks, len(names), d_spec=args.d,
                                              perturb_steps=perturb_steps if args.perturb is not None else 0)
    blame = ("d" if args.d is not None
             else "perturb-steps" if args.perturb is not None and perturb_steps > 10 else "k")
    warning = check_cost(blame, seconds=seconds, nbytes=nbytes,
                         what=f"{len(names)} families at {len(ks)} values of k")
    if warning:
        print(f"symland spurious: {warning}", file=sys.stderr)
    summary = run_extensions(ks, names, args.out, d_spec=args.d, fractional=args.fractional,
                             perturb=args.perturb, perturb_steps=perturb_steps, seed=args.seed)
    print(json.dumps(summary, indent=1, ensure_ascii=False, default=str))
    print(f"wrote {os.path.join(args.out, 'report.html')}")
    return 0
