"""The principle of least symmetry breaking beyond Gaussian ReLU: frequencies and isotropy of minima.

Wires `least_symmetry_breaking` for each setting to `symmetry_breaking.json`,
a figure (minima by isotropy order per setting) and an HTML report section.
"""

from __future__ import annotations

import json
from pathlib import Path

from .._symmetry_breaking import least_symmetry_breaking
from .report import embed_png, html_table, write_report


def run_symmetry_breaking(out_dir, settings, k: int, *, n_runs: int = 200, steps: int = 2000,
                          n_samples: int = 20_000, seed: int = 0, progress=None) -> dict:
    """Run every setting; write JSON, figure and report. **Returns:** the JSON dict."""
    out = Path(out_dir)
    results = []
    for name in settings:
        r = least_symmetry_breaking(name, k, n_runs=n_runs, steps=steps, n_samples=n_samples, seed=seed,
                                    progress=progress(name) if progress else None)
        results.append(r.to_dict())
    summary = {"k": k, "settings": results}
    (out / "symmetry_breaking.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    rows = []
    for r in results:
        for e in r["isotropy_of_minima"]:
            rows.append([r["setting"], "global" if e["global"] else "spurious", e["isotropy"], e["order"],
                         e["count"], ", ".join(f"{v:.6g}" for v in e["losses"][:4])])
    verdict = html_table(
        ["setting", "runs", "kinds", "spurious minima", "most frequent spurious isotropy", "its order",
         "largest spurious order", "holds"],
        [[r["setting"], r["n_runs"], r["kinds"], r["least_symmetry_breaking"]["spurious_minima"],
          r["least_symmetry_breaking"].get("most_frequent", ""),
          r["least_symmetry_breaking"].get("most_frequent_order", ""),
          r["least_symmetry_breaking"].get("largest_order", ""), r["least_symmetry_breaking"]["holds"]]
         for r in results])
    fig = _figure(results, out / "symmetry_breaking.png")
    write_report(out / "report.html", "symland symmetry-breaking",
                 [("Least symmetry breaking: isotropy of the minima found",
                   verdict + html_table(["setting", "minimum", "isotropy", "order", "count", "losses"], rows)
                   + embed_png(fig))])
    return summary


def _figure(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for i, r in enumerate(results):
        for e in r["isotropy_of_minima"]:
            ax.scatter(i, e["order"], s=20 + 300 * e["count"] / r["n_runs"],
                       color="C2" if e["global"] else "C3", alpha=0.7)
            ax.annotate(f"{e['count']}", (i, e["order"]), textcoords="offset points", xytext=(8, -3), fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(range(len(results)), [r["setting"] for r in results], rotation=20, fontsize=8)
    ax.set(ylabel=r"isotropy order $|\Gamma_W|$",
           title="minima found (green: global, red: spurious; area ∝ count, label = count)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
