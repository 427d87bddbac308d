"""`symland mnist`: reproduce Fig. 3 of Brea et al. 2019 (§5) on image data."""

from __future__ import annotations

import sys

from ._options import (ArgumentValueError, atomic_output, check_cost, choice_arg, float_arg, int_arg, most_raised,
                       output_dir, parse_int)

N_IN, N_OUT = 784, 10  # image pixels and classes (784-H-H-10 teachers)
PEAK_FLOPS = 2e10       # an optimistic rate (BLAS-3 on a few cores), so that the estimate is a lower bound
MIN_HVPS_PER_STEP = 10  # a matrix-free δ step needs at least one Newton step of ≥ 10 Hessian-vector products


def n_parameters(h: int) -> int:
    """Parameters of a 784-h-h-10 network with biases."""
    return (N_IN + 1) * h + (h + 1) * h + (h + 1) * N_OUT


def estimate_cost(hidden, seeds: int, samples: int, steps: int, epochs: int, method: str,
                  solver: str = "trust-ncg") -> tuple[float, float]:
    """A lower bound on the time and the memory (seconds, bytes) of `run_mnist`.

    Per teacher: `epochs` passes of ~6·T·n flops (training), then `steps` + 1 δ steps of at least
    one Newton step each: n Hessian-vector products (~12·T·n flops each) and an n³ eigensolver
    when dense, `MIN_HVPS_PER_STEP` products when matrix-free, all at `PEAK_FLOPS`. A path was
    measured at more than 10 min per δ step (BENCHMARKS.md), so the real time is far above this
    bound; only requests whose lower bound exceeds the limit are refused. The `trust-gn` solver
    adds one n³/3 Cholesky per path and holds three n × n matrices while it factorises.
    """
    from .._critical import DENSE_THRESHOLD

    seconds, nbytes = 0.0, 8.0 * samples * (N_IN + 2 * max(hidden) + N_OUT) * 2
    for h in hidden:
        n = n_parameters(h)
        dense = method == "dense" or (method == "auto" and n <= DENSE_THRESHOLD)
        step = n * 12.0 * samples * n + n ** 3 if dense else MIN_HVPS_PER_STEP * 12.0 * samples * n
        gn = not dense and solver == "trust-gn"
        step_flops = (steps + 1) * step + (n ** 3 / 3.0 if gn else 0.0)
        seconds += seeds * (epochs * 6.0 * samples * n + step_flops) / PEAK_FLOPS
        nbytes = max(nbytes, 4 * 8.0 * n * n if dense else 3 * 8.0 * n * n if gn else 60 * 8.0 * n)
    return seconds, nbytes


def parse_widths(text: str) -> list[int]:
    """`10,15,20` → [10, 15, 20]; every H must be an integer ≥ 2."""
    parts = [t for t in str(text).split(",")]
    if not parts or any(t.strip() == "" for t in parts):
        raise ValueError(f"H: expected comma-separated integers like 10,15,20, got {text!r}")
    return [parse_int(t, "H", lo=2) for t in parts]


def parse_pair(text: str) -> tuple[int, int]:
    parts = str(text).split(",")
    if len(parts) != 2:
        raise ValueError(f"pair: expected l,m (0-based), got {text!r}")
    l, m = (parse_int(t, "pair", lo=0) for t in parts)
    if l == m:
        raise ValueError(f"pair: l and m must differ, got {text!r}")
    return l, m


def _argument(fn):
    """argparse type from a parser that raises ValueError naming its argument."""

    def parse(text):
        try:
            return fn(text)
        except ValueError as err:
            raise ArgumentValueError(str(err)) from None

    return parse


