"""Symmetric tensor decomposition: where many random starts end, and the isotropy of the minima.

Wires `tensor_minima` (descent, refinement, classification, isotropy) to
`tensor.json`, a figure of isotropy types per (d, p) and an HTML report section.
"""

from __future__ import annotations

import json
from pathlib import Path

from .._tensor import tensor_minima
from .figures import isotropy_label
from .report import embed_png, html_table, write_report


def run_tensor(out_dir, ds, ps, *, n_starts: int = 1000, seed: int = 0, steps: int = 1000,
               progress=None, figure: bool = True) -> dict:
    """For every d in `ds` (k = d) and p in `ps`: `tensor_minima`; write JSON, figure and report.

    **Returns:** the summary dict written to `tensor.json`.
    """
    out = Path(out_dir)
    runs = []
    for p in ps:
        for d in ds:
            r = tensor_minima(d, p=p, n_starts=n_starts, seed=seed, steps=steps,
                              progress=progress(f"d = k = {d}, p = {p}") if progress else None)
            runs.append(r.to_dict())
    summary = {"problem": "|| sum_i w_i^{(x)p} - sum_j e_j^{(x)p} ||_F^2, k = d", "runs": runs}
    (out / "tensor.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    sections = []
    rows = []
    for r in runs:
        for e in r["isotropy_of_minima"]:
            rows.append([r["d"], r["p"], e["isotropy"], e["order"], e["signed_order"] or "",
                         "global" if e["global"] else f"{e['loss']:.6g}", e["count"],
                         f"{e['count'] / r['n_starts']:.1%}"])
    table = html_table(["d = k", "p", "isotropy", "order", "signed order", "loss", "minima", "share of starts"],
                       rows)
    kinds = html_table(["d = k", "p", "starts", "kinds", "refinement status", "seconds"],
                       [[r["d"], r["p"], r["n_starts"], r["kinds"], r["status"], f"{r['seconds']:.1f}"]
                        for r in runs])
    drows = [[r["d"], r["p"], e["isotropy"], e["order"], f"{e['loss']:.6g}", e["count"]]
             for r in runs for e in r["isotropy_of_degenerate"][:6]]
    table += "<h3>Degenerate critical points (most frequent types)</h3>" + html_table(
        ["d = k", "p", "isotropy", "order", "loss", "count"], drows)
    frag = f"<p>Group: S_k × S_d (odd p); for even p rows may change sign (gauge).</p>{kinds}{table}"
    if figure:
        fig = _figure(runs, out / "tensor_isotropy.png")
        frag += embed_png(fig)
    sections.append(("Symmetric tensor decomposition: isotropy of minima", frag))
    write_report(out / "report.html", "symland tensor", sections)
    return summary


def _figure(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ps = sorted({r["p"] for r in runs})
    fig, axes = plt.subplots(1, len(ps), figsize=(6 * len(ps), 4), squeeze=False)
    for ax, p in zip(axes[0], ps):
        sel = [r for r in runs if r["p"] == p]
        names = []
        for r in sel:
            for e in r["isotropy_of_minima"]:
                lab = "global " + e["isotropy"] if e["global"] else e["isotropy"]
                if lab not in names:
                    names.append(lab)
        bottom = [0.0] * len(sel)
        for i, lab in enumerate(names):
            h = []
            for r in sel:
                c = sum(e["count"] for e in r["isotropy_of_minima"]
                        if ("global " + e["isotropy"] if e["global"] else e["isotropy"]) == lab)
                h.append(c / r["n_starts"])
            ax.bar([r["d"] for r in sel], h, bottom=bottom, label=isotropy_label(lab), color=plt.cm.tab20(i % 20))
            bottom = [b + v for b, v in zip(bottom, h)]
        ax.set(xlabel="$d = k$", ylabel="share of starts ending at a minimum of this type",
               title=f"$p = {p}$: isotropy of the minima found")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
