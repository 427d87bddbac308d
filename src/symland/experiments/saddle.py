"""Report pieces for permutation saddles: one row per pair, fixed-δ path beside the MEP.

Thin wiring of `symland.permutation_saddles` results into JSON records and an
HTML section (used by the toy report; no algorithm here).
"""

from __future__ import annotations

import html

from .report import html_table


def saddle_records(results) -> list[dict]:
    """JSON records (`PermutationSaddle.to_dict`) for a list of pair results."""
    return [r.to_dict() for r in results]


def _fixed_delta_cell(r) -> str:
    path = r.fixed_delta
    if path is None:
        return "not computed"
    if path.all_converged:
        pp = r.permutation_point
        return f"complete; θ_l⇔m L = {pp.loss:.6e}, index {pp.index}"
    bad = sorted(set(path.status) - {"converged"})
    return f"{int(path.converged.sum())}/{path.converged.size} steps ({'/'.join(bad)})"


def _saddle_cells(r) -> list[str]:
    s = r.saddle_report
    if s is None:
        return ["none", "", "", ""]
    return [f"{s.loss:.6e}", f"{s.grad_norm:.1e}", f"{s.index} (nullity {s.nullity})", str(s.kind)]


def _relation_cell(r) -> str:
    rel = r.relation
    if rel["relation"] == "undetermined":
        return "undetermined"
    text = f"{rel['relation']} ({rel['route']})"
    if rel.get("figure"):
        text += f", Fig. {rel['figure']}"
    if rel.get("loss_difference") is not None:
        text += f"; L(S) − L(θ_l⇔m) = {rel['loss_difference']:.2e}, distance {rel['distance']:.2e}"
    return text


def saddle_section(results) -> str:
    """An HTML table: per pair, the fixed-δ path, the MEP, its certified saddle and the relation."""
    header = ["pair (1-based)", "fixed-δ path", "MEP init", "MEP status", "images", "barrier",
              "saddle L", "‖∇L‖∞", "index", "kind", "certified", "relation to θ_l⇔m"]
    rows = []
    for r in results:
        init = r.init if r.network in (None, "joined") else f"{r.init} (network: {r.network})"
        rows.append([f"{r.l + 1}&{r.m + 1}", _fixed_delta_cell(r), init, r.status,
                     len(r.mep.images), f"{r.barrier:.6e}", *_saddle_cells(r),
                     "yes" if r.certified else "no", _relation_cell(r)])
    n_cert = sum(r.certified for r in results)
    intro = (f"<p>Minimum-energy paths θ* → σ(θ*) (climbing-image NEB, see docs/saddles.md): "
             f"{n_cert} of {len(results)} pairs have a certified saddle (‖∇L‖∞ ≤ 1e−10, dense-Hessian "
             f"index). Relation: <i>top</i> — the saddle is θ_l⇔m (Suppl. Fig. 4 A); <i>below</i> — the "
             f"path passes through θ_l⇔m under an intermediate saddle (4 B/C); <i>off</i> — it does not "
             f"pass through it. The route says whose θ_l⇔m: the fixed-δ path's or the MEP's "
             f"crossing of the symmetric subspace.</p>")
    return intro + html_table(header, rows)


def saddle_summary(results) -> str:
    """One line for the command line."""
    n_cert = sum(r.certified for r in results)
    rel = {}
    for r in results:
        rel[r.relation["relation"]] = rel.get(r.relation["relation"], 0) + 1
    return html.unescape(f"{n_cert}/{len(results)} pairs with a certified saddle; relations: "
                         + ", ".join(f"{k} {v}" for k, v in sorted(rel.items())))
