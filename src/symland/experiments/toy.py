"""Fig. 1 of Brea et al. 2019: permutation paths on the 2-D toy problem.

`run_toy` computes the paths, then builds the report from a list of sections.
Each section is a small function `section(run: ToyRun) -> (heading, html) | None`
that may also add a key to `run.result` (what `toy.json` records); pass more
with `run_toy(..., sections=...)` to extend the report.
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import json
import math
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._data import ToyProblem, toy_problem
from .._path import find_permutation_paths
from .._symmetry import neuron_vectors
from .report import embed_png, html_table, report_html
from .figures import place_labels, robust_limits, draw_clipped

PAIRS_PER_ROW = 5


def group_equal_loss(paths, rtol: float = 1e-6):
    """Group pairs whose permutation points have equal loss (within `rtol`)."""
    groups = []
    for p in sorted(paths, key=lambda q: q.permutation_point_report.loss):
        loss = p.permutation_point_report.loss
        if groups and abs(loss - groups[-1][0]) <= rtol * max(abs(groups[-1][0]), 1e-300):
            groups[-1][1].append(p)
        else:
            groups.append((loss, [p]))
    return groups


def configuration(params) -> np.ndarray:
    """The toy's neuron coordinates (W_{i1}/b_i, W_{i2}/b_i), one row per hidden neuron."""
    v = np.asarray(neuron_vectors(params, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return v[:, :2] / v[:, 2:3]


def plot_toy(problem, paths, out_path, *, per_row: int = PAIRS_PER_ROW):
    """Fig. 1 as a grid of pairs: configuration (teacher ●, θ_{l⇔m} ✕) above, L against d below.

    All configuration panels share limits taken from robust quantiles of
    every neuron drawn; a neuron outside them is drawn at the edge as an
    arrow head labelled with its coordinates. Neuron labels are 1-based and
    pushed apart so that they do not overlap.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = len(paths)
    cols = min(per_row, n)
    rows = math.ceil(n / cols)
    fig = plt.figure(figsize=(2.9 * cols + 0.6, 5.6 * rows + 0.6))
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[1.25, 1.0] * rows, hspace=0.45, wspace=0.35)
    teacher = configuration(problem.teacher)
    configs = [configuration(p.permutation_point) for p in paths]
    every = np.concatenate([teacher] + configs)
    xlim, ylim = robust_limits(every[np.all(np.isfinite(every), axis=1)])
    for j, path in enumerate(paths):
        r, c = divmod(j, cols)
        ax = fig.add_subplot(grid[2 * r, c])
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.axhline(0, color="0.9", lw=0.6, zorder=0)
        ax.axvline(0, color="0.9", lw=0.6, zorder=0)
        anchors, texts, colours = [], [], []
        for pts, colour, marker in ((teacher, "tab:blue", "o"), (configs[j], "tab:red", "x")):
            shown = draw_clipped(ax, pts, colour=colour, marker=marker)
            for i, xy in enumerate(shown):
                anchors.append(xy)
                texts.append(str(i + 1))
                colours.append(colour)
        place_labels(ax, anchors, texts, colours)
        kind = path.permutation_point_report.kind
        ax.set_title(rf"$\theta_{{{path.l + 1}\Leftrightarrow {path.m + 1}}}$: {kind}", fontsize=9)
        ax.set_xlabel(r"$w_{i1}/b_i$", fontsize=8)
        ax.set_ylabel(r"$w_{i2}/b_i$", fontsize=8)
        ax.tick_params(labelsize=7)
        ax = fig.add_subplot(grid[2 * r + 1, c])
        d = path.delta[:-1]
        ax.semilogx(d, path.loss[:-1], "k-", lw=1)
        bad = ~path.converged[:-1]
        if bad.any():
            ax.semilogx(d[bad], path.loss[:-1][bad], "x", color="tab:orange", ms=4)
        ax.set_xlabel(r"distance $d = \|\vartheta_l - \vartheta_m\|$", fontsize=8)
        ax.set_ylabel(r"loss $L$", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.yaxis.get_offset_text().set_fontsize(7)
    handles = [Line2D([], [], color="tab:blue", marker="o", ls="", label="teacher neurons (global minimum)"),
               Line2D([], [], color="tab:red", marker="x", ls="",
                      label=r"permutation point $\theta_{l\Leftrightarrow m}$"),
               Line2D([], [], color="k", lw=1, label=r"$L$ at the constrained minimum for each $d$"),
               Line2D([], [], color="tab:orange", marker="x", ls="", label="step not converged"),
               Line2D([], [], color="0.3", marker=">", ls="", label="neuron outside the axes (coordinates given)")]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=8, frameon=False)
    fig.subplots_adjust(top=1 - 0.9 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(),
                        left=0.6 / fig.get_figwidth(), right=1 - 0.15 / fig.get_figwidth())
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


@dataclasses.dataclass
class ToyRun:
    """What the report sections see: the settings, the problem, the paths, and the output folder.

    `out` is the (temporary) folder files are written to; `result` is what
    `toy.json` records and sections may add to.
    """

    out: Path
    settings: dict
    problem: ToyProblem
    paths: list
    result: dict


def setting_section(run: ToyRun):
    s, x = run.settings, run.problem.x
    return ("Setting",
            f"<p>Teacher–student toy (Brea et al. 2019, Fig. 1): 2-D inputs, {x.shape[0]} samples of "
            f"N(0, I), {run.problem.model.widths[1]} hidden {html.escape(s['activation'])} neurons "
            f"(seed {s['seed']}), one linear output; δ decreased in {s['steps']} log-spaced steps to "
            f"{s['ratio']:g}·δ₀, then 0. Each δ step is solved to ‖∇L‖∞ ≤ {run.paths[0].gtol:g} "
            f"with at most {run.paths[0].max_newton_steps} Newton steps. Neurons are labelled "
            f"1…{run.problem.model.widths[1]}.</p>")


def figure_section(run: ToyRun):
    png = plot_toy(run.problem, run.paths, run.out / "toy.png")
    return ("Figure", embed_png(png))


def _yes_no(value, failure: str) -> str:
    return "—" if value is None else ("yes" if value else f"NO ({failure})")


def permutation_point_rows(paths, n_next: int):
    """One row per pair, grouped by equal loss: the §4.2 checks of each θ_{l⇔m}."""
    rows = []
    for g, (_, members) in enumerate(group_equal_loss(paths), start=1):
        for p in members:
            r, ok = p.permutation_point_report, p.checks()
            critical = r.is_critical
            steps = ("yes" if p.all_converged else "NO ({} of {} steps: {})".format(
                int((~p.converged).sum()), p.converged.size,
                "/".join(sorted(set(p.status) - {"converged"}))))
            rows.append([
                str(g), f"{p.l + 1} & {p.m + 1}", f"{r.loss:.6e}", f"{r.grad_norm:.1e}", str(r.kind),
                str(r.index) if critical else "not critical",
                str(r.nullity) if critical else "not critical",
                _yes_no(ok["at_most_one_negative"], f"{r.index} negative"),
                _yes_no(ok["at_least_n_next_zero"], f"{r.nullity} zero < {n_next}"),
                steps])
    return rows


def permutation_point_section(run: ToyRun):
    n_next = int(run.problem.model.widths[2])
    gtol = run.paths[0].permutation_point_report.gtol
    header = ["group", "pair", "loss", "‖∇L‖∞", "verdict", "index", "nullity",
              "≤ 1 negative eigenvalue", f"≥ {n_next} zero eigenvalue(s)", "every step converged"]
    return ("Permutation points grouped by loss",
            f"<p>θ<sub>l⇔m</sub> counts as critical when ‖∇L‖∞ ≤ {gtol:g} (full gradient); index "
            "and nullity come from the dense Hessian (zero: |λ| ≤ zero_tol) and are only given at a "
            "critical point. The last checks are the claims of §4.2: at most one negative "
            "eigenvalue (Fukumizu &amp; Amari, as cited; fails in general) and at least n<sub>k+1</sub> "
            "zero eigenvalues (§4.2 (i)). Pairs with equal loss share a group.</p>"
            + html_table(header, permutation_point_rows(run.paths, n_next)))


def valley_section(run: ToyRun):
    """The equal-loss valley of §4.2 (ii) for the same activation and seed, or why it is missing."""
    from .valley import run_valley

    s = run.settings
    try:
        v = run_valley(run.out, activation=s["activation"], seed=s["seed"])
    except ValueError as err:
        run.result["valley"] = {"status": "failed", "reason": str(err).splitlines()[0]}
        return ("Equal-loss valley (§4.2 (ii))",
                f"<p>Not available for this toy: {html.escape(str(err).splitlines()[0])}</p>")
    run.result["valley"] = {k: v[k] for k in ("activation", "seed", "perm", "n_samples",
                                              "max_rel_loss_change")}
    perm = [int(i) + 1 for i in v["perm"]]
    return ("Equal-loss valley (§4.2 (ii))",
            f"<p>From a permutation point of this {html.escape(s['activation'])} toy (seed {s['seed']}), "
            f"the six moves of the proof sketch realise the permutation {perm} (1-based) of the "
            f"hidden layer in {v['n_samples']} samples; the largest relative loss change along the "
            f"way is {v['max_rel_loss_change']:.1e} (round-off).</p>" + embed_png(run.out / v["figure"]))


def saddle_section(run: ToyRun):
    """Minimum-energy paths and certified saddles per pair, beside the fixed-δ results (issue 9)."""
    from .._saddle import permutation_saddles
    from .saddle import saddle_records, saddle_section as saddle_html

    problem = run.problem
    pairs = [(p.l, p.m) for p in run.paths]
    saddles = permutation_saddles(problem.model, problem.teacher, problem.x, problem.y, 1, pairs,
                                  fixed_delta_paths=run.paths)
    run.result["saddles"] = saddle_records(saddles)
    return ("Minimum-energy paths and certified saddles", saddle_html(saddles))


SECTIONS = (setting_section, figure_section, permutation_point_section)
METHODS = ("fixed-delta", "mep", "both")


def run_toy(out, *, activation: str = "relu", pairs="all", steps: int = 200,
            ratio: float = 1e-4, seed: int = 1, max_newton_steps: int = 50,
            valley: bool = False, sections=SECTIONS, progress: bool = True,
            method: str = "both") -> dict:
    """Reproduce Fig. 1: paths for the chosen pairs; `toy.json`, `toy.png` and `report.html` in `out`.

    `out` is written as is; the command line passes the temporary folder of
    `atomic_output`, so that a failed run leaves nothing behind. `sections` builds the report (see `ToyRun`);
    `valley` appends `valley_section` (the equal-loss valley for the same
    activation and seed, about 10 s more). `method`: `fixed-delta` (the
    paper's paths only), `mep` or `both` (also minimum-energy paths and their
    certified saddles, `symland.permutation_saddles`, side by side per pair in
    `saddle_section`).

    **Returns:** the `toy.json` record plus `report` (the HTML path).
    """
    out = Path(out)
    if method not in METHODS:
        raise ValueError(f"method: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    sections = (list(sections) + ([saddle_section] if method in ("mep", "both") else [])
                + ([valley_section] if valley else []))
    stages = tqdm(total=1 + len(sections), desc="toy", disable=not progress, unit="stage")
    problem = toy_problem(activation, seed=seed)
    if pairs == "all":
        pairs = list(itertools.combinations(range(problem.model.widths[1]), 2))
    stages.set_postfix_str(f"{len(pairs)} paths × {steps} steps (batched)")
    paths = find_permutation_paths(problem.model, problem.teacher, problem.x, problem.y, 1,
                                   pairs, steps=steps, ratio=ratio, progress=progress,
                                   max_newton_steps=max_newton_steps)
    stages.update()
    settings = {"activation": activation, "seed": seed, "steps": steps, "ratio": ratio}
    out.mkdir(parents=True, exist_ok=True)
    stages.set_postfix_str("Hessians")
    result = {"problem": {**settings, "n_samples": int(problem.x.shape[0]),
                          "widths": list(problem.model.widths),
                          # read from the paths: what every δ step was solved with
                          "max_newton_steps": paths[0].max_newton_steps, "gtol": paths[0].gtol},
              "paths": [p.to_dict() for p in paths]}
    run = ToyRun(out, settings, problem, paths, result)
    parts = []
    for section in sections:
        stages.set_postfix_str(section.__name__.removesuffix("_section"))
        part = section(run)
        if part is not None:
            parts.append(part)
        stages.update()
    (run.out / "toy.json").write_text(json.dumps(result, indent=1))
    (run.out / "report.html").write_text(
        report_html("symland: permutation paths on the toy (Fig. 1)", parts), encoding="utf-8")
    stages.close()
    result["report"] = str(out / "report.html")
    return result
