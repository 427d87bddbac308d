"""`symland report OUT`: one self-contained HTML report of a sweep's result store."""

from __future__ import annotations

from pathlib import Path

from ._options import output_file


def add_parser(subparsers):
    p = subparsers.add_parser("report", help="HTML report (figures across the grid) of a sweep store",
                              description="Build one self-contained HTML report from the result store "
                                          "OUT written by `symland sweep`.")
    p.add_argument("out", help="the sweep's result store folder")
    p.add_argument("--html", default=None, help="report path (default OUT/report.html)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from symland.experiments.sweep_report import build_sweep_report
    from symland.sweep import ResultStore, get_experiment

    if str(args.out).strip() == "":
        raise ValueError("out: must be a folder path, got an empty string")
    out = Path(args.out)
    if not (out / "sweep.json").is_file():
        raise ValueError(f"out: {str(out)!r} is not a sweep result store (no sweep.json)")
    get_experiment(ResultStore(out).experiment())  # a damaged or unknown store is refused here
    if args.html is not None:
        target = Path(args.html)
        if target.suffix.lower() not in (".html", ".htm") or target.is_dir():
            raise ValueError(f"html: expected a .html file path, got {args.html!r}")
        output_file(target, "html")  # a writable place: not under a file
    path = build_sweep_report(out, args.html)
    print(f"report: {path}")
    return 0