def add_parser(subparsers):
    p = subparsers.add_parser("mnist", help="permutation paths of 784-H-H-10 teachers (Fig. 3)")
    p.add_argument("--data", default="fashion-mnist",
                   help="fashion-mnist (Debian's dataset-fashion-mnist, default), digits "
                        "(scikit-learn), or a folder with the four MNIST IDX files")
    p.add_argument("--H", dest="hidden", type=_argument(parse_widths), default=[10],
                   help="hidden widths, comma-separated (paper: 10,15,20,25)")
    p.add_argument("--seeds", type=int_arg("seeds", lo=1), default=2,
                   help="teachers per H, seeds 0…N−1 (paper: 6)")
    p.add_argument("--samples", type=int_arg("samples", lo=1), default=10_000,
                   help="training samples (the first N; paper: all 60,000)")
    p.add_argument("--steps", type=int_arg("steps", lo=2), default=100,
                   help="log-spaced distance steps (paper: 100)")
    p.add_argument("--layer", type=int_arg("layer", lo=1, hi=2), default=2,
                   help="hidden layer whose pair is merged (paper: 2)")
    p.add_argument("--pair", type=_argument(parse_pair), default=None,
                   help="l,m (0-based) instead of the most cosine-similar pair")
    p.add_argument("--activation", default="softplus")
    p.add_argument("--epochs", type=int_arg("epochs", lo=1), default=20,
                   help="teacher training epochs (Adam, batch 128)")
    p.add_argument("--max-newton", type=int_arg("max-newton", lo=1, hi=10_000), default=100,
                   help="trust-region Newton iterations allowed per distance step")
    from .._newton_krylov import FIG3_HVP_BUDGET

    p.add_argument("--max-hvps", type=int_arg("max-hvps", lo=1, hi=10_000_000), default=FIG3_HVP_BUDGET,
                   help="matrix-free solver: Hessian-vector products allowed per distance step "
                        f"(default {FIG3_HVP_BUDGET}, sized for the default run to end within 10 min on "
                        "2 cores); a step that runs out reports max_steps")
    p.add_argument("--method", type=choice_arg("method", ("auto", "dense", "matrix-free")),
                   default="auto", help="path solver (auto: dense up to 4000 parameters)")
    from .._newton_krylov import PATH_SOLVERS

    p.add_argument("--solver", type=choice_arg("solver", PATH_SOLVERS), default="trust-ncg",
                   help="matrix-free distance-step solver: trust-ncg (default), trust-krylov, trust-pcg "
                        "(EKFAC-preconditioned) or trust-gn (preconditioned by the exact Gauss–Newton "
                        "matrix, refactorised now and then; for runs with large --max-hvps)")
    from .._data import INPUT_RTOL

    p.add_argument("--input-rtol", type=float_arg("input-rtol", lo=0.0, hi=1.0, open_hi=True), default=INPUT_RTOL,
                   help="project the inputs off the directions whose singular value is below this fraction "
                        f"of the largest (default {INPUT_RTOL:g}; 0 keeps the raw data)")
    p.add_argument("--gauge", type=choice_arg("gauge", ("auto", "paper", "balanced", "upstream")), default="auto",
                   help="how the pair's distance is measured: paper (the paper's δ), balanced (between balanced "
                        "neurons), upstream (each incoming weight scaled by the rms pre-activation of the neuron "
                        "it comes from: invariant to rescaling the layer below, not the paper's), auto "
                        "(balanced for relu, else paper)")
    p.add_argument("--out", required=True)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args):
    from .._data import load_image_data
    from .._network import activation_function
    from ..experiments.mnist import run_mnist

    activation_function(args.activation)
    out = output_dir(args.out)
    if args.pair is not None and max(args.pair) >= min(args.hidden):
        raise ValueError(f"pair: neuron {max(args.pair)} does not exist for H={min(args.hidden)}")
    seconds, nbytes = estimate_cost(args.hidden, args.seeds, args.samples, args.steps, args.epochs, args.method,
                                    args.solver)
    blame = most_raised(steps=(args.steps, 100), seeds=(args.seeds, 2), epochs=(args.epochs, 20),
                        samples=(args.samples, 10_000), H=(max(args.hidden), 10))
    warning = check_cost(blame, seconds=seconds, nbytes=nbytes, bound="at least",
                         what=f"{len(args.hidden) * args.seeds} teachers ({args.epochs} epochs) and paths of "
                              f"{args.steps} steps on {args.samples} samples")
    try:  # bad data or --samples: refused before any work
        load_image_data(args.data, n_samples=args.samples)
    except (ValueError, FileNotFoundError) as err:  # named after the library's argument: rename
        head, sep, rest = str(err).partition(":")
        raise ValueError({"n_samples": "samples", "directory": "data", "path": "data"}.get(head, head)
                         + sep + rest) from None
    if warning:  # only once every check has passed: one line on stderr for a refusal
        print(f"symland mnist: {warning}", file=sys.stderr)
    with atomic_output(out) as tmp:
        result = run_mnist(tmp, data=args.data, hidden=tuple(args.hidden), seeds=args.seeds,
                           samples=args.samples, steps=args.steps, layer=args.layer,
                           activation=args.activation, epochs=args.epochs,
                           max_newton_steps=args.max_newton, max_hvps=args.max_hvps, pair=args.pair,
                           method=args.method, solver=args.solver, input_rtol=args.input_rtol,
                           gauge=args.gauge,
                           progress=not args.no_progress)
    n_ok = sum(r["path"]["all_converged"] for r in result["runs"])
    print(f"{len(result['runs'])} paths on {result['data']['source']}, {n_ok} with every step converged")
    print(f"report: {out / 'report.html'}")
    return 0
