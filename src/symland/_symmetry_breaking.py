"""The principle of least symmetry breaking beyond isotropic Gaussian inputs and ReLU
(Arjevani & Field 2021, "On the principle of least symmetry breaking in shallow
ReLU models"; seeds: arjevani-field-abstracts.txt).

Claim checked: the spurious minima that gradient methods reach have the
largest isotropy available. Here: many Adam descents from Xavier
initialisations, all in one `jax.vmap`, for a student–teacher problem whose
teacher is the identity; every end point is refined to a critical point
(`refine_flat`), classified from its dense Hessian (`CriticalPointReport`)
and, when it is a minimum, its isotropy subgroup in Γ computed by
`isotropy_subgroup`. Settings (`SETTINGS`):

| name | inputs | activation | network | loss |
|---|---|---|---|---|
| `gaussian-relu` | N(0, I_d) | ReLU | two-layer | closed form (baseline, Safran & Shamir) |
| `correlated-relu` | N(0, Σ), Σ = (1−c)I + cJ | ReLU | two-layer | closed form: w·x = (Σ^{1/2}w)·z |
| `mixture-relu` | ½N(μ1, I) + ½N(−μ1, I) | ReLU | two-layer | fixed sample |
| `gaussian-erf` | N(0, I_d) | erf(·/√2) | two-layer | closed form (Williams' arcsine kernel) |
| `gaussian-softplus` | N(0, I_d) | softplus | two-layer | fixed sample |
| `three-layer-relu` | N(0, I_d) | ReLU | x ↦ Σ σ(W_2 σ(W_1 x)) | fixed sample |

The student has k = d neurons per hidden layer and output weights 1; the
teacher has W = I (every layer). Every distribution above is invariant
under permutations of coordinates (Σ and μ1 are), so Γ = S_d × S_k (× S_k
for three layers) is a symmetry of the population loss. A fixed sample
breaks it by O(N^{−1/2}); there isotropy is *approximate*: entries equal
within `iso_tol` count as equal (`SETTINGS[...].iso_tol`, chosen above the
sampling noise and far below the gaps between the values of a minimum).
Non-isotropic: the correlated Gaussian and the mixture; non-product: the
mixture (its coordinates are dependent) and the correlated Gaussian.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
import jax
import jax.numpy as jnp
import optax

from ._isotropy_subgroup import isotropy_subgroup
from ._results import CriticalPointReport, Kind, check_tolerance, result_code, result_names
from ._solver import refine_flat
from .gaussian import expected_loss


@dataclasses.dataclass(frozen=True)
class Setting:
    """A student–teacher problem of the least-symmetry-breaking experiment.

    **Fields:** `name`, `distribution` (``gaussian``, ``correlated``,
    ``mixture``), `activation`, `layers` (2 or 3 weight layers counting the
    fixed output), `closed_form`, `iso_tol` (isotropy tolerance), `description`.
    """

    name: str
    distribution: str
    activation: str
    layers: int
    closed_form: bool
    iso_tol: float
    description: str


SETTINGS = {s.name: s for s in (
    Setting("gaussian-relu", "gaussian", "relu", 2, True, 1e-6, "isotropic Gaussian, ReLU (baseline)"),
    Setting("correlated-relu", "correlated", "relu", 2, True, 1e-6,
            "Gaussian with covariance (1-c)I + cJ, c = 0.3, ReLU"),
    Setting("mixture-relu", "mixture", "relu", 2, False, 3e-2,
            "mixture 1/2 N(mu 1, I) + 1/2 N(-mu 1, I), mu = 0.5, ReLU, fixed sample"),
    Setting("gaussian-erf", "gaussian", "erf", 2, True, 1e-6, "isotropic Gaussian, erf(x/sqrt 2)"),
    Setting("gaussian-softplus", "gaussian", "softplus", 2, False, 3e-2,
            "isotropic Gaussian, softplus, fixed sample"),
    Setting("three-layer-relu", "gaussian", "relu", 3, False, 3e-2,
            "isotropic Gaussian, ReLU, x -> sum relu(W2 relu(W1 x)), fixed sample"),
)}
DISTRIBUTIONS = ("gaussian", "correlated", "mixture")
CORRELATION = 0.3
MIXTURE_MEAN = 0.5


def check_setting(name) -> Setting:
    """The `Setting` called `name`; `ValueError` listing the known ones otherwise."""
    if name not in SETTINGS:
        raise ValueError(f"setting: unknown setting {name!r}; choose one of {', '.join(SETTINGS)}")
    return SETTINGS[name]


def check_distribution(name) -> str:
    """`ValueError` unless `name` is one of `DISTRIBUTIONS`."""
    if name not in DISTRIBUTIONS:
        raise ValueError(f"distribution: unknown distribution {name!r}; choose one of {', '.join(DISTRIBUTIONS)}")
    return name


def sample_inputs(distribution: str, d: int, n_samples: int, *, seed: int = 0):
    """A fixed sample of `n_samples` inputs in R^d from `distribution` (see `SETTINGS`).

    Example:
        >>> from symland._symmetry_breaking import sample_inputs
        >>> sample_inputs("mixture", 4, 10).shape
        (10, 4)
    """
    check_distribution(distribution)
    key1, key2 = jax.random.split(jax.random.PRNGKey(seed))
    z = jax.random.normal(key1, (n_samples, d))
    if distribution == "gaussian":
        return z
    if distribution == "correlated":
        return z @ covariance_root(d)
    signs = jnp.where(jax.random.bernoulli(key2, 0.5, (n_samples, 1)), 1.0, -1.0)
    return z + MIXTURE_MEAN * signs


def covariance_root(d: int):
    """Σ^{1/2} for Σ = (1−c)I + cJ (c = `CORRELATION`): eigenvalues 1−c (×(d−1)) and 1−c+cd on 1."""
    c = CORRELATION
    u = np.ones((d, d)) / d
    return jnp.asarray(np.sqrt(1 - c) * (np.eye(d) - u) + np.sqrt(1 - c + c * d) * u)


_ACT = {"relu": jax.nn.relu, "softplus": jax.nn.softplus,
        "erf": lambda t: jax.scipy.special.erf(t / np.sqrt(2.0))}


def setting_loss(setting, k: int, *, n_samples: int = 20_000, seed: int = 0):
    """The loss of `setting` for k = d as a function of a flat parameter vector.

    Two layers: θ = vec(W) (k × k); three layers: θ = (vec(W_1), vec(W_2)).
    L = ½ E[(f(x) − g(x))²], in closed form or over a fixed sample of
    `n_samples` inputs (seed `seed`).

    **Returns:** ``(loss, n_params)``.
    """
    s = check_setting(setting) if isinstance(setting, str) else setting
    V = jnp.eye(k)
    if s.closed_form:
        S = covariance_root(k) if s.distribution == "correlated" else V
        return (lambda th: expected_loss(th.reshape(k, k) @ S, S, activation=s.activation)), k * k
    x = sample_inputs(s.distribution, k, n_samples, seed=seed)
    act = _ACT[s.activation]
    if s.layers == 2:
        y = jnp.sum(act(x), axis=1)
        return (lambda th: 0.5 * jnp.mean((jnp.sum(act(x @ th.reshape(k, k).T), axis=1) - y) ** 2)), k * k
    y = jnp.sum(act(act(x)), axis=1)

    def loss3(th):
        W1, W2 = th[:k * k].reshape(k, k), th[k * k:].reshape(k, k)
        return 0.5 * jnp.mean((jnp.sum(act(act(x @ W1.T) @ W2.T), axis=1) - y) ** 2)

    return loss3, 2 * k * k


@dataclasses.dataclass(frozen=True)
class SymmetryBreakingResult:
    """Where the descents of one setting end and the isotropy of the minima found.

    **Fields:** `setting` (name), `k`, `n_runs`, `reports` (a
    `CriticalPointReport` per run), `status` (per run, RESULTS name of the
    refinement), `isotropy` (per run, an `IsotropySubgroup` for minima, else
    None), `seconds`, `settings` (optimiser and sample).
    """

    setting: str
    k: int
    n_runs: int
    reports: tuple
    status: tuple
    isotropy: tuple
    seconds: float
    settings: dict

    def kinds(self) -> dict:
        out: dict[str, int] = {}
        for r in self.reports:
            out[str(r.kind)] = out.get(str(r.kind), 0) + 1
        return out

    def isotropy_distribution(self, *, global_tol: float = 1e-8) -> list[dict]:
        """Minima and degenerate critical points grouped by (global or spurious, kind, isotropy type).

        Counts, losses, order; `kind` is ``minimum`` or ``degenerate`` (zero
        Hessian eigenvalues, none negative: a non-strict minimum or a
        higher-order saddle).
        """
        groups: dict[tuple, dict] = {}
        for rep, g in zip(self.reports, self.isotropy):
            if g is None:
                continue
            glob = rep.loss <= global_tol
            key = (glob, str(rep.kind), g.name, g.order)
            e = groups.setdefault(key, {"global": glob, "kind": str(rep.kind), "isotropy": g.name, "order": g.order,
                                        "orbits": [list(g.orbit_sizes(l)) for l in range(len(g.sizes))],
                                        "count": 0, "losses": set()})
            e["count"] += 1
            e["losses"].add(round(rep.loss, 7))
        out = sorted(groups.values(), key=lambda e: (not e["global"], -e["count"]))
        for e in out:
            e["losses"] = sorted(e["losses"])
        return out

    def least_symmetry_breaking(self) -> dict:
        """Does the most frequent spurious isotropy have the largest order among the spurious minima found?"""
        spur = [e for e in self.isotropy_distribution() if not e["global"] and e["kind"] == "minimum"]
        if not spur:
            return {"spurious_minima": 0, "holds": None}
        top = max(spur, key=lambda e: e["count"])
        largest = max(e["order"] for e in spur)
        n = sum(e["count"] for e in spur)
        share = sum(e["count"] for e in spur if e["order"] == largest) / n
        return {"spurious_minima": n, "most_frequent": top["isotropy"], "most_frequent_order": top["order"],
                "largest_order": largest, "share_with_largest_order": share,
                "holds": top["order"] == largest}

    def to_dict(self) -> dict:
        return {"setting": self.setting, "description": SETTINGS[self.setting].description, "k": self.k,
                "n_runs": self.n_runs, "seconds": self.seconds, "settings": self.settings,
                "kinds": self.kinds(), "status": {s: self.status.count(s) for s in sorted(set(self.status))},
                "isotropy_of_minima": self.isotropy_distribution(),
                "least_symmetry_breaking": self.least_symmetry_breaking()}


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4))
def _descend_refine(f, x0s, steps, lr, refine_steps):
    opt = optax.adam(lr)

    def one(x0):
        def step(carry, _):
            x, s = carry
            u, s = opt.update(jax.grad(f)(x), s, x)
            return (optax.apply_updates(x, u), s), None

        (x, _), _ = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
        r = refine_flat(f, x, gtol=1e-12, max_steps=refine_steps, final_spectrum=True)
        return r.x, r.loss, r.grad_norm, r.gtol, result_code(r.status), r.eigenvalues

    return jax.vmap(one)(x0s)


def least_symmetry_breaking(setting: str, k: int = 8, *, n_runs: int = 200, steps: int = 2000,
                            lr: float = 1e-2, n_samples: int = 20_000, refine_steps: int = 30,
                            seed: int = 0, batch: int = 100, progress=None) -> SymmetryBreakingResult:
    """Frequency and isotropy of the minima reached by Adam from Xavier initialisations in `setting`.

    **Arguments:** `setting` (a name of `SETTINGS`), `k` (= d, ≥ 2),
    `n_runs`, `steps` and `lr` (Adam), `n_samples` (sampled settings),
    `refine_steps` (`refine_flat`, ‖∇L‖∞ ≤ 1e−12·max(1, L)), `seed`, `batch`
    (runs per compiled call), `progress` (wraps the iterable of batches).

    **Returns:** a `SymmetryBreakingResult`.

    Example:
        >>> from symland import least_symmetry_breaking
        >>> r = least_symmetry_breaking("gaussian-erf", 3, n_runs=4, steps=200)
        >>> sum(r.kinds().values())
        4
    """
    s = check_setting(setting)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k: must be an integer >= 2, got {k!r}")
    for name, v in (("n_runs", n_runs), ("steps", steps), ("n_samples", n_samples), ("batch", batch),
                    ("refine_steps", refine_steps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: must be a positive integer, got {v!r}")
    check_tolerance(lr, "lr")
    t0 = time.perf_counter()
    f, n = setting_loss(s, k, n_samples=n_samples, seed=seed + 1)
    n_in = k  # Xavier/Glorot normal for k × k layers: N(0, 1/k)
    x0s = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (n_runs, n))) / np.sqrt(n_in)
    chunks = [x0s[i:i + batch] for i in range(0, n_runs, batch)]
    if len(chunks) > 1 and len(chunks[-1]) < batch:
        chunks[-1] = np.concatenate([chunks[-1], x0s[:batch - len(chunks[-1])]])
    it = progress(chunks) if progress is not None else chunks
    outs = [jax.device_get(_descend_refine(f, jnp.asarray(c), steps, lr, refine_steps)) for c in it]
    xs, losses, gns, gtols, codes, eigs = (np.concatenate(v)[:n_runs] for v in zip(*outs))
    reports, iso = [], []
    for x, loss, gn, gt, lam in zip(xs, losses, gns, gtols, eigs):
        rep = CriticalPointReport.from_spectrum(loss, gn, lam, gtol=float(gt))
        reports.append(rep)
        mats = [x.reshape(k, k)] if s.layers == 2 else [x[:k * k].reshape(k, k), x[k * k:].reshape(k, k)]
        certified = rep.kind in (Kind.minimum, Kind.degenerate)  # degenerate: e.g. ReLU rescaling in 3 layers
        iso.append(isotropy_subgroup(mats, tol=s.iso_tol) if certified else None)
    opts = {"steps": steps, "lr": lr, "optimiser": "adam, then refine_flat (LM on grad L = 0)",
            "init": "N(0, 1/k) (Xavier normal)", "n_samples": None if s.closed_form else n_samples,
            "iso_tol": s.iso_tol, "seed": seed, "refine_steps": refine_steps}
    return SymmetryBreakingResult(s.name, k, n_runs, tuple(reports), result_names(codes), tuple(iso),
                                  time.perf_counter() - t0, opts)
