"""Figure helpers for the experiments: axis limits robust to outliers, and labels that do not overlap.

Pure plotting: nothing here computes anything about a network.
"""

from __future__ import annotations

import re

import numpy as np

# Legend labels of the spurious families of `symland.gaussian.SPURIOUS_FAMILIES` (mathtext).
FAMILY_LABELS = {
    "delta_sk1": r"$\Delta S_{k-1}$",
    "delta_sk": r"$\Delta S_k$",
    "delta_s2_sk2": r"$\Delta(S_2 \times S_{k-2})$",
    "delta_s2_sk2_b": r"$\Delta(S_2 \times S_{k-2})$, second",
}


def family_label(name: str) -> str:
    """The mathtext label of a spurious family (`FAMILY_LABELS`); other names unchanged."""
    return FAMILY_LABELS.get(name, name)


def isotropy_label(name: str) -> str:
    r"""An isotropy type as `IsotropySubgroup.name` writes it (``ΔS_9``, ``Δ(S_2×S_3)×Z_2^1``,
    optionally after ``global ``) in mathtext; names without subscripts are unchanged.

    Example:
        >>> isotropy_label("global Δ(S_2×S_3)×Z_2^1")
        'global $\\Delta(S_{2}\\times S_{3})\\times Z_{2}^{1}$'
        >>> isotropy_label("order 4 (orbits 2,2;1)")
        'order 4 (orbits 2,2;1)'
    """
    prefix, core = ("global ", name[7:]) if name.startswith("global ") else ("", name)
    if not re.search(r"[_^Δ×]", core):
        return name
    t = core.replace("Δ", "\\Delta ").replace("×", "\\times ")
    t = re.sub(r"([_^])(\w+)", r"\1{\2}", t).replace("\\Delta (", "\\Delta(").replace(" }", "}")
    return f"{prefix}${t.strip()}$"


