"""Over-parameterisation and gradient dynamics for the Gaussian-input problem:
splitting a neuron of a spurious minimum (Arjevani & Field 2022; Fukumizu &
Amari 2000, Th. 1) and the empirical frequency of spurious minima reached
from Xavier initialisations (Safran & Shamir 2018).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import jax
import jax.numpy as jnp
import optax
from scipy.optimize import linear_sum_assignment

from symland._results import RESULTS, CriticalPointReport, check_tolerance, result_name, result_names
from symland._solver import minimise, refine_critical_point
from symland._splitting import split_neuron
from symland._symmetry import check_neuron_index
from symland.gaussian._families import SPURIOUS_FAMILIES, spurious_family
from symland.gaussian._isotropy import check_k
from symland.gaussian._kernel import expected_loss, gaussian_loss_function


# --- adding a neuron --------------------------------------------------------------


def split_gaussian_neuron(W, a, neuron: int, lam: float):
    """`split_neuron` for the Gaussian-input student f(x) = Σ_i a_i σ(w_i·x).

    A thin adapter: W (k × d, rows are neurons) and a (k,) become the
    two-layer parameters [(W, None), (a[None, :], None)], `split_neuron`
    duplicates row `neuron` with output weights (λ a_n, (1 − λ) a_n), the copy
    appended as the last row. The (k+1)-neuron network computes the same
    function (Fukumizu & Amari 2000, Th. 1).

    **Returns:** ``(W2, a2)`` of shapes (k+1) × d and (k+1,).

    Example:
        >>> W2, a2 = split_gaussian_neuron(np.eye(2), np.ones(2), 0, 0.25)
        >>> W2.tolist(), a2.tolist()
        ([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], [0.25, 1.0, 0.75])
    """
    params = [(jnp.asarray(W, dtype=jnp.float64), None), (jnp.asarray(a, dtype=jnp.float64)[None, :], None)]
    check_neuron_index(neuron, params[0][0].shape[0], "neuron")
    (W2, _), (A2, _) = split_neuron(params, 1, neuron, lam)
    return W2, A2[0]


@dataclasses.dataclass(frozen=True)
class TrainableOutputPoint:
    """A critical point (W, a) of the problem with trainable output weights (teacher V = I_k).

    **Fields:** `W` (k × d), `a` (k,), `status` (a `RESULTS` name: how the
    refinement ended, `converged` when (W, 1) was already critical), `point`
    (a `CriticalPointReport` of the full (W, a) Hessian).
    """

    W: np.ndarray
    a: np.ndarray
    status: str
    point: CriticalPointReport

    def to_dict(self) -> dict:
        return {"W": self.W.tolist(), "a": self.a.tolist(), "status": self.status,
                "point": self.point.to_dict()}


@dataclasses.dataclass(frozen=True)
class SplitScan:
    """Hessian verdicts after splitting one neuron, as a function of λ.

    **Fields:** `k`, `neuron`, `lambdas`, `base` (the k-neuron
    `TrainableOutputPoint` that was split), `points` (one
    `CriticalPointReport` per λ, of the (k+1)-neuron Hessian in weights and
    output weights; the split points are critical by Fukumizu & Amari's Th. 1).

    `n_negative`, `min_eigenvalue` and `grad_norm` are per-λ arrays read from
    `points`.
    """

    k: int
    neuron: int
    lambdas: np.ndarray
    base: TrainableOutputPoint
    points: tuple

    @property
    def n_negative(self) -> np.ndarray:
        return np.array([p.index for p in self.points])

    @property
    def min_eigenvalue(self) -> np.ndarray:
        return np.array([float(p.eigenvalues[0]) for p in self.points])

    @property
    def grad_norm(self) -> np.ndarray:
        return np.array([p.grad_norm for p in self.points])

    def to_dict(self) -> dict:
        return {"k": self.k, "neuron": self.neuron, "lambdas": self.lambdas.tolist(),
                "base": self.base.to_dict(), "points": [p.to_dict() for p in self.points]}


@jax.jit
def _trainable_derivatives(W, a, V):
    """(loss, ‖∇L‖∞, Hessian eigenvalues) of the trainable-output loss at (W, a)."""
    flat = jnp.concatenate([W.ravel(), a])
    k, d = W.shape

    def f(x):
        return expected_loss(x[: k * d].reshape(k, d), V, x[k * d:])

    loss, g = jax.value_and_grad(f)(flat)
    return loss, jnp.max(jnp.abs(g)), jnp.linalg.eigvalsh(jax.hessian(f)(flat))


def _trainable_report(W, a, V, gtol: float) -> CriticalPointReport:
    loss, gn, eig = _trainable_derivatives(W, a, V)
    return CriticalPointReport.from_spectrum(float(loss), float(gn), np.asarray(eig), gtol=gtol)


def trainable_output_point(W, *, gtol: float = 1e-12) -> TrainableOutputPoint:
    """Critical point with trainable output weights a near (W, a = 1), V = I_k.

    A minimum of the a = 1 problem is in general not critical in a; this runs
    `minimise` (trust-region Newton) on (W, a) from (W, 1) and then
    `refine_critical_point`, unless ‖∇L‖∞ ≤ `gtol` already holds at (W, 1) — as
    it does at every critical point of the a = 1 ReLU problem, since
    ∂L/∂a_i = w_i·∇_{w_i}L / a_i by positive homogeneity. Positive rescaling
    (w, a) → (c w, a/c) makes every such point lie on a k-dimensional
    manifold, so k zero eigenvalues are expected.

    **Returns:** a `TrainableOutputPoint`.
    """
    gtol = check_tolerance(gtol, "gtol")
    W = jnp.asarray(W)
    k = W.shape[0]
    V = jnp.eye(W.shape[1])
    Wc, ac = W, jnp.ones(k)
    report = _trainable_report(Wc, ac, V, gtol)
    status = result_name(RESULTS.converged)
    if not report.grad_norm <= gtol:
        f = gaussian_loss_function(V, trainable_output=True)
        res = minimise(f, {"W": W, "a": jnp.ones(k)}, gtol=gtol, max_steps=200)
        res = refine_critical_point(f, res.value, gtol=gtol)
        Wc, ac, status = res.value["W"], res.value["a"], res.status_name
        report = _trainable_report(Wc, ac, V, gtol)
    return TrainableOutputPoint(np.asarray(Wc), np.asarray(ac), status, report)


def split_scan(W, neuron: int, lambdas=np.linspace(-0.5, 1.5, 21), *, base: TrainableOutputPoint | None = None,
               gtol: float = 1e-12) -> SplitScan:
    """Add one neuron to the critical point W (V = I_k) by splitting `neuron`.

    First moves to the critical point with trainable output weights
    (`trainable_output_point`, or `base` if given), then for each λ
    classifies the (k+1)-neuron Hessian (weights and output weights) at
    `split_gaussian_neuron(W, a, neuron, λ)`. Minimum → saddle shows as
    n_negative > 0 for λ ∈ (0, 1) (Arjevani & Field 2022).

    **Returns:** a `SplitScan`.
    """
    W = jnp.asarray(W)
    k = W.shape[0]
    check_neuron_index(neuron, k, "neuron")
    base = trainable_output_point(W, gtol=gtol) if base is None else base
    V = jnp.eye(W.shape[1])
    lambdas = np.asarray(lambdas, dtype=float)
    points = tuple(_trainable_report(*split_gaussian_neuron(base.W, base.a, neuron, float(lam)), V, gtol)
                   for lam in lambdas)
    return SplitScan(k, int(neuron), lambdas, base, points)


# --- empirical frequency ------------------------------------------------------------


def align_rows_columns(W, R, *, iterations: int = 10):
    """Permutations (π, ρ) bringing W close to R: min ‖P_π W P_ρᵀ − R‖_F.

    Alternating Hungarian assignments (`scipy.optimize.linear_sum_assignment`)
    on rows and columns, started from matching sorted rows (invariant under
    column permutations). A local method: returns the best pair found.

    **Returns:** ``(distance, W_aligned)``.
    """
    W, R = np.asarray(W), np.asarray(R)
    cost = np.linalg.norm(np.sort(W, axis=1)[:, None, :] - np.sort(R, axis=1)[None, :, :], axis=2)
    rows = linear_sum_assignment(cost)[1]  # row i of W goes to rows[i]
    Wa = np.empty_like(W)
    Wa[rows] = W
    best = (np.linalg.norm(Wa - R), Wa)
    for _ in range(iterations):
        c = np.linalg.norm(Wa[:, :, None] - R[:, None, :], axis=0)  # column a of Wa vs column b of R
        cols = linear_sum_assignment(c)[1]
        Wb = np.empty_like(Wa)
        Wb[:, cols] = Wa
        r = np.linalg.norm(Wb[:, None, :] - R[None, :, :], axis=2)
        rows = linear_sum_assignment(r)[1]
        Wa = np.empty_like(Wb)
        Wa[rows] = Wb
        dist = np.linalg.norm(Wa - R)
        if dist < best[0] - 1e-15:
            best = (dist, Wa)
        else:
            break
    return best


@dataclasses.dataclass(frozen=True)
class FrequencyResult:
    """Where N gradient descents from Xavier initialisations end (Safran & Shamir 2018).

    **Fields:** `k`, `n_runs`, `counts` ({label: count}; labels are
    'global', a family name of `SPURIOUS_FAMILIES`, 'other minimum',
    'other critical' or 'not converged'), `losses` (per run, after
    refinement), `labels` (per run), `refine_status` (per run, `RESULTS`
    names), `steps`, `lr`.
    """

    k: int
    n_runs: int
    counts: dict
    losses: np.ndarray
    labels: list
    refine_status: list
    steps: int
    lr: float

    def to_dict(self) -> dict:
        return {"k": self.k, "n_runs": self.n_runs, "counts": self.counts, "steps": self.steps, "lr": self.lr,
                "frequencies": {lab: c / self.n_runs for lab, c in self.counts.items()},
                "refine_status": {st: self.refine_status.count(st) for st in sorted(set(self.refine_status))},
                "other_losses": sorted({round(float(l), 10) for l, lab in zip(self.losses, self.labels)
                                        if lab.startswith("other")})}


@functools.partial(jax.jit, static_argnums=(2, 3))
def _descend(W0s, lr, steps, k):
    f = gaussian_loss_function(jnp.eye(k))
    opt = optax.adam(lr)

    def one(W0):
        def step(carry, _):
            W, s = carry
            g = jax.grad(f)(W)
            u, s = opt.update(g, s, W)
            return (optax.apply_updates(W, u), s), None

        (W, _), _ = jax.lax.scan(step, (W0, opt.init(W0)), None, length=steps)
        return W

    return jax.vmap(one)(W0s)


@functools.partial(jax.jit, static_argnums=1)
def _loss_and_grad_norm(Ws, k):
    f = gaussian_loss_function(jnp.eye(k))
    loss, g = jax.vmap(jax.value_and_grad(f))(Ws)
    return loss, jnp.max(jnp.abs(g), axis=(1, 2))


def empirical_frequency(k: int, *, n_runs: int = 500, steps: int = 1500, lr: float = 2e-2, seed: int = 0,
                        families=tuple(SPURIOUS_FAMILIES), tol: float = 1e-6, gtol: float = 1e-11,
                        refine_steps: int = 10) -> FrequencyResult:
    """How often gradient descent from Xavier initialisation reaches each family.

    `n_runs` Adam descents (optax, `steps` steps, learning rate `lr`) on the
    a = b = 1, V = I_k ReLU loss, W₀ ~ N(0, 1/k) entrywise (Xavier/Glorot
    normal for a k × k layer), all in one `jax.vmap`; every end point with
    ‖∇L‖∞ > `gtol` is refined with `refine_critical_point` (vmapped, at most
    `refine_steps` steps; the others already satisfy its stopping test and
    are reported 'converged' with 0 steps), then compared with the
    family representatives at this k up to Γ = S_k × S_k
    (`align_rows_columns`, distance ≤ `tol`).

    **Returns:** a `FrequencyResult`.
    """
    k = check_k(k)
    if n_runs < 1:
        raise ValueError(f"n_runs: must be >= 1, got {n_runs}")
    W0s = jax.random.normal(jax.random.PRNGKey(seed), (n_runs, k, k)) / np.sqrt(k)
    Ws = _descend(W0s, lr, steps, k)
    f = gaussian_loss_function(jnp.eye(k))
    losses, gns = _loss_and_grad_norm(Ws, k)
    Wr, losses = np.array(Ws), np.array(losses)
    done, budget = result_name(RESULTS.converged), result_name(RESULTS.max_steps)
    status = [done if g <= gtol else budget for g in np.asarray(gns)]
    need = np.flatnonzero(np.asarray(gns) > gtol)
    if need.size:  # points already at ‖∇L‖∞ ≤ gtol would take 0 steps; refine the rest in one vmap
        res = jax.vmap(lambda W: refine_critical_point(f, W, gtol=gtol, max_steps=refine_steps))(Ws[need])
        Wr[need], losses[need] = np.asarray(res.value), np.asarray(res.loss)
        for i, st in zip(need, result_names(res.status)):
            status[i] = st
    refs = {}
    for name in families:
        fam = spurious_family(name, [k])
        if k in fam:
            refs[name] = fam[k]
    labels = []
    for W, loss, st in zip(Wr, losses, status):
        if st != done:
            labels.append("not converged")
        elif loss < 1e-10:
            labels.append("global")
        else:
            lab = "other critical"
            for name, p in refs.items():
                if abs(p.loss - loss) < 1e-8 and align_rows_columns(W, p.W)[0] <= tol:
                    lab = name
                    break
            labels.append(lab)
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    return FrequencyResult(k, n_runs, counts, losses, labels, status, steps, lr)


def family_split_report(name: str, k: int, lambdas=(0.25, 0.5, 0.75)) -> dict:
    """Does adding one neuron turn the family member at k into a saddle?

    Splits one representative neuron of every block of the isotropy partition
    (`split_scan`) at each λ of `lambdas` ⊂ (0, 1).

    **Returns:** {"family", "k", "loss", "base_index", "splits": {neuron:
    n_negative per λ}, "one_neuron_suffices": any split has a negative
    eigenvalue}.
    """
    p = spurious_family(name, [k])[k]
    base = trainable_output_point(p.W)
    splits = {}
    for block in p.partition:
        s = split_scan(p.W, block[0], lambdas, base=base)
        splits[int(block[0])] = [int(n) for n in s.n_negative]
    return {"family": name, "k": k, "loss": p.loss, "base_index": base.point.index,
            "base_nullity": base.point.nullity,
            "lambdas": list(map(float, lambdas)), "splits": splits,
            "one_neuron_suffices": any(max(v) > 0 for v in splits.values())}
