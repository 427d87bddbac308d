"""Fig. 3 of Brea et al. 2019 (§5): permutation paths of 784-H-H-10 teacher networks on image data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._data import INPUT_RTOL, check_rtol, input_null_dimension, load_image_data, project_inputs
from .._newton_krylov import FIG3_HVP_BUDGET
from .._path import UPSTREAM_FACTOR, find_permutation_path
from .._teacher import accuracy, most_similar_pair, relabel, train_teacher
from .report import embed_png, html_table, write_report


def plot_mnist(runs, out_png):
    """A: normalised loss vs distance d; B: training accuracy vs d; C: barrier height vs H."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hs = sorted({r["H"] for r in runs})
    colours = {h: plt.cm.viridis(i / max(len(hs) - 1, 1)) for i, h in enumerate(hs)}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    flagged = False
    for r in runs:
        d = np.asarray(r["path"]["distance"][:-1])
        loss = np.asarray(r["path"]["loss"][:-1])
        acc = np.asarray(r["accuracy"][:len(d)])
        ok = np.asarray(r["path"]["converged"][:-1])
        label = f"H={r['H']}" if r["seed"] == 0 else None
        axes[0].semilogx(d, loss, color=colours[r["H"]], lw=1, label=label)
        axes[1].semilogx(d, acc, color=colours[r["H"]], lw=1, label=label)
        if (~ok).any():
            label = None if flagged else "step not converged"
            flagged = True
            axes[0].semilogx(d[~ok], loss[~ok], "rx", ms=4, label=label)
            axes[1].semilogx(d[~ok], acc[~ok], "rx", ms=4)
        axes[2].plot(r["H"], r["barrier"], "o", color=colours[r["H"]])
    means = [np.mean([r["barrier"] for r in runs if r["H"] == h]) for h in hs]
    axes[2].plot(hs, means, "k_-", lw=1, ms=16, label="mean over seeds")  # the marker shows a lone H
    axes[0].set(xlabel="d", ylabel="L (normalised MSE)", title="A")
    axes[1].set(xlabel="d", ylabel="training accuracy", title="B")
    axes[2].set(xlabel="H", ylabel="barrier height max L", title="C", xticks=hs)
    for ax in axes[:2]:
        ax.invert_xaxis()
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def fig3_path(x, labels, h: int, seed: int, *, layer: int = 2, pair=None, steps: int = 100,
              ratio: float = 1e-4, activation: str = "softplus", epochs: int = 20,
              max_newton_steps: int = 100, max_hvps: int | None = FIG3_HVP_BUDGET, method: str = "auto",
              solver: str = "trust-ncg", gauge: str | None = "auto", progress: bool = False) -> dict:
    """One Fig. 3 run: teacher 784-H-H-10, relabelled data, the permutation path of one pair.

    The pair is the most similar one of `layer` (cosine of incoming weights)
    unless `pair` = (l, m) is given; `gauge` is `find_permutation_paths`'
    (how δ is measured; `upstream` makes it invariant to rescaling the layer
    below, docs/mnist.md), with `paper` also naming the paper's δ (None), as
    `symland mnist --gauge` and the sweep axis do. **Returns:** the run's JSON record (`H`,
    `seed`, `teacher`, `pair`, `cosine`, `path`, `accuracy` per step and at
    the permutation point, `barrier`: the highest loss, `input_flat`: the
    H·`input_null_dimension(x)` first-layer directions along which the loss
    is exactly flat because the inputs have no energy there, which count
    among the near-zero eigenvalues but are no plateau of §4.2, `seconds`).
    """
    t0 = time.perf_counter()
    teacher = train_teacher(x, labels, h, activation=activation, seed=seed, epochs=epochs)
    y = relabel(teacher.model, teacher.params, x)
    if pair is None:
        l, m, cos = most_similar_pair(teacher.params, layer)
    else:
        (l, m), cos = pair, None
    path = find_permutation_path(teacher.model, teacher.params, x, y, layer, l, m,
                                 steps=steps, ratio=ratio, loss="nmse",
                                 max_newton_steps=max_newton_steps, max_hvps=max_hvps, method=method,
                                 solver=solver, gauge=None if gauge == "paper" else gauge, progress=progress)
    acc = [accuracy(teacher.model, p, x, labels) for p in path.params]
    acc.append(accuracy(teacher.model, path.permutation_point, x, labels))
    record = path.to_dict()
    losses = record["loss"] + [record["permutation_point"]["loss"]]
    return {"H": h, "seed": seed, "teacher": teacher.to_dict(), "pair": [l, m],
            "cosine": cos, "path": record, "accuracy": acc,
            "barrier": float(max(losses)), "input_flat": h * input_null_dimension(x),
            "seconds": time.perf_counter() - t0}


