"""The one result vocabulary of symland: solver and path outcomes, critical-point verdicts.

Two things live here and nowhere else:

- `RESULTS`, the enumeration of outcomes that every solver, path and
  experiment reports (modelled on optimistix's `RESULTS`, an
  `equinox.Enumeration`, so it can be carried through `jit`, `vmap` and
  `lax.scan`). Each entry has a message saying what it means.
- `Kind` and `classify_spectrum`, the single rule that turns a gradient norm
  and a (possibly partial) Hessian spectrum into a verdict: `minimum`,
  `strict saddle`, `degenerate`, `not critical` or `undecided`, with the
  zero tolerance of `zero_tolerance`. `CriticalPointReport` records the
  verdict together with the numbers it was made from.

Example:
    >>> import numpy as np
    >>> from symland import RESULTS, classify_spectrum, result_name
    >>> result_name(RESULTS.converged)
    'converged'
    >>> classify_spectrum(np.array([-1.0, 2.0, 3.0]), grad_norm=1e-14, gtol=1e-10)
    <Kind.strict_saddle: 'strict saddle'>
    >>> str(classify_spectrum(np.array([0.5, 0.7]), grad_norm=0.0, gtol=1e-10, n=100))
    'minimum'
"""

from __future__ import annotations

import dataclasses
import enum

import equinox as eqx
import numpy as np

EPS = float(np.finfo(np.float64).eps)  # machine epsilon of float64, defined once


class RESULTS(eqx.Enumeration):
    """Why a solver, a path step or an experiment stopped. One vocabulary for the whole project.

    The numerical outcomes come from the solvers; `kink`, `escape` and
    `rescaling` are the landscape-level reasons a fixed-δ step of the
    permutation path (Brea et al. 2019, §4.1) has no smooth constrained
    minimum.
    """

    converged = "converged: the gradient norm reached the requested tolerance"
    max_steps = "max_steps: the step budget ran out before the tolerance was reached"
    diverged = "diverged: the loss or its gradient became non-finite"
    stalled = "stalled: no step makes progress (damping saturated), e.g. at a kink or on a flat ridge"
    kink = ("kink: a sample lies on a ReLU hyperplane at the solution; the loss is not "
            "differentiable there, so no gradient tolerance can certify it")
    escape = ("escape: the iterates run off along a channel to infinity (output weights grow "
              "without bound while the loss creeps down; Martinelli et al. 2025)")
    rescaling = ("rescaling: positive homogeneity (ϑ → cϑ, a → a/c keeps the loss for ReLU, nearly so "
                 "for softplus in its linear regime) makes the problem degenerate, or lets a neuron of "
                 "the layer below the pair rescale without bound instead of the pair moving")
    failed = "failed: the job raised an exception (recorded with its traceback)"


RESULT_NAMES = tuple(RESULTS._name_to_item)


def result_name(result) -> str:
    """The name of a `RESULTS` item (not batched) or of its integer code."""
    if isinstance(result, str):
        if result not in RESULT_NAMES:
            raise ValueError(f"result: unknown result name {result!r}; known: {', '.join(RESULT_NAMES)}")
        return result
    code = int(np.asarray(getattr(result, "_value", result)))
    return RESULT_NAMES[code]


def result_names(results) -> tuple[str, ...]:
    """Names of a batch of `RESULTS` items (or integer codes), flattened in order."""
    codes = np.ravel(np.asarray(getattr(results, "_value", results)))
    return tuple(RESULT_NAMES[int(c)] for c in codes)


def result_code(result):
    """The integer code(s) of a `RESULTS` item, for arrays that leave a traced computation."""
    return result._value


def result_message(result) -> str:
    """The message of a result (item, code or name)."""
    return RESULTS[RESULTS._name_to_item[result_name(result)]]


def result_item(name: str):
    """The `RESULTS` item for a name."""
    return RESULTS._name_to_item[result_name(name)]


