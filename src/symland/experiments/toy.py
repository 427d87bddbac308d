"""Fig. 1 of Brea et al. 2019: permutation paths on the 2-D toy problem."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._data import toy_problem
from .._path import find_permutation_paths
from .._symmetry import neuron_vectors
from .report import embed_png, html_table, write_report


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


def plot_toy(problem, paths, out_png):
    """Top row: teacher vectors W_i/b_i (blue) and permutation point (red); bottom: L vs d."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(paths)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.4), squeeze=False)
    teacher = np.asarray(neuron_vectors(problem.teacher, 1))
    for j, path in enumerate(paths):
        ax = axes[0, j]
        pp = np.asarray(neuron_vectors(path.permutation_point, 1))
        for vecs, colour in ((teacher, "tab:blue"), (pp, "tab:red")):
            pts = vecs[:, :2] / vecs[:, 2:3]
            ax.scatter(pts[:, 0], pts[:, 1], c=colour, s=14)
            for i, (a, b) in enumerate(pts):
                ax.annotate(str(i + 1), (a, b), color=colour, fontsize=7)
        ax.set_title(f"{path.l + 1} & {path.m + 1}", fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
        ax = axes[1, j]
        d = path.delta[:-1]
        ax.semilogx(d, path.loss[:-1], "k-", lw=1)
        bad = ~path.converged[:-1]
        if bad.any():
            ax.semilogx(d[bad], path.loss[:-1][bad], "rx", ms=4, label="not converged")
            ax.legend(fontsize=6)
        ax.set_xlabel("d")
        if j == 0:
            ax.set_ylabel("L")
    axes[0, 0].set_ylabel("W_i / b_i")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def run_toy(out, *, activation: str = "relu", pairs="all", steps: int = 200,
            ratio: float = 1e-4, seed: int = 1, max_newton_steps: int = 50,
            valley: bool = True, progress: bool = True, method: str = "both") -> dict:
    """Reproduce Fig. 1: paths for the chosen pairs, JSON, figure and HTML report in `out`.

    `method`: `fixed-delta` (the paper's paths), `mep` (minimum-energy paths
    and their certified saddles, `symland.permutation_saddles`) or `both`
    (the report then shows them side by side per pair).

    With `valley`, the report also gets the equal-loss valley of §4.2 (ii)
    (`symland.experiments.valley.run_valley`, written to `out/valley.*`).
    """
    out = Path(out)
    stages = tqdm(total=5 if valley else 4, desc="toy", disable=not progress, unit="stage")
    problem = toy_problem(activation, seed=seed)
    if pairs == "all":
        pairs = list(itertools.combinations(range(problem.model.widths[1]), 2))
    stages.set_postfix_str(f"{len(pairs)} paths × {steps} steps (batched)")
    paths = find_permutation_paths(problem.model, problem.teacher, problem.x, problem.y, 1,
                                   pairs, steps=steps, ratio=ratio, progress=progress,
                                   max_newton_steps=max_newton_steps)
    stages.update()
    out.mkdir(parents=True, exist_ok=True)
    stages.set_postfix_str("Hessians")
    records = [p.to_dict() for p in paths]
    result = {"problem": {"activation": activation, "seed": seed, "n_samples": int(problem.x.shape[0]),
                          "widths": list(problem.model.widths), "steps": steps, "ratio": ratio,
                          "max_newton_steps": paths[0].max_newton_steps, "gtol": paths[0].gtol},
              "paths": records}
    stages.update()
    stages.set_postfix_str("figure")
    png = plot_toy(problem, paths, out / "toy.png")
    stages.update()
    groups = group_equal_loss(paths)
    rows = [[", ".join(f"{p.l + 1}&{p.m + 1}" for p in members), f"{loss:.6e}",
             ", ".join(str(p.permutation_point_report.index) for p in members),
             ", ".join(str(p.permutation_point_report.nullity) for p in members),
             ", ".join("yes" if p.all_converged else
                       "NO ({} of {} steps: {})".format(
                           int((~p.converged).sum()), p.converged.size,
                           "/".join(sorted(set(p.status) - {"converged"})))
                       for p in members)]
            for loss, members in groups]
    sections = [
        ("Setting", f"<p>Teacher–student toy (Brea et al. 2019, Fig. 1): 2-D inputs, "
                    f"{problem.x.shape[0]} samples of N(0, I), 5 hidden {activation} neurons, one linear "
                    f"output; δ decreased in {steps} log-spaced steps to {ratio:g}·δ₀, then 0.</p>"),
        ("Figure", embed_png(png)),
        ("Permutation points grouped by loss",
         html_table(["pairs (1-based)", "loss", "index", "nullity", "every step converged"], rows)),
    ]
    if method in ("mep", "both"):
        from .._saddle import permutation_saddles
        from .saddle import saddle_records, saddle_section

        stages.set_postfix_str("minimum-energy paths")
        saddles = permutation_saddles(problem.model, problem.teacher, problem.x, problem.y, 1, pairs,
                                      fixed_delta_paths=paths)
        sections.append(("Minimum-energy paths and certified saddles", saddle_section(saddles)))
        result["saddles"] = saddle_records(saddles)
    if valley:
        from .valley import run_valley

        stages.set_postfix_str("equal-loss valley")
        v = run_valley(out)
        sections.append((
            "Equal-loss valley (§4.2 (ii))",
            f"<p>From a permutation point of the {v.get('activation', 'tanh')} toy, the six moves of the "
            f"proof sketch realise the permutation {v['perm']} of the hidden layer in "
            f"{v['n_samples']} samples; the largest relative loss change along the way is "
            f"{v['max_rel_loss_change']:.1e} (round-off).</p>" + embed_png(v["figure"])))
        result["valley"] = {k: v[k] for k in ("perm", "n_samples", "max_rel_loss_change")}
        stages.update()
    (out / "toy.json").write_text(json.dumps(result, indent=1))
    write_report(out / "report.html", "symland: permutation paths on the toy (Fig. 1)", sections)
    stages.update()
    stages.close()
    result["report"] = str(out / "report.html")
    return result
