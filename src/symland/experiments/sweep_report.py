"""One self-contained HTML report for a sweep's result store (`symland report OUT`).

Wires `symland.sweep.ResultStore` to the HTML helpers of `report.py`: counts
by status, the figures the experiment declares (`Scatter`: a headline number
against an axis, one point per job, e.g. permutation-point loss against width
with seeds as points; `Bars`: the mean of a fraction per value of an axis,
e.g. the fraction of pairs with a certified saddle per activation), the
summary table and every failure with its configuration and traceback.
"""

from __future__ import annotations

import html
import json
import math
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from symland.sweep import FAILED, Bars, ResultStore, Scatter, get_experiment

from .report import embed_png, html_table, write_report

MAX_TABLE_ROWS = 500


def _label(value) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _number(value):
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def plot_scatter(fig_spec: Scatter, records, png):
    """`fig_spec.y` against `fig_spec.x`, one point per completed job, coloured by `fig_spec.colour`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = defaultdict(list)
    xs_all = [r["config"][fig_spec.x] for r in records]
    numeric_x = all(_number(x) is not None for x in xs_all)
    categories = sorted({_label(x) for x in xs_all})
    for r in records:
        y = _number(r["scalars"].get(fig_spec.y))
        if y is None or (fig_spec.logy and y <= 0):
            continue
        x = r["config"][fig_spec.x]
        xv = float(x) if numeric_x else float(categories.index(_label(x)))
        key = _label(r["config"][fig_spec.colour]) if fig_spec.colour else ""
        groups[key].append((xv, y))
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    spread = 0.15 if len(groups) > 1 else 0.0
    for i, (key, pts) in enumerate(sorted(groups.items())):
        offset = (i - (len(groups) - 1) / 2) * spread / max(len(groups) - 1, 1) if spread else 0.0
        ax.plot([p[0] + offset for p in pts], [p[1] for p in pts], "o", ms=4, alpha=0.75,
                label=f"{fig_spec.colour} = {key}" if fig_spec.colour else None)
    if not numeric_x:
        ax.set_xticks(range(len(categories)), categories, rotation=30, fontsize=7)
    if fig_spec.logy:
        ax.set_yscale("log")
    ax.set_xlabel(fig_spec.x)
    ax.set_ylabel(fig_spec.y)
    ax.set_title(f"{fig_spec.y} against {fig_spec.x} (one point per job)", fontsize=9)
    if fig_spec.colour:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def plot_bars(fig_spec: Bars, records, png):
    """Mean of `fig_spec.y` over the completed jobs of each value of axis `fig_spec.by` (n on each bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = defaultdict(list)
    for r in records:
        y = _number(r["scalars"].get(fig_spec.y))
        if y is not None:
            values[_label(r["config"][fig_spec.by])].append(y)
    if not values:
        return None
    keys = sorted(values)
    means = [sum(values[k]) / len(values[k]) for k in keys]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bars = ax.bar(range(len(keys)), means, color="tab:blue")
    for b, k in zip(bars, keys):
        ax.annotate(f"n={len(values[k])}", (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(keys)), keys, rotation=30, fontsize=8)
    ax.set_xlabel(fig_spec.by)
    ax.set_ylabel(f"mean {fig_spec.y}")
    ax.set_ylim(0, max(1.0, max(means) * 1.15))
    ax.set_title(f"mean {fig_spec.y} per {fig_spec.by}", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def build_sweep_report(out, path=None) -> Path:
    """Write one self-contained HTML report of the store `out` (default `out/report.html`).

    **Returns:** the report's path. `ValueError` if `out` is not a sweep store.
    """
    store = ResultStore(out)
    name = store.experiment() if store.out.is_dir() else None
    if name is None:
        raise ValueError(f"out: {str(out)!r} is not a sweep result store (no sweep.json)")
    exp = get_experiment(name)
    meta = json.loads((store.out / "sweep.json").read_text())
    records = store.records()
    ok = [r for r in records if r["status"] != FAILED]
    failed = [r for r in records if r["status"] == FAILED]
    counts = Counter(r["status"] for r in records)
    wall = sum(r.get("wall_time") or 0.0 for r in records)
    spec = meta.get("spec", {})
    sections = [("Overview", (
        f"<p>Experiment <b>{html.escape(name)}</b>: {html.escape(exp.description)}. "
        f"{len(records)} jobs in the store: "
        + ", ".join(f"{n} {html.escape(s)}" for s, n in sorted(counts.items()))
        + f"; total job time {wall:.1f} s.</p>"
        f"<p>Latest spec: grid <code>{html.escape(json.dumps(spec.get('grid', {})))}</code>, "
        f"fixed <code>{html.escape(json.dumps(spec.get('fixed', {})))}</code>.</p>"))]
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, fig_spec in enumerate(exp.figures):
            png = Path(tmp) / f"fig{i}.png"
            made = (plot_scatter if isinstance(fig_spec, Scatter) else plot_bars)(fig_spec, ok, png)
            if made is not None:
                figures.append(embed_png(made))
        sections.append(("Figures", "".join(figures) or "<p>No completed job has these numbers yet.</p>"))
    header, rows = store.summary_rows()
    more = f"<p>First {MAX_TABLE_ROWS} of {len(rows)} rows; all in summary.csv.</p>" if len(rows) > MAX_TABLE_ROWS else ""
    sections.append(("Jobs (summary.csv)", html_table(header, rows[:MAX_TABLE_ROWS]) + more))
    if failed:
        parts = []
        for r in failed:
            parts.append(f"<details><summary>{html.escape(json.dumps(r['config']))}: "
                         f"{html.escape(r.get('error') or '')}</summary>"
                         f"<pre>{html.escape(r.get('traceback') or '')}</pre></details>")
        sections.append((f"Failures ({len(failed)})", "".join(parts)))
    target = Path(path) if path is not None else store.out / "report.html"
    write_report(target, f"symland sweep: {name}", sections)
    return target