def fig3_data(data: str = "fashion-mnist", samples: int | None = 10_000, input_rtol: float = INPUT_RTOL):
    """The inputs of every Fig. 3 run: `load_image_data`, then `project_inputs` with `input_rtol`.

    **Returns:** `(x, labels, source, projection)`: the projected inputs, the
    labels, the data set's name, the `InputProjection`.
    """
    check_rtol(input_rtol, "input_rtol")
    x, labels, source = load_image_data(data, n_samples=samples)
    projection = project_inputs(x, input_rtol)
    return projection.x, labels, source, projection


def run_mnist(out, *, data: str = "fashion-mnist", hidden=(10,), seeds: int = 2,
              samples: int | None = 10_000, steps: int = 100, layer: int = 2,
              ratio: float = 1e-4, activation: str = "softplus", epochs: int = 20,
              max_newton_steps: int = 100, max_hvps: int | None = FIG3_HVP_BUDGET, pair=None, method: str = "auto",
              solver: str = "trust-ncg", input_rtol: float = INPUT_RTOL, gauge: str | None = "auto",
              progress: bool = True) -> dict:
    """Reproduce Fig. 3: teachers, relabelled data, one permutation path per (H, seed).

    The inputs are first projected off the directions whose singular value
    is below `input_rtol` of the largest (`project_inputs`; 0 keeps the raw
    data), and teachers and paths both use the projected inputs.
    Writes `mnist.json`, `mnist.png` and `report.html` into `out`.
    **Returns:** the JSON record (plus `report`, the HTML path).
    """
    out = Path(out)
    for h in hidden:
        if isinstance(h, bool) or not isinstance(h, int) or h < 2:
            raise ValueError(f"H: every width must be an integer ≥ 2, got {h!r}")
    if layer not in (1, 2):
        raise ValueError(f"layer: {layer!r} is not a hidden layer; hidden layers are 1…2")
    x, labels, source, projection = fig3_data(data, samples, input_rtol)
    runs = []
    jobs = [(h, s) for h in hidden for s in range(seeds)]
    bar = tqdm(jobs, desc="Fig. 3 paths", unit="path", disable=not progress)
    for h, seed in bar:
        bar.set_postfix_str(f"H={h} seed={seed}")
        runs.append(fig3_path(x, labels, h, seed, layer=layer, pair=pair, steps=steps, ratio=ratio,
                              activation=activation, epochs=epochs, max_newton_steps=max_newton_steps,
                              max_hvps=max_hvps, method=method, solver=solver, gauge=gauge,
                              progress=progress))
    bar.close()
    result = {"data": {"source": source, "n_samples": int(x.shape[0]), "n_inputs": int(x.shape[1]),
                       **projection.to_dict()},
              "setting": {"hidden": list(hidden), "seeds": seeds, "steps": steps, "ratio": ratio,
                          "layer": layer, "activation": activation, "epochs": epochs,
                          "loss": "nmse", "max_newton_steps": max_newton_steps, "max_hvps": max_hvps,
                          "method": method, "solver": solver, "gauge": gauge},
              "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    png = plot_mnist(runs, out / "mnist.png")
    (out / "mnist.json").write_text(json.dumps(result, indent=1))
    write_report(out / "report.html", "symland: permutation paths on image data (Fig. 3)",
                 mnist_report_sections(result, png))
    result["report"] = str(out / "report.html")
    return result


def mnist_report_sections(result, png):
    """The HTML report section(s) of `run_mnist`: setting, figure, one table row per path."""
    d, s = result["data"], result["setting"]
    rows = []
    for r in result["runs"]:
        p, pp = r["path"], r["path"]["permutation_point"]
        bad = [st for st in p["status"] if st != "converged"]
        rows.append([r["H"], r["seed"], f"{r['teacher']['accuracy']:.4f}",
                     f"{r['pair'][0]}&{r['pair'][1]}" + (f" (cos {r['cosine']:.3f})" if r["cosine"] else ""),
                     f"{r['barrier']:.3e}", f"{pp['loss']:.3e}", f"{pp['grad_norm']:.1e}", pp["kind"],
                     # a spectrum that may miss eigenvalues below its largest bounds the index from below
                     pp["index"] if pp.get("index_exact", pp["part"] == "all") else f"≥ {pp['index']}",
                     f"{pp['nullity']} of {pp['n_eigenvalues']} "
                     + ("found (the σ-odd block exactly; the even block's "
                        f"{len(pp['even_block']['eigenvalues'])} smallest by preconditioned LOBPCG, "
                        f"{pp['even_block']['status']}"
                        + (f", and its {pp['even_block']['n_flat']} exactly flat directions"
                           if pp["even_block"]["n_flat"] else "") + ")" if pp.get("even_block")
                        else "computed" if pp["part"] != "partial"
                        else "found (the σ-odd block exactly, Lanczos within its budget)")
                     + (f"; {r['input_flat']} flat along dark inputs" if r.get("input_flat") else ""),
                     f"{min(r['accuracy']):.4f}",
                     f"{max(p['upstream_scale']):.2f}×" if p.get("upstream_scale") else "—",
                     "yes" if p["all_converged"] else f"NO ({len(bad)}: {'/'.join(sorted(set(bad)))})",
                     f"{p['method']}, {p['solver']}" + (f" ({p['factorisations']} fact.)"
                                                        if p["factorisations"] else ""),
                     f"{int(np.sum(p['hessians']))}",
                     f"{r['seconds']:.0f}"])
    means = {}
    for r in result["runs"]:
        means.setdefault(r["H"], []).append(r["barrier"])
    trend = ", ".join(f"H={h}: {np.mean(v):.3e}" for h, v in sorted(means.items()))
    gauges = {r["path"].get("gauge") for r in result["runs"]}
    gauge_text = "; ".join({None: "the paper's δ = ‖ϑ<sub>l</sub> − ϑ<sub>m</sub>‖",
                            "balanced": "‖ϑ<sub>l</sub> − ϑ<sub>m</sub>‖ between balanced neurons",
                            "upstream": "<code>--gauge upstream</code>: ‖d ⊙ (ϑ<sub>l</sub> − ϑ<sub>m</sub>)‖ "
                                        "with d<sub>j</sub> the rms pre-activation of neuron j of layer k − 1 "
                                        "over the data at the teacher, invariant to rescaling that layer; not "
                                        "the paper's δ"}[g] for g in sorted(gauges, key=str))
    partial = sum(not r["path"]["all_converged"] for r in result["runs"])
    caveat = (f" <b>{partial} of {len(result['runs'])} path(s) have steps that did not converge</b> (red "
              "crosses in the figure): their losses are not constrained minima but points above them, so "
              "those barriers are upper bounds and do not test the claim." if partial else "")
    caveat += (" <i>Layer below rescaled</i> is the largest ‖ϑ<sub>j</sub>‖ of a neuron of layer k − 1 "
               "over its value at the teacher (<code>upstream_scale</code>): a neuron that grows while its "
               "outgoing weights shrink divides its entry of ϑ<sub>l</sub> − ϑ<sub>m</sub> at almost no cost "
               "(softplus in its linear regime), so the distance falls without the pair moving; a matrix-free "
               f"step past {UPSTREAM_FACTOR:g}× stops, and a step that ends unconverged past it is named "
               "<code>rescaling</code>" + (". The distance of <code>--gauge upstream</code> does not change "
                                            "under this rescaling." if "upstream" in gauges else
                                            "; <code>--gauge upstream</code> measures a distance that does "
                                            "not change under it.") if s["layer"] > 1 else "")
    flat = max((r.get("input_flat", 0) for r in result["runs"]), default=0)
    flat = (" Near-zero eigenvalues include the first-layer directions along which the loss is exactly flat "
            "because the inputs have no energy there (H per such input direction; the column says how many): "
            "they come from the data, not from the permutation symmetry, so the paper's count "
            "(at least n<sub>k+1</sub> near-zero eigenvalues) concerns the others." if flat else "")
    return [
        ("Setting", f"<p>Data: <b>{d['source']}</b>, {d['n_samples']} training samples, "
                    f"{d['n_inputs']} inputs"
                    + (f", projected off the {d['dropped_directions']} input directions whose singular value "
                       f"is below {d['input_rtol']:g} of the largest ({d['dropped_energy']:.1e} of the energy; "
                       "along them the distance-constrained minima wander far out on a nearly flat loss; "
                       "<code>--input-rtol 0</code> keeps the raw data)" if d.get("dropped_directions") else "")
                    + f". Teachers {d['n_inputs']}-H-H-10 ({s['activation']}) "
                    f"trained with Adam on the negative log-likelihood ({s['epochs']} epochs); "
                    "softmax replaced by the identity, inputs relabelled with the teacher's outputs, "
                    f"student started at the teacher with the normalised MSE. The pair of hidden layer "
                    f"{s['layer']} with the highest cosine similarity is merged: distance ({gauge_text}) decreased in "
                    f"{s['steps']} log-spaced steps to {s['ratio']:g}·d₀, then 0; each step minimised "
                    "to ‖∇L‖∞ ≤ 1e-8·max(1, L) (or its status reported)"
                    + (f", with at most {s['max_hvps']} Hessian-vector products per step (matrix-free "
                       "solver; dense steps ignore it)" if s.get("max_hvps") else "")
                    + ". The paper used MNIST; "
                    "pass <code>--data DIR</code> with MNIST's IDX files for that.</p>"),
        ("Figure 3", embed_png(png)),
        ("Paths", html_table(["H", "seed", "teacher acc.", "pair", "barrier max L",
                              "L at perm. point", "‖∇L‖∞", "kind", "index",
                              "near-zero eigenvalues", "min acc. on path", "layer below rescaled",
                              "every step converged",
                              "solver", "Hessians / HVPs", "seconds"], rows)),
        ("Barrier height vs H", f"<p>Mean barrier per H: {trend}. The paper's claim: barriers "
                                f"shrink as H grows.{caveat}{flat}</p>"),
    ]
