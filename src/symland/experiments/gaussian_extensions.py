"""`symland spurious --d / --fractional / --perturb` (issue 12, parts 1–3): wires
`symland.gaussian` functions together, writes JSON, figures and an HTML report
section per part. No algorithm of its own.
"""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
from tqdm import tqdm

from symland.cli._options import parse_int
from symland.experiments.figures import family_label
from symland.experiments.report import embed_png, html_table
from symland.gaussian import (
    FRACTIONAL_FAMILIES,
    SPURIOUS_FAMILIES,
    branch_point_check,
    check_input_dimension,
    follow_fractional_family,
    follow_perturbed_minimum,
    global_minimum_spectrum,
    orthogonal_hessian_block,
    perturbation_direction,
    power_law_exponent,
    spectral_distance,
    spurious_family,
    wide_spectrum,
)

GLOBAL = "global"


# --- argument types -------------------------------------------------------------------


def parse_d_spec(text: str):
    """`--d`: 'ak:bk' (d from a·k to b·k for every k, e.g. 'k:4k'), 'a:b' or 'a' (absolute d).

    **Returns:** ('relative', a, b) or ('absolute', a, b); ValueError naming --d otherwise.
    """
    t = str(text).replace(" ", "")
    m = re.fullmatch(r"(\d*)k(?::(\d*)k)?", t)
    if m:
        a = int(m.group(1) or 1)
        b = int(m.group(2) or 1) if m.group(2) is not None else a
        if a < 1:
            raise ValueError(f"--d: multiples of k must be >= 1, got {text!r} (d < k is not allowed)")
        if b < a:
            raise ValueError(f"--d: range {text!r} is empty (reversed)")
        return ("relative", a, b)
    parts = t.split(":")
    if len(parts) not in (1, 2):
        raise ValueError(f"--d: expected 'k:4k', 'a:b' or an integer, got {text!r}")
    a = parse_int(parts[0], "--d", lo=1)
    b = parse_int(parts[-1], "--d", lo=1)
    if b < a:
        raise ValueError(f"--d: range {text!r} is empty (reversed); write {b}:{a}")
    return ("absolute", a, b)


def d_values(spec, k: int, step: int | None = None) -> list[int]:
    """The d of `spec` for one k; ValueError when some d < k."""
    kind, a, b = spec
    lo, hi = (a * k, b * k) if kind == "relative" else (a, b)
    for d in (lo, hi):
        try:
            check_input_dimension(d, k)
        except ValueError as err:
            raise ValueError(f"--d: {str(err).removeprefix('d: ')}") from None
    step = step or max(1, (hi - lo) // 12)
    ds = list(range(lo, hi + 1, step))
    return ds if ds[-1] == hi else ds + [hi]


def parse_real_range(text: str, name: str = "--fractional") -> tuple[float, float]:
    """'LO:HI' with real LO < HI; ValueError naming the option otherwise (an empty range is refused)."""
    parts = str(text).split(":")
    if len(parts) != 2:
        raise ValueError(f"{name}: expected LO:HI (real numbers), got {text!r}")
    try:
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"{name}: expected LO:HI (real numbers), got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name}: bounds must be finite, got {text!r}")
    if not hi > lo:
        raise ValueError(f"{name}: the range {text!r} is empty")
    return lo, hi


def check_family_names(names, allowed, option="--families"):
    for n in names:
        if n not in allowed:
            raise ValueError(f"{option}: unknown family {n!r}; choose from {', '.join(allowed)}")
    if not names:
        raise ValueError(f"{option}: no family given")
    return list(names)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _expand(mult):
    return np.concatenate([np.full(int(m), v) for v, m in mult])


# --- 1. d >= k --------------------------------------------------------------------------------


