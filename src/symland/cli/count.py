"""`symland count`: exact tables of symmetry-induced critical points.

    symland count T      --K 1:5 --n 2:30      # Brea et al. 2019, Prop. 1
    symland count minima --r 1:4 --m 1:12      # Şimşek et al. 2021, T(r*, m)
    symland count G      --r 1:4 --m 1:12      # Şimşek et al. 2021, G(r, m)

Values are `a:b` (inclusive), a single integer, or a comma list of either.
Entries where a formula is undefined (K >= n, m < r) are left blank when one of
the two values comes from a range, and are an error when both were given
explicitly. `--csv`, `--json` and `--plot` write the table, exactly (ints as
JSON integers, fractions as strings such as "7/2"), and a png figure.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from decimal import Context, Decimal
from fractions import Fraction
from pathlib import Path

from symland import counting

from ._options import (atomic_file, atomic_write_text, check_cost, int_arg, output_file_arg,
                       plot_format, plot_path_arg)

_EXACT_DIGITS = 12  # terminal: exact up to this many characters, else scientific
MAX_VALUE = 10 ** 6     # largest K, n, r or m accepted
MAX_ENTRIES = 10 ** 5   # largest table
# global_minima_subspaces(r, m) enumerates the dimension of every subspace: about 1.8 s at
# m = 2000 (r = 3, 4) growing like m³ (measured on the development machine).
MINIMA_SECONDS_AT_2000 = 1.8


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "count",
        help="exact counts of permutation points and symmetry-induced subspaces",
        description=__doc__.split("\n\n")[0],
    )
    sub = parser.add_subparsers(dest="quantity", required=True, metavar="QUANTITY")
    specs = {
        "T": ("T(K, n) of Brea et al. 2019, Prop. 1, with its lower bound and c_K n^K",
              [("--K", "orders K, e.g. 1:5"), ("--n", "layer widths n, e.g. 2:30")]),
        "minima": ("T(r*, m) global-minimum subspaces of Şimşek et al. 2021",
                   [("--r", "teacher widths r*, e.g. 1:4"), ("--m", "student widths m")]),
        "G": ("G(r, m) symmetry-induced subspaces of Şimşek et al. 2021",
              [("--r", "smaller widths r, e.g. 1:4"), ("--m", "student widths m")]),
    }
    for name, (help_, options) in specs.items():
        p = sub.add_parser(name, help=help_, description=help_)
        for flag, h in options:
            p.add_argument(flag, required=True, help=h)
        if name == "minima":
            p.add_argument("--d", type=int_arg("d", lo=1, hi=MAX_VALUE), default=1,
                           help="input dimension for the subspace dimensions (default 1)")
        p.add_argument("--csv", type=output_file_arg("csv"), help="write the table as CSV")
        p.add_argument("--json", type=output_file_arg("json"), help="write the table as JSON")
        p.add_argument("--plot", type=plot_path_arg("plot"),
                       help="write a figure; the extension picks the format (.png, .pdf, .svg)")
        p.add_argument("--no-progress", action="store_true")
        p.set_defaults(func=run)


# ---------------------------------------------------------------- parsing


def parse_values(text: str, name: str, minimum: int = 1) -> list[tuple[int, bool]]:
    """Parse `a:b`, `a` or a comma list of them into (value, came_from_range) pairs."""
    out: list[tuple[int, bool]] = []
    for item in str(text).split(","):
        item = item.strip()
        try:
            if ":" in item:
                a, b = (int(x) for x in item.split(":"))
            else:
                a = b = int(item)
        except ValueError:
            raise ValueError(f"--{name}: expected an integer, a:b with a <= b, or a comma list, "
                             f"got {text!r}") from None
        if a > b:
            raise ValueError(f"--{name}: range {item!r} is reversed; write {b}:{a}")
        for v in (a, b):
            if v < minimum:
                raise ValueError(f"--{name}: must be >= {minimum}, got {v}")
            if v > MAX_VALUE:
                raise ValueError(f"--{name}: at most {MAX_VALUE}, got {v}")
        if b - a + 1 > MAX_ENTRIES:
            raise ValueError(f"--{name}: {item!r} has {b - a + 1} values; at most {MAX_ENTRIES}")
        out.extend((v, ":" in item) for v in range(a, b + 1))
    seen: dict[int, bool] = {}
    for v, ranged in out:  # a value is explicit if listed explicitly anywhere
        seen[v] = seen.get(v, True) and ranged
    return sorted(seen.items())


def _pairs(xs, ys, valid, xname, yname):
    """Yield (x, y, ok); raise if an invalid pair has both values explicit."""
    for x, x_ranged in xs:
        for y, y_ranged in ys:
            ok = valid(x, y)
            if not ok and not (x_ranged or y_ranged):
                raise ValueError(f"{xname}={x}, {yname}={y}: undefined "
                                 f"(need {'K < n' if xname == 'K' else 'm >= r'})")
            yield x, y, ok


# ---------------------------------------------------------------- formatting


def fmt(x) -> str:
    """Exact for small values, scientific (4 digits) for huge ones."""
    if x is None:
        return ""
    s = str(x)
    if len(s) <= _EXACT_DIGITS:
        return s
    x = Fraction(x)
    ctx = Context(prec=20)
    return f"{ctx.divide(Decimal(x.numerator), Decimal(x.denominator)):.4e}"


def _jsonable(x):
    if isinstance(x, Fraction):
        return str(x)
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    return x


def _log10(x) -> float:
    x = Fraction(x)
    if x <= 0:
        return math.nan
    return math.log10(x.numerator) - math.log10(x.denominator)


def _markdown(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- the tables


def _table_T(args):
    Ks = parse_values(args.K, "K")
    ns = parse_values(args.n, "n")
    records = []
    grid = {}
    for K, n, ok in _pairs(Ks, ns, lambda K, n: K < n, "K", "n"):
        if not ok:
            continue
        t = counting.T(K, n)
        grid[K, n] = t
        records.append({"K": K, "n": n, "T": t, "lower_bound": counting.T_lower_bound(K, n),
                        "c_K_n_K": counting.c_K(K) * n**K})
    header = ["n"] + [f"T(K={K}, n)" for K, _ in Ks]
    rows = [[str(n)] + [fmt(grid.get((K, n))) for K, _ in Ks]
            for n, _ in ns if any((K, n) in grid for K, _ in Ks)]
    title = "T(K, n): K-th order permutation points per global minimum (Brea et al. 2019, Prop. 1)"
    return title, header, rows, records, {}


def _table_subspaces(args, quantity):
    rs = parse_values(args.r, "r")
    ms = parse_values(args.m, "m")
    records = []
    grid = {}
    from tqdm.auto import tqdm

    pairs = list(_pairs(rs, ms, lambda r, m: r <= m, "r", "m"))
    for r, m, ok in tqdm(pairs, desc=f"count {quantity}", unit="entry", delay=2.0, leave=False,
                         disable=getattr(args, "no_progress", False)):
        if not ok:
            continue
        if quantity == "minima":
            c = counting.global_minima_subspaces(r, m, d=args.d)
            records.append({"r_star": r, "m": m, "h": m - r, "T": c.count,
                            "dimensions": c.dimensions})
        else:
            c = counting.symmetry_induced_subspaces(r, m)
            records.append({"r": r, "m": m, "G": c.count, "dimensions": c.dimensions})
        grid[r, m] = c.count
    extra = {}
    if quantity == "minima":
        header = ["m"] + [f"T(r*={r}, m)" for r, _ in rs]
        title = (f"T(r*, m): global-minimum subspaces (Şimşek et al. 2021; d = {args.d}, "
                 "dimensions in --json/--csv)")
        extra["crossover_h"] = {r: counting.crossover_h(r) for r, _ in rs if r >= 2}
    else:
        header = ["m"] + [f"G(r={r}, m)" for r, _ in rs]
        title = "G(r, m) = r!·S(m, r): symmetry-induced subspaces (Şimşek et al. 2021)"
    rows = [[str(m)] + [fmt(grid.get((r, m))) for r, _ in rs]
            for m, _ in ms if any((r, m) in grid for r, _ in rs)]
    return title, header, rows, records, extra


# ---------------------------------------------------------------- output


def _write_csv(path: Path, records) -> None:
    fields = list(records[0]) if records else []
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(fields)
    for rec in records:
        row = []
        for k in fields:
            v = rec[k]
            if isinstance(v, dict):
                v = ";".join(f"{a}:{b}" for a, b in v.items())
            row.append(str(v))
        w.writerow(row)
    atomic_write_text(path, f.getvalue())


def _plot(path: Path, quantity, args, records) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if quantity == "T":
        Ks = sorted({rec["K"] for rec in records})
        for i, K in enumerate(Ks):
            recs = [rec for rec in records if rec["K"] == K]
            ns = [rec["n"] for rec in recs]
            color = f"C{i % 10}"
            ax.plot(ns, [_log10(rec["T"]) for rec in recs], "-", color=color, label=rf"$T(K={K}, n)$")
            ax.plot(ns, [_log10(rec["lower_bound"]) for rec in recs], "--", color=color)
            ax.plot(ns, [_log10(rec["c_K_n_K"]) for rec in recs], ":", color=color)
        ax.set_xlabel(r"layer width $n$")
        ax.set_ylabel(r"$\log_{10}$ count per global minimum")
        ax.set_title(r"$T(K, n)$ (solid), $\binom{n-K}{K}/2^K$ (dashed), $c_K n^K$ (dotted)", fontsize=9)
    else:
        # G(r*-1, m) / T(r*, m) against h = m - r*.
        key = "r_star" if quantity == "minima" else "r"
        r_stars = sorted({rec[key] + (quantity == "G") for rec in records})
        ms = sorted({rec["m"] for rec in records})
        for i, rs in enumerate(r for r in r_stars if r >= 2):
            pts = [(m - rs, _log10(Fraction(counting.symmetry_induced_subspaces(rs - 1, m).count,
                                            counting.global_minima_subspaces(rs, m).count)))
                   for m in ms if m >= rs]
            if pts:
                ax.plot(*zip(*pts), "o-", color=f"C{i % 10}", ms=3, label=rf"$r^*={rs}$")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel(r"$h = m - r^*$")
        ax.set_ylabel(r"$\log_{10}\, G(r^*-1, m)\,/\,T(r^*, m)$")
        ax.set_title(r"symmetry-induced ($G$) vs global-minimum ($T$) subspaces", fontsize=9)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format=plot_format(path), dpi=120)


def run(args: argparse.Namespace) -> int:
    quantity = args.quantity
    xs, ys = (args.K, args.n) if quantity == "T" else (args.r, args.m)
    xname, yname = ("K", "n") if quantity == "T" else ("r", "m")
    xv, yv = parse_values(xs, xname), parse_values(ys, yname)
    seen = {}
    for name in ("csv", "json", "plot"):  # one file each: the later would silently replace the earlier
        path = getattr(args, name)
        if path is not None:
            key = Path(path).resolve()
            if key in seen:
                raise ValueError(f"{name}: {str(path)!r} is also the --{seen[key]} file")
            seen[key] = name
    if len(xv) * len(yv) > MAX_ENTRIES:
        raise ValueError(f"--{yname}: the table would have {len(xv) * len(yv)} entries; at most {MAX_ENTRIES}")
    if quantity == "minima":
        seconds = sum(MINIMA_SECONDS_AT_2000 * (m / 2000) ** 3 for m, _ in yv) * len(xv)
        warning = check_cost("m", seconds=seconds, what="the subspace dimensions")
        if warning:
            print(f"symland count: {warning}", file=sys.stderr)
    if quantity == "T":
        title, header, rows, records, extra = _table_T(args)
    else:
        title, header, rows, records, extra = _table_subspaces(args, quantity)
    print(title)
    print()
    print(_markdown(header, rows))
    if extra.get("crossover_h"):
        print()
        print("crossover: smallest h with T(r*, r*+h) > G(r*-1, r*+h): "
              + ", ".join(f"r*={r}: h={h}" for r, h in extra["crossover_h"].items()))
    if args.csv:
        _write_csv(args.csv, records)
    if args.json:
        payload = {"quantity": quantity, "records": [_jsonable(r) for r in records],
                   **_jsonable(extra)}
        atomic_write_text(args.json, json.dumps(payload, indent=1) + "\n")
    if args.plot:
        _plot(args.plot, quantity, args, records)
    return 0