def robust_limits(points, *, q: float = 0.25, reach: float = 2.5, pad: float = 0.08):
    """(xlim, ylim) covering the bulk of `points` (N × 2) but not far outliers.

    Per axis, the limits are the data's extremes, cut at `reach` times the
    inter-quantile width beyond the `q` and `1 − q` quantiles, then padded by
    `pad` of the span. A point outside them is an outlier (see `draw_clipped`).

    Example:
        >>> pts = np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.2], [0.2, 0.8], [-45.0, -70.0]])
        >>> xlim, ylim = robust_limits(pts)
        >>> bool(xlim[0] > -5 and ylim[0] > -5)
        True
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if pts.size == 0:
        return (-1.0, 1.0), (-1.0, 1.0)
    lims = []
    for a in pts.T:
        lo_q, hi_q = np.quantile(a, [q, 1 - q])
        width = max(hi_q - lo_q, 1e-3 * max(1.0, np.abs(a).max()))
        lo = max(a.min(), lo_q - reach * width)
        hi = min(a.max(), hi_q + reach * width)
        span = max(hi - lo, 1e-9)
        lims.append((lo - pad * span, hi + pad * span))
    return tuple(lims)


def draw_clipped(ax, points, *, colour, marker, size: float = 22):
    """Scatter `points` on `ax` within its current limits; outliers as edge arrows with coordinates.

    **Returns:** the drawn position of every point (an outlier's is on the
    edge), `None` for a non-finite point, in the order given.
    """
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    inset_x, inset_y = 0.03 * (x1 - x0), 0.03 * (y1 - y0)
    shown, inside = [], []
    for x, y in np.asarray(points, dtype=float):
        if np.isnan(x) or np.isnan(y):
            shown.append(None)
            continue
        if x0 <= x <= x1 and y0 <= y <= y1:
            shown.append((x, y))
            inside.append((x, y))
            continue
        cx = min(max(x, x0 + inset_x), x1 - inset_x)
        cy = min(max(y, y0 + inset_y), y1 - inset_y)
        ex = max(x0 - x, x - x1, 0) / (x1 - x0)
        ey = max(y0 - y, y - y1, 0) / (y1 - y0)
        head = (">" if x > x1 else "<") if ex >= ey else ("^" if y > y1 else "v")
        ax.scatter([cx], [cy], marker=head, s=size * 1.4, color=colour, edgecolors="0.2",
                   linewidths=0.4, zorder=3, clip_on=False)
        ax.annotate(f"({x:.3g}, {y:.3g})", (cx, cy), xytext=(0, -9 if cy > (y0 + y1) / 2 else 9),
                    textcoords="offset points", ha="center", va="center", fontsize=6, color=colour)
        shown.append((cx, cy))
    if inside:
        ax.scatter(*zip(*inside), marker=marker, s=size, color=colour, zorder=3)
    return shown


def spread_labels(anchors, sizes, *, start=(5.0, 5.0), min_gap: float = 1.0, keep_off: float = 4.0,
                  max_shift: float = 28.0, iterations: int = 200) -> np.ndarray:
    """Label centres (in points) near `anchors` such that label boxes do not overlap.

    A small force-directed placement: overlapping boxes push each other
    apart, labels are pushed off every anchor, and a spring pulls each label
    back towards `anchor + start`, within `max_shift`.

    **Arguments:** `anchors` (N × 2, points), `sizes` (N × 2, box width and
    height in points). **Returns:** N × 2 label centres.

    Example:
        >>> a = np.zeros((3, 2)); s = np.full((3, 2), 6.0)
        >>> c = spread_labels(a, s)
        >>> d = np.abs(c[:, None] - c[None]); off = ~np.eye(3, dtype=bool)
        >>> bool(np.all(np.any(d[off] >= 6.0, axis=-1)))
        True
    """
    A = np.asarray(anchors, dtype=float).reshape(-1, 2)
    S = np.asarray(sizes, dtype=float).reshape(-1, 2)
    n = len(A)
    P = A + np.asarray(start)
    rng = np.random.default_rng(0)
    for _ in range(iterations):
        moved = False
        for i in range(n):
            for j in range(i + 1, n):
                d = P[i] - P[j]
                need = (S[i] + S[j]) / 2 + min_gap
                over = need - np.abs(d)
                if np.all(over > 0):
                    k = int(np.argmin(over / need))  # separate along the cheaper axis
                    sign = np.sign(d[k]) if d[k] != 0 else (1.0 if rng.random() < 0.5 else -1.0)
                    P[i, k] += sign * over[k] / 2 + 0.05
                    P[j, k] -= sign * over[k] / 2 + 0.05
                    moved = True
            for k in range(n):
                d = P[i] - A[k]
                r = np.hypot(*d)
                reach = keep_off + S[i].max() / 2
                if r < reach:
                    u = d / r if r > 0 else np.array([1.0, 1.0]) / np.sqrt(2)
                    P[i] += u * (reach - r)
                    moved = True
            off = P[i] - A[i]
            r = np.hypot(*off)
            if r > max_shift:
                P[i] = A[i] + off * max_shift / r
        if not moved:
            break
        P += 0.02 * (A + np.asarray(start) - P)
    return P


def place_labels(ax, anchors, texts, colours, *, fontsize: float = 7):
    """Annotate `texts` at data points `anchors` (None: skipped) without overlapping each other."""
    items = [(a, t, c) for a, t, c in zip(anchors, texts, colours) if a is not None]
    if not items:
        return
    fig = ax.figure
    to_pt = 72.0 / fig.dpi
    A = np.array([ax.transData.transform(a) for a, _, _ in items]) * to_pt
    S = np.array([(0.62 * fontsize * len(t) + 1.5, fontsize + 1.0) for _, t, _ in items])
    P = spread_labels(A, S)
    for (a, t, c), p, q in zip(items, P, A):
        off = p - q
        far = np.hypot(*off) > 10
        ax.annotate(t, a, xytext=tuple(off), textcoords="offset points", ha="center", va="center",
                    fontsize=fontsize, color=c, zorder=4,
                    arrowprops=dict(arrowstyle="-", color=c, lw=0.4, alpha=0.7) if far else None)
