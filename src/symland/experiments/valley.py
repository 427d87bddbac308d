"""An equal-loss valley on the Fig. 1 toy (Brea et al. 2019, §4.2 (ii)): figure and summary.

The toy teacher has 5 hidden neurons; a 4-neuron student is trained to a
minimum (start: the teacher without its weakest neuron), refined to machine
precision, and embedded as the permutation point θ_{l⇔4} (neuron l
duplicated into slot 4 with half its outgoing weight each). From there
`equal_loss_permutation` realises a permutation of all 5 neurons at
constant loss.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def run_valley(out_dir, *, activation: str = "tanh", seed: int = 0, perm=None, l: int = 1,
               samples_per_move: int = 100, progress: bool = False) -> dict:
    """Build the valley, write `DIR/valley.png` and `DIR/valley.json`; return the summary.

    **Returns:** a dict with `figure`, `json`, the permutation, the number of
    samples, the loss at the permutation point and the maximal relative loss
    change along the path (round-off, ~1e−15), and the moves. `figure` and
    `json` are file names inside `out_dir`. Neurons are 0-based here and
    1-based in the figure.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import jax.numpy as jnp

    from .._data import toy_problem
    from .._embedding import embed_in_wider
    from .._loss import loss_function
    from .._network import MLP
    from .._solver import minimise, refine_critical_point
    from .._valley import equal_loss_permutation

    from tqdm.auto import tqdm

    from .._valley import check_permutation

    if perm is not None:
        perm = check_permutation(perm, 5)
    if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not 0 <= l < 4:
        raise ValueError(f"l: the duplicated neuron must be one of 0…3, got {l!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=3, desc="valley", unit="stage", disable=not progress, delay=2.0)
    bar.set_postfix_str("4-neuron minimum")
    toy = toy_problem(activation, seed=seed)
    (W1, b1), (W2, b2) = toy.teacher
    keep = np.sort(np.argsort(np.abs(np.asarray(W2[0])))[1:])
    small = MLP((2, 4, 1), activation)
    L4 = loss_function(small, toy.x, toy.y)
    r = minimise(L4, [(W1[keep], b1[keep]), (W2[:, keep], b2)], gtol=1e-11, max_steps=400)
    r = refine_critical_point(L4, r.value)
    point = embed_in_wider(r.value, 1, [0, 1, 2, 3, l])
    L5 = loss_function(toy.model, toy.x, toy.y)
    if perm is None:
        perm = np.random.default_rng(seed).permutation(5)
    bar.update()
    bar.set_postfix_str("equal-loss path")
    path = equal_loss_permutation(point, 1, perm, l=l, m=4, loss_fn=L5,
                                  samples_per_move=samples_per_move)
    V = path.incoming_vectors()                                   # (S, 5, 3)
    import jax
    A = np.asarray(jax.vmap(path.unravel)(jnp.asarray(path.points))[1][0][:, 0, :])  # (S, 5)

    bar.update()
    bar.set_postfix_str("figure")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    s = np.arange(path.n_samples)
    L0 = float(path.loss[0])
    axes[0].plot(s, (path.loss - L0) / L0, lw=0.8)
    for _, a, _b in path.moves:
        axes[0].axvline(a, color="0.85", lw=0.6, zorder=0)
    axes[0].set(xlabel="sample along the path", ylabel=r"$(L - L(\theta_{l\Leftrightarrow m}))\,/\,L(\theta_{l\Leftrightarrow m})$",
                title=f"loss along the valley: L = {L0:.3e}, max rel. change {path.max_rel_loss_change:.1e}")
    colors = plt.cm.tab10(np.arange(5))
    for i in range(5):
        axes[1].plot(V[:, i, 0], V[:, i, 1], color=colors[i], lw=1.2, label=f"neuron {i + 1}")
        axes[1].plot(*V[0, i, :2], "o", color=colors[i], ms=7, mfc="none")
        axes[1].plot(*V[-1, i, :2], "x", color=colors[i], ms=7)
    axes[1].set(xlabel=r"$w_{i1}$", ylabel=r"$w_{i2}$", title="incoming weights (o start, x end)")
    axes[1].legend(fontsize=8)
    for i in range(5):
        axes[2].plot(s, A[:, i], color=colors[i], lw=1.2)
    axes[2].set(xlabel="sample along the path", ylabel=r"outgoing weight $W^{(2)}_{1i}$",
                title=f"outgoing weights; permutation {[int(p) + 1 for p in path.perm]} (1-based)")
    fig.tight_layout()
    fig_path = out / "valley.png"
    fig.savefig(fig_path, dpi=110)
    plt.close(fig)

    bar.update()
    bar.close()
    summary = {"figure": fig_path.name, "json": "valley.json", "activation": activation,
               "seed": seed, "pair": [l, 4], "narrow_refine_status": r.status_name,
               "narrow_grad_norm": float(r.grad_norm), **path.to_dict()}
    (out / "valley.json").write_text(json.dumps(summary, indent=2))
    return summary
