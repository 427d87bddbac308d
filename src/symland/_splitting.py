"""Neuron splitting: lines of critical points (Fukumizu & Amari 2000, Th. 1 and Th. 3).

Duplicating neuron m of a critical point of the narrow network and giving the
copies outgoing weights λv and (1−λ)v gives a line λ ∈ ℝ of critical points
of the wide network (Th. 1). Along the splitting direction
d = ((1−λ)u on ϑ_m, −λu on the copy) the loss changes, to second order, by

    L(θ_λ + t d) − L(θ_λ) = ½ · λ(1−λ) · t² · uᵀ F u + O(t³),      (Th. 3)

    F = Σ_μ Σ_i δ_i^μ · v_i · g''(ϑ_m·h̃^μ) · h̃^μ h̃^μᵀ,

where δ_i^μ = ∂L/∂z_i^μ is the derivative of the loss L (as defined in
`symland._loss`, a mean over the T samples, so it carries the 1/T and,
for the MSE without ½, the factor −2(y − f)) with respect to the
pre-activation of neuron i of layer k+1 at sample μ, and h̃ the input of
layer k extended by 1 for the bias. With this δ the constant ½ is right
(checked by finite differences in the tests); with the per-sample
derivative of ℓ = ‖y − f‖² one would need an extra 1/T.

The Hessian of the wide network restricted to the splitting directions is
λ(1−λ)F, so at a local minimum of the narrow network its index at θ_λ is
the number of negative eigenvalues of λ(1−λ)F: for λ ∈ (0,1) that of F,
outside [0,1] that of −F. F positive definite: minima on (0,1), saddles
outside [0,1]; F negative definite: the reverse; F indefinite: saddles
everywhere. In particular the index of a permutation point (λ = ½) can
exceed 1 (it is the number of negative eigenvalues of F), contrary to the
"at most one negative eigenvalue" of Brea et al. 2019, §4.2.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import jax
import jax.numpy as jnp

from ._embedding import embed_in_wider
from ._loss import LOSSES, check_data
from ._network import ACTIVATIONS, MLP, Params
from ._results import Kind, classify_spectrum, count_signs, zero_tolerance
from ._symmetry import check_hidden_layer, check_neuron_index


def _check_neuron(params, layer, m):
    n = check_hidden_layer(params, layer)
    check_neuron_index(m, n, "m", layer)
    return n


def _check_lam(lam):
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.floating)) or not np.isfinite(lam):
        raise ValueError(f"lam: must be a finite real number, got {lam!r}")
    return float(lam)


def split_neuron(params: Params, layer: int, m: int, lam: float) -> Params:
    """Duplicate neuron m of layer k with outgoing weights λv (at m) and (1−λ)v (appended last).

    Fukumizu & Amari 2000, Th. 1: a critical point of the narrow network maps
    to a critical point of the wide one for every real λ.

    **Returns:** parameters with n_k + 1 neurons in layer k; the copy is neuron n_k.
    """
    n = _check_neuron(params, layer, m)
    lam = _check_lam(lam)
    split = np.ones(n + 1)
    split[m], split[n] = lam, 1.0 - lam
    return embed_in_wider(params, layer, list(range(n)) + [m], split)


def splitting_direction(params: Params, layer: int, m: int, lam: float, u) -> Params:
    """The direction d in the wide network: (1−λ)u on ϑ_m, −λu on the copy, 0 elsewhere."""
    n = _check_neuron(params, layer, m)
    lam = _check_lam(lam)
    W, b = params[layer - 1]
    u = jnp.asarray(u, dtype=jnp.float64)
    d_in = W.shape[1] + (0 if b is None else 1)
    if u.shape != (d_in,):
        raise ValueError(f"u: expected shape ({d_in},), got {u.shape}")
    zW = jnp.zeros((n + 1, W.shape[1])).at[m].set((1 - lam) * u[:W.shape[1]]).at[n].set(
        -lam * u[:W.shape[1]])
    zb = None if b is None else jnp.zeros(n + 1).at[m].set((1 - lam) * u[-1]).at[n].set(-lam * u[-1])
    out = [jax.tree_util.tree_map(jnp.zeros_like, pair) for pair in params]
    out[layer - 1] = (zW, zb)
    out[layer] = (jnp.zeros((params[layer][0].shape[0], n + 1)), out[layer][1])
    return out


def splitting_matrix(model: MLP, params: Params, x, y, layer: int, m: int, *,
                     kind: str = "mse") -> np.ndarray:
    """F of Fukumizu & Amari 2000, Th. 3 for neuron m of layer k (see module docstring).

    **Arguments:**
    - `model`, `params`: the narrow network and its critical point.
    - `x`, `y`: the data; `kind`: `mse` or `nmse` (as `loss_function`).
    - `layer`, `m`: the neuron to split.

    **Returns:** F, a symmetric (n_{k−1}[+1]) × (n_{k−1}[+1]) array.
    """
    _check_neuron(params, layer, m)
    if kind not in LOSSES:
        raise ValueError(f"kind: unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
    x, y = check_data(model, x, y)
    scale = 1.0 if kind == "mse" else 1.0 / float(jnp.mean(y * y))

    def loss_of_E(E):
        r = y - model.apply(params, x, offset=(layer + 1, E))
        return scale * jnp.mean(jnp.sum(r * r, axis=-1))

    n_next = params[layer][0].shape[0]
    delta = jax.grad(loss_of_E)(jnp.zeros((x.shape[0], n_next)))        # (T, n_{k+1})
    h = model.hidden(params, x, layer - 1) if layer > 1 else x           # (T, n_{k−1})
    W, b = params[layer - 1]
    z = h @ W[m] + (0.0 if b is None else b[m])
    g = ACTIVATIONS[model.activation]
    g2 = jax.vmap(jax.grad(jax.grad(g)))(z)
    ht = h if b is None else jnp.concatenate([h, jnp.ones((h.shape[0], 1))], axis=1)
    v = params[layer][0][:, m]
    c = (delta @ v) * g2
    F = (ht * c[:, None]).T @ ht
    return np.asarray(0.5 * (F + F.T))


SEGMENTS = {"(-inf,0)": -1.0, "(0,1)": 1.0, "(1,inf)": -1.0}  # sign of λ(1−λ) on each segment


@dataclasses.dataclass(frozen=True)
class SplittingLine:
    """Fukumizu & Amari's classification of the line λ ∈ ℝ of split points (Th. 3).

    **Fields:** `F`, `F_eigenvalues` (ascending), `narrow_is_minimum`,
    `narrow_index`, `segments`: `{"(-inf,0)": kind, "(0,1)": kind,
    "(1,inf)": kind}` with kind a `Kind` (`minimum`, `strict saddle`, or
    `degenerate` where F is singular and the second-order test cannot decide;
    the points λ = 0, 1 are degenerate and not classified), `zero_tol` (for
    the eigenvalues of F); `index(λ)`: the predicted Hessian index at θ_λ.
    """

    F: np.ndarray
    F_eigenvalues: np.ndarray
    narrow_is_minimum: bool
    narrow_index: int
    segments: dict
    zero_tol: float

    def index(self, lam: float) -> int:
        """Predicted number of negative Hessian eigenvalues at θ_λ (λ ∉ {0, 1})."""
        lam = _check_lam(lam)
        if lam in (0.0, 1.0):
            raise ValueError("lam: λ = 0 and λ = 1 are degenerate; the index is not predicted")
        s = lam * (1 - lam)
        return self.narrow_index + count_signs(s * self.F_eigenvalues, abs(s) * self.zero_tol)[0]

    def kind(self, lam: float) -> Kind:
        lam = _check_lam(lam)
        key = "(0,1)" if 0 < lam < 1 else "(-inf,0)" if lam < 0 else "(1,inf)" if lam > 1 else None
        if key is None:
            raise ValueError("lam: λ = 0 and λ = 1 are degenerate; not classified")
        return self.segments[key]

    def to_dict(self) -> dict:
        return {"F": self.F.tolist(), "F_eigenvalues": self.F_eigenvalues.tolist(),
                "narrow_is_minimum": self.narrow_is_minimum, "narrow_index": self.narrow_index,
                "segments": {key: str(kind) for key, kind in self.segments.items()},
                "zero_tol": self.zero_tol}


def classify_splitting_line(model: MLP, params: Params, x, y, layer: int, m: int, *,
                            kind: str = "mse", narrow_index: int = 0,
                            zero_tol: float | None = None) -> SplittingLine:
    """Classify the split points θ_λ into minima and saddles (Fukumizu & Amari 2000, Th. 3).

    On each segment of λ the Hessian restricted to the splitting directions
    is λ(1−λ)F; its verdict is `classify_spectrum`'s (the split points are
    critical by Th. 1, and the flat direction along the line itself is not
    counted). A narrow point of index > 0 gives strict saddles everywhere.

    **Arguments:**
    - `model`, `params`, `x`, `y`, `layer`, `m`, `kind`: as `splitting_matrix`.
    - `narrow_index`: the Hessian index of the narrow critical point (0 for a
      local minimum; then the classification below holds).
    - `zero_tol`: eigenvalues of F with |·| ≤ this count as zero (default
      `zero_tolerance` of F's eigenvalues); a singular F leaves the segments
      on which it has no negative eigenvalue `degenerate`.

    **Returns:** a `SplittingLine`.
    """
    F = splitting_matrix(model, params, x, y, layer, m, kind=kind)
    ev = np.linalg.eigvalsh(F)
    tol = zero_tolerance(ev) if zero_tol is None else float(zero_tol)
    is_min = narrow_index == 0
    if is_min:  # the split points are critical (Th. 1): grad_norm 0 stands for that
        seg = {key: classify_spectrum(sign * ev, grad_norm=0.0, gtol=1.0, zero_tol=tol)
               for key, sign in SEGMENTS.items()}
    else:
        seg = dict.fromkeys(SEGMENTS, Kind.strict_saddle)
    return SplittingLine(F, ev, is_min, int(narrow_index), seg, tol)