def run_wide(ks, spec, families, out, *, family_points=None) -> tuple[dict, str]:
    """Tables for every family (and the global minimum [I_k | 0]) for k in `ks`, d in `spec`."""
    ds_by_k = {k: d_values(spec, k) for k in ks}  # validates d >= k before any work
    pts = family_points or {}
    for name in families:
        if name not in pts:
            bar = tqdm(total=len(ks), desc=f"family {name}", unit="k", leave=False)
            pts[name] = spurious_family(name, ks, progress=lambda it: _tick(it, bar))
            bar.close()
    rows, table = {}, []
    total = sum(len(v) for v in ds_by_k.values()) * (len(families) + 1)
    bar = tqdm(total=total, desc="d >= k spectra", unit="pt", leave=False)
    for k in ks:
        sq_glob = _expand(global_minimum_spectrum(k)) if k >= 3 else None
        cands = [(GLOBAL, np.eye(k), sq_glob)] + [(n, pts[n][k].W, pts[n][k].eigenvalues) for n in families
                                                 if k in pts[n]]
        for name, Wk, sq in cands:
            orth = np.linalg.eigvalsh(orthogonal_hessian_block(Wk))
            d_max = max(ds_by_k[k])
            top = wide_spectrum(Wk, d_max, square=sq, orthogonal=orth)  # gradient over all d_max columns
            for d in ds_by_k[k]:
                s = wide_spectrum(Wk, d, square=sq, orthogonal=orth, loss_grad=(top.loss, top.grad_norm))
                r = s.to_dict()
                e = s.eigenvalues
                r["n_large"] = int(np.sum(e > 1.0))
                r["n_small"] = int(np.sum(e <= 1.0))
                rows.setdefault(name, {}).setdefault(str(k), {})[str(d)] = r
                bar.update(1)
    bar.close()
    # claims: large eigenvalues, spectral distance global vs spurious
    claims = {"large_threshold": 1.0, "orthogonal_block_top": {}, "distance": {}}
    for name in [GLOBAL] + families:
        for k in ks:
            if str(k) in rows.get(name, {}):
                ds = sorted(int(d) for d in rows[name][str(k)])
                if len(ds) >= 2:
                    nl = [rows[name][str(k)][str(d)]["n_large"] for d in ds]
                    slope = np.polyfit(ds, nl, 1)[0]
                    claims.setdefault("n_large_slope_in_d", {}).setdefault(name, {})[str(k)] = float(slope)
    for k in ks:
        claims["orthogonal_block_top"][str(k)] = {
            "global": float(np.linalg.eigvalsh(orthogonal_hessian_block(np.eye(k)))[-1]), "(k+1)/4": (k + 1) / 4}
    for name in families:
        dist = {}
        for k in ks:
            if k not in pts[name]:
                continue
            sq_g = _expand(global_minimum_spectrum(k))
            og = np.linalg.eigvalsh(orthogonal_hessian_block(np.eye(k)))
            os_ = np.linalg.eigvalsh(orthogonal_hessian_block(pts[name][k].W))
            for d in ds_by_k[k]:
                eg = np.concatenate([sq_g, np.repeat(og, d - k)])
                es = np.concatenate([pts[name][k].eigenvalues, np.repeat(os_, d - k)])
                dist[(k, d)] = spectral_distance(eg, es)
        diag = sorted((k, v) for (k, d), v in dist.items() if d == k)
        kmax = max(k for k, _ in dist) if dist else None
        fixed = sorted((d, v) for (k, d), v in dist.items() if k == kmax)
        rec = {"diagonal_d_equals_k": [[k, v["w1"], v["sup"]] for k, v in diag],
               f"fixed_k{kmax}": [[d, v["w1"], v["sup"]] for d, v in fixed]}
        spec_ratio = {}
        for r in (1, 2, 3, 4):
            pairs = sorted((k, v) for (k, d), v in dist.items() if d == r * k)
            if len(pairs) >= 3:
                spec_ratio[f"d={r}k"] = {m: power_law_exponent([r * k for k, _ in pairs], [v[m] for _, v in pairs])
                                          for m in ("w1", "sup")}
        rec["exponents"] = spec_ratio
        claims["distance"][name] = rec
    result = {"ks": list(ks), "d": {str(k): v for k, v in ds_by_k.items()}, "points": rows, "claims": claims}
    with open(os.path.join(out, "wide.json"), "w") as fh:
        json.dump(result, fh, indent=1, ensure_ascii=False)
    figs = _wide_figures(pts, families, ks, ds_by_k, claims, out)
    html = _wide_html(result, families, figs)
    return result, html