def check_tolerance(value, name: str) -> float:
    """`ValueError` naming `name` unless `value` is a finite positive real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or not value > 0:
        raise ValueError(f"{name}: must be a finite positive number, got {value!r}")
    return float(value)


class Kind(enum.StrEnum):
    """What a point is, judged from its gradient and Hessian spectrum (`classify_spectrum`)."""

    minimum = "minimum"
    strict_saddle = "strict saddle"
    degenerate = "degenerate"
    not_critical = "not critical"
    undecided = "undecided"


PARTS = ("all", "smallest", "largest", "nearest_zero", "partial")
"""Which part of ∇²L's spectrum a report holds: `all` (dense), one of the three Lanczos parts, or
`partial`: the eigenvalues Lanczos converged within its HVP budget, fewer than it was asked for."""


def zero_tolerance(eigenvalues, *, factor: float = 100.0, n: int | None = None,
                   scale: float | None = None) -> float:
    """The tolerance below which |λ| counts as zero: factor · n · ε · max|λ|.

    `n` is the Hessian's dimension, by default the number of eigenvalues
    given; pass it when only part of the spectrum is known (Lanczos), and
    pass `scale` = ‖H‖₂ (largest |λ|) when the known part may not contain it.

    A backward-stable symmetric eigensolver returns eigenvalues with absolute
    error ≲ c·n·ε·‖H‖₂ (Golub & Van Loan, §8.1); the Hessian itself carries
    round-off of the same order from summing over samples. The default
    factor 100 leaves two digits of margin above that floor.

    Example:
        >>> zero_tolerance([1.0, -2.0])
        8.881784197001252e-14
    """
    eig = np.asarray(eigenvalues, dtype=np.float64)
    dim = eig.size if n is None else int(n)
    top = float(np.max(np.abs(eig))) if eig.size else 0.0
    if scale is not None:
        top = max(top, abs(float(scale)))
    return float(factor * dim * EPS * max(top, np.finfo(np.float64).tiny))


def _real(value, name: str) -> float:
    """`float(value)` for a real scalar (NumPy and JAX scalars too); `ValueError` naming `name` otherwise."""
    if isinstance(value, (bool, str, complex)) or np.iscomplexobj(value):
        raise ValueError(f"{name}: must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a real number, got {value!r}") from None


def check_hvp_budget(max_hvps) -> None:
    """`ValueError` naming `max_hvps` unless it is None or a positive integer (a budget of
    Hessian-vector products: matrix-free solvers and Lanczos)."""
    if max_hvps is not None and (isinstance(max_hvps, bool) or not isinstance(max_hvps, (int, np.integer))
                                 or max_hvps < 1):
        raise ValueError(f"max_hvps: must be a positive integer or None, got {max_hvps!r}")


def check_zero_tol(value) -> float:
    """`ValueError` naming `zero_tol` unless `value` is a finite real number ≥ 0."""
    v = _real(value, "zero_tol")
    if not (np.isfinite(v) and v >= 0):
        raise ValueError(f"zero_tol: must be a finite number ≥ 0, got {value!r}")
    return v


def count_signs(eigenvalues, zero_tol: float) -> tuple[int, int, int]:
    """(negative, zero, positive) counts with |λ| ≤ `zero_tol` counted as zero."""
    eig = np.asarray(eigenvalues)
    neg = int(np.sum(eig < -zero_tol))
    pos = int(np.sum(eig > zero_tol))
    return neg, eig.size - neg - pos, pos


def classify_spectrum(eigenvalues, *, grad_norm: float, gtol: float, part: str = "all",
                      n: int | None = None, zero_tol: float | None = None) -> Kind:
    """The verdict on a point from ‖∇L‖∞ and a full or partial Hessian spectrum.

    Rule (second-order test, zero meaning |λ| ≤ `zero_tol`, by default
    `zero_tolerance(eigenvalues, n=n)`):

    - ‖∇L‖∞ > `gtol` (or NaN): `not critical`.
    - some eigenvalue < −tol: `strict saddle` (any part of the spectrum
      suffices).
    - `part="all"`: `minimum` if all are > tol, else `degenerate`.
    - `part="smallest"` (the k algebraically smallest, as from Lanczos):
      the rest of the spectrum lies above them, so all > tol means
      `minimum`; a zero among them means `degenerate`.
    - `largest`, `nearest_zero` or `partial` without a negative
      eigenvalue: `undecided` (the smallest eigenvalues are not known).
      Only a `partial` spectrum may be empty (Lanczos converged none).

    **Arguments:** `eigenvalues` (any order), `grad_norm`, `gtol`, `part`
    (one of `PARTS`), `n` (the dimension, for the tolerance of a partial
    spectrum), `zero_tol`.

    **Returns:** a `Kind`.

    Example:
        >>> str(classify_spectrum([-1.0, 2.0], grad_norm=0.0, gtol=1e-8, part="partial"))
        'strict saddle'
        >>> str(classify_spectrum([], grad_norm=0.0, gtol=1e-8, part="partial"))
        'undecided'
    """
    if part not in PARTS:
        raise ValueError(f"part: unknown spectrum part {part!r}; choose one of {', '.join(PARTS)}")
    eig = np.asarray(eigenvalues, dtype=np.float64)
    if eig.size == 0 and part != "partial":
        raise ValueError("eigenvalues: need at least one eigenvalue")
    tol = zero_tolerance(eig, n=n) if zero_tol is None else check_zero_tol(zero_tol)
    g = _real(gtol, "gtol")
    if not (np.isfinite(g) and g > 0):
        raise ValueError(f"gtol: must be a finite positive number, got {gtol!r}")
    if not float(grad_norm) <= g:
        return Kind.not_critical
    neg, zero, _ = count_signs(eig, tol)
    if neg > 0:
        return Kind.strict_saddle
    if part in ("all", "smallest"):
        return Kind.degenerate if zero > 0 else Kind.minimum
    return Kind.undecided


@dataclasses.dataclass(frozen=True)
class CriticalPointReport:
    """What a point is: gradient, Hessian index and nullity, and the verdict.

    **Fields:** `loss`, `grad_norm` (‖∇L‖∞), `gtol` (the gradient tolerance
    the verdict used), `index` (negative eigenvalues; a lower bound when the
    spectrum is partial), `nullity` (|λ| ≤ `zero_tol`), `n_positive`,
    `zero_tol`, `kind` (a `Kind`), `eigenvalues` (those computed,
    ascending), `part` (`all` for a dense spectrum, else which Lanczos part),
    `n` (the number of parameters).
    """

    loss: float
    grad_norm: float
    gtol: float
    index: int
    nullity: int
    n_positive: int
    zero_tol: float
    kind: Kind
    eigenvalues: np.ndarray
    part: str = "all"
    n: int | None = None

    @classmethod
    def from_spectrum(cls, loss, grad_norm, eigenvalues, *, gtol: float, part: str = "all",
                      n: int | None = None, zero_tol: float | None = None) -> "CriticalPointReport":
        """Build the report from the numbers; the verdict is `classify_spectrum`'s."""
        eig = np.sort(np.asarray(eigenvalues, dtype=np.float64))
        dim = eig.size if n is None else int(n)
        tol = zero_tolerance(eig, n=dim) if zero_tol is None else check_zero_tol(zero_tol)
        neg, zero, pos = count_signs(eig, tol)
        kind = classify_spectrum(eig, grad_norm=grad_norm, gtol=gtol, part=part, n=dim, zero_tol=tol)
        return cls(float(loss), float(grad_norm), float(gtol), neg, zero, pos, tol, kind, eig,
                   part, dim)

    @property
    def is_critical(self) -> bool:
        return self.kind is not Kind.not_critical

    @property
    def complete(self) -> bool:
        """Whether the spectrum is complete, so that index and nullity are exact."""
        return self.part == "all"

    @property
    def decided(self) -> bool:
        """Whether index and nullity are exact: the spectrum is complete, or holds the smallest
        eigenvalues with a positive one among them, so that none is missing below it."""
        return self.part == "all" or (self.part == "smallest" and self.n_positive > 0)

    def to_dict(self) -> dict:
        return {
            "loss": self.loss, "grad_norm": self.grad_norm, "gtol": self.gtol,
            "index": self.index, "nullity": self.nullity, "n_positive": self.n_positive,
            "zero_tol": self.zero_tol, "kind": str(self.kind), "part": self.part, "n": self.n,
            "min_eigenvalue": float(self.eigenvalues[0]) if self.eigenvalues.size else None,
            # With a partial spectrum the largest computed eigenvalue is not λ_max.
            ("max_eigenvalue" if self.complete else "max_computed_eigenvalue"):
                float(self.eigenvalues[-1]) if self.eigenvalues.size else None,
            "n_eigenvalues": int(self.eigenvalues.size),
        }
