"""Deep connectivity (Şimşek et al. 2021): all permuted teacher minima joined at zero loss.

Wires `connect_permuted_minima` to `deep_connectivity.json`, a figure (the
relative loss along every path of the search tree, and the Cayley-graph
distance of every minimum from the teacher) and an HTML report section.
"""

from __future__ import annotations

import json
from pathlib import Path

from .._deep_connectivity import connect_permuted_minima
from .report import embed_png, html_table, write_report


def run_deep_connectivity(out_dir, widths=(2, 3, 3, 1), *, activation: str = "softplus", seed: int = 0,
                          samples_per_move: int = 10, progress=None) -> dict:
    """Run `connect_permuted_minima`; write JSON, figure and report. **Returns:** the JSON dict."""
    out = Path(out_dir)
    r = connect_permuted_minima(widths, activation=activation, seed=seed, samples_per_move=samples_per_move,
                                progress=progress)
    d = r.to_dict()
    (out / "deep_connectivity.json").write_text(json.dumps(d, indent=1, ensure_ascii=False))
    fig = _figure(r, out / "deep_connectivity.png")
    checks = html_table(["check", "holds"], [[k, v] for k, v in d["checks"].items()])
    summary = html_table(
        ["teacher widths", "student widths", "activation", "minima expected", "reached", "paths",
         "max relative loss on paths", "max endpoint error"],
        [[d["widths"], d["student_widths"], activation, d["n_expected"], d["n_reached"], d["n_edges"],
          f"{d['max_relative_loss']:.2e}", f"{d['max_endpoint_error']:.1e}"]])
    write_report(out / "report.html", "symland deep-connectivity",
                 [("Deep connectivity: one extra neuron per layer", summary + checks + embed_png(fig))])
    return d


def _figure(r, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    depth = {r.reached[0]: 0}
    for e in r.edges:
        depth[e.target] = depth[e.source] + 1
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    vals = [max(e.max_relative_loss, 1e-40) for e in r.edges]
    axes[0].semilogy(np.arange(len(vals)), vals, "o", ms=3)
    axes[0].axhline(r.tol, color="r", ls=":", label=f"tolerance {r.tol:g}")
    axes[0].set(xlabel="path (edge of the search tree)", ylabel="max L / mean y² along the path",
                title="every path stays at the global minimum")
    axes[0].legend(fontsize=8)
    counts = np.bincount(list(depth.values()))
    axes[1].bar(np.arange(len(counts)), counts)
    axes[1].set(xlabel="number of transpositions from the teacher", ylabel="minima reached",
                title=f"{r.n_reached} of {r.n_expected} permuted minima reached")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