def _wide_figures(pts, families, ks, ds_by_k, claims, out):
    plt = _plt()
    k = max(ks)
    spur = families[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    bins = np.logspace(-3, 1.5, 60)
    ds = ds_by_k[k]
    chosen = sorted({ds[0], ds[len(ds) // 2], ds[-1]})
    for ax, (name, Wk, sq) in zip(axes, [(GLOBAL, np.eye(k), _expand(global_minimum_spectrum(k))),
                                         (spur, pts[spur][k].W, pts[spur][k].eigenvalues)]):
        orth = np.linalg.eigvalsh(orthogonal_hessian_block(Wk))
        for i, d in enumerate(chosen):
            e = np.concatenate([sq, np.repeat(orth, d - k)])
            ax.hist(np.clip(e, 1e-3, None), bins=bins, weights=np.full(e.size, 1 / e.size), histtype="step",
                    lw=1.5, color=f"C{i}", label=f"d = {d} ({e.size} eigenvalues)")
        ax.set_xscale("log")
        ax.set_xlabel("Hessian eigenvalue")
        ax.set_title(f"{family_label(name)}, k = {k}")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("fraction of eigenvalues")
    fig.tight_layout()
    f1 = os.path.join(out, "wide_density.png")
    fig.savefig(f1, dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, name in enumerate(families):
        rec = claims["distance"][name]
        diag = np.array(rec["diagonal_d_equals_k"])
        if diag.size:
            lab = family_label(name)
            axes[0].loglog(diag[:, 0], diag[:, 1], "o-", color=f"C{i}", ms=3, label=f"{lab} $W_1$")
            axes[0].loglog(diag[:, 0], diag[:, 2], "s--", color=f"C{i}", ms=3, label=f"{lab} sup")
        fixed = np.array(next(v for key, v in rec.items() if key.startswith("fixed_k")))
        if fixed.size:
            lab = family_label(name)
            axes[1].semilogy(fixed[:, 0], fixed[:, 1], "o-", color=f"C{i}", ms=3, label=f"{lab} $W_1$")
            axes[1].semilogy(fixed[:, 0], fixed[:, 2], "s--", color=f"C{i}", ms=3, label=f"{lab} sup")
    if diag.size:
        x = diag[:, 0]
        axes[0].loglog(x, 0.2 * x ** -0.5, ":", color="gray", label=r"$\propto d^{-1/2}$")
    axes[0].set_xlabel("d = k")
    axes[1].set_xlabel(f"d (k = {max(ks)})")
    axes[0].set_ylabel("distance to the global-minimum spectrum")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.tight_layout()
    f2 = os.path.join(out, "wide_distance.png")
    fig.savefig(f2, dpi=120)
    plt.close(fig)
    return [f1, f2]


def _wide_html(result, families, figs):
    rows = []
    for name in [GLOBAL] + families:
        for k, byd in result["points"].get(name, {}).items():
            for d, r in byd.items():
                if int(d) in (int(k), 2 * int(k), 4 * int(k)) or d == max(byd, key=int):
                    rows.append([name, k, d, f"{r['loss']:.8e}", f"{r['grad_norm']:.1e}", r["kind"],
                                 f"{r['min_eigenvalue']:.4e}", f"{r['max_eigenvalue']:.4f}",
                                 len(r["multiplicities"]), r["n_large"]])
    table = html_table(["family", "k", "d", "L", "‖∇L‖∞ (dk)", "kind", "λ_min", "λ_max", "distinct λ",
                        "#λ > 1"], rows)
    expo = []
    for name in families:
        for key, v in result["claims"]["distance"][name]["exponents"].items():
            expo.append([name, key, f"{v['w1'][0]:.3f} ± {v['w1'][1]:.3f}", f"{v['sup'][0]:.3f} ± {v['sup'][1]:.3f}"])
    return (table + "<h3>distance global vs spurious spectra: fitted exponent p in dist ∝ d^p</h3>"
            + html_table(["family", "along", "W1", "sup"], expo) + "".join(embed_png(f) for f in figs))


def _tick(it, bar):
    for x in it:
        yield x
        bar.update(1)


# --- 2. fractional k -------------------------------------------------------------------------


def run_fractional(families, k_range, out, *, h: float = 0.1) -> tuple[dict, str]:
    """Follow each family in real k; k*, crossing component, folds, branch-point checks; diagram."""
    fams = [f for f in families if f in FRACTIONAL_FAMILIES]
    res = {}
    bar = tqdm(desc="real-k continuation", unit="step", leave=False)
    for name in fams:
        br = follow_fractional_family(name, k_range, h=h, progress=lambda: bar.update(1))
        checks = [branch_point_check(name, br, c) for c in tqdm(br.crossings, desc=f"branch points {name}",
                                                                 leave=False)]
        res[name] = {**br.to_dict(), "branch_points": checks, "_branch": br}
    bar.close()
    fig_path = _fractional_figure(res, out)
    out_json = {n: {k: v for k, v in r.items() if k != "_branch"} for n, r in res.items()}
    with open(os.path.join(out, "fractional.json"), "w") as fh:
        json.dump({"k_range": list(k_range), "families": out_json}, fh, indent=1, ensure_ascii=False)
    rows = []
    for n, r in out_json.items():
        for c in r["crossings"] + r["folds"]:
            bp = next((b for b in r["branch_points"] if abs(b["k"] - c["k"]) < 1e-12), None)
            rows.append([n, f"{c['k']:.6f}", c["component"], c.get("direction", "fold"),
                         "yes" if r["k_star"] is not None and abs(c["k"] - r["k_star"]) < 1e-12 else "",
                         "" if bp is None else (f"{bp['branch_point']} (dist ∝ |δ|^{bp['scaling_exponent']:.2f})"
                                                if bp.get("scaling_exponent") is not None else str(bp["branch_point"]))])
    html = (html_table(["family", "k", "component", "type", "k*", "branch point (lower-symmetry critical points)"],
                       rows) + embed_png(fig_path))
    return out_json, html


def _fractional_figure(res, out):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (n, r) in enumerate(res.items()):
        br = r["_branch"]
        axes[0].plot(br.k, br.k * br.loss, "-", color=f"C{i}", label=family_label(n))
        axes[1].plot(br.k, br.min_eigenvalue, "-", color=f"C{i}", label=family_label(n))
        for c in r["crossings"]:
            j = int(np.argmin(np.abs(br.k - c["k"])))
            axes[0].plot(c["k"], c["k"] * c["loss"], "o", color=f"C{i}", mfc="none", ms=8)
            axes[1].plot(c["k"], 0.0, "o", color=f"C{i}", mfc="none", ms=8)
            axes[1].annotate(c["component"], (c["k"], 0.0), textcoords="offset points", xytext=(3, 6 + 8 * i),
                             fontsize=7, color=f"C{i}")
        for c in r["folds"]:
            axes[0].plot(c["k"], c["k"] * c["loss"], "x", color=f"C{i}", ms=9)
        if r["k_star"] is not None:
            axes[1].axvline(r["k_star"], color=f"C{i}", ls=":", lw=1)
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set_ylim(-0.1, 0.1)
    axes[0].set_ylabel("k · L")
    axes[1].set_ylabel("smallest Hessian eigenvalue")
    for ax in axes:
        ax.set_xlabel("k (real)")
        ax.legend(fontsize=7)
    axes[0].set_title("loss along each family (o: crossings, x: folds)")
    axes[1].set_title("smallest isotypic eigenvalue (dotted: k*)")
    fig.tight_layout()
    p = os.path.join(out, "fractional.png")
    fig.savefig(p, dpi=120)
    plt.close(fig)
    return p


# --- 3. perturbed target ---------------------------------------------------------------------


def run_perturb(ks, families, eps_max, out, *, n_steps: int = 10, seed: int = 0,
                family_points=None) -> tuple[dict, str]:
    """Follow each family's minimum (and the global one) along V = I + εE, E fixed random, ‖E‖_F = 1."""
    pts = family_points or {}
    for name in families:
        if name not in pts:
            pts[name] = spurious_family(name, ks)
    res = {}
    total = len(ks) * (len(families) + 1)
    bar = tqdm(total=total, desc="perturbation", unit="branch", leave=False)
    for k in ks:
        E = perturbation_direction(k, seed)
        for name in [GLOBAL] + families:
            W0 = np.eye(k) if name == GLOBAL else (pts[name][k].W if k in pts[name] else None)
            if W0 is None:
                continue
            if name != GLOBAL and pts[name][k].kind != "minimum":
                res.setdefault(name, {})[str(k)] = {"skipped": f"not a minimum at ε = 0 ({pts[name][k].kind})"}
                bar.update(1)
                continue
            br = follow_perturbed_minimum(W0, E, eps_max, n_steps=n_steps)
            res.setdefault(name, {})[str(k)] = br.to_dict()
            bar.update(1)
    bar.close()
    with open(os.path.join(out, "perturb.json"), "w") as fh:
        json.dump({"ks": list(ks), "eps_max": eps_max, "seed": seed, "E": "standard normal, ‖E‖_F = 1",
                   "branches": res}, fh, indent=1, ensure_ascii=False)
    fig = _perturb_figure(res, out)
    rows = []
    for name, byk in res.items():
        for k, r in byk.items():
            if "skipped" in r:
                rows.append([name, k, r["skipped"], "", "", "", ""])
                continue
            rows.append([name, k, r["end"], f"{r['eps_end']:.4f}", f"{r['min_eigenvalue'][0]:.4e}",
                         f"{r['min_eigenvalue'][-1]:.4e}", f"{r['w1'][-1]:.2e} / {r['sup'][-1]:.2e}"])
    html = html_table(["family", "k", "end", "ε_end", "λ_min(0)", "λ_min(ε_end)", "W1 / sup to ε=0 spectrum"],
                      rows) + embed_png(fig)
    return res, html


def _perturb_figure(res, out):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    i = 0
    for name, byk in res.items():
        for k, r in byk.items():
            if "skipped" in r:
                continue
            e = np.array(r["eps"])
            lab = f"{family_label(name)}, $k = {k}$"
            axes[0].plot(e, r["min_eigenvalue"], "o-", ms=2, color=f"C{i % 10}", label=lab)
            axes[1].plot(e, r["w1"], "-", color=f"C{i % 10}", label=lab)
            i += 1
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_ylabel(r"$\lambda_{\min}$")
    axes[1].set_ylabel(r"$W_1$ distance to the $\varepsilon = 0$ spectrum")
    for ax in axes:
        ax.set_xlabel(r"$\varepsilon$ ($V = I + \varepsilon E$, $\|E\|_F = 1$)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    p = os.path.join(out, "perturb.png")
    fig.savefig(p, dpi=120)
    plt.close(fig)
    return p


# --- one entry point for the command line ------------------------------------------------------


def run_extensions(ks, families, out, *, d_spec=None, fractional=None, perturb=None, perturb_steps: int = 10,
                   seed: int = 0) -> dict:
    """Run the requested parts (d ≥ k, fractional k, perturbed target) into `out` atomically.

    All input is checked before any computation: families, d ≥ k for every k,
    the real k range, the perturbation size. Writes wide.json / fractional.json
    / perturb.json, their figures, and report.html with one section per part.
    """
    from symland.cli._options import atomic_output
    from symland.experiments.report import write_report
    from symland.gaussian import check_perturbation_size

    families = check_family_names(families, SPURIOUS_FAMILIES)
    if d_spec is not None:
        for k in ks:
            d_values(d_spec, k)
    if fractional is not None:
        check_family_names([f for f in families], FRACTIONAL_FAMILIES)
        if not fractional[1] > fractional[0]:
            raise ValueError(f"--fractional: the range {fractional!r} is empty")
    if perturb is not None:
        check_perturbation_size(perturb, "--perturb")
    summary, sections = {}, []
    with atomic_output(out) as tmp:
        pts = {}
        if d_spec is not None:
            res, html = run_wide(ks, d_spec, families, str(tmp), family_points=pts)
            summary["wide"] = res["claims"]
            sections.append(("Inputs wider than the network, d ≥ k", html))
        if fractional is not None:
            res, html = run_fractional(families, fractional, str(tmp))
            summary["fractional"] = {n: {"k_star": r["k_star"], "component": r["k_star_component"]}
                                     for n, r in res.items()}
            sections.append(("Fractional k: saddle → minimum", html))
        if perturb is not None:
            res, html = run_perturb(ks, families, perturb, str(tmp), n_steps=perturb_steps, seed=seed,
                                    family_points=pts)
            summary["perturb"] = {n: {k: (r.get("end"), r.get("eps_end")) for k, r in byk.items()}
                                  for n, byk in res.items()}
            sections.append(("Symmetry-breaking perturbation V = I + εE", html))
        write_report(os.path.join(tmp, "report.html"), "symland spurious: issue 12, parts 1–3", sections)
    return summary
