"""The sweep experiment registry: one home for every experiment `symland sweep` can run.

An experiment is a job function `job(config) -> (scalars, arrays)` plus its
declared axes (every configuration key, with its default and a checker), the
scalars that go into `summary.csv` (`headline`), and declarative figures for
`symland report`. A spec naming an axis that is not declared is refused before
anything runs.

Job functions run inside Dask worker processes. They import symland (and so
JAX, with x64 on) *inside* the function, so that the process that builds the
grid never needs to have initialised a JAX backend before workers are spawned.
`scalars` must be JSON-serialisable (numbers, strings, booleans, None);
`arrays` maps names to NumPy arrays (stored in `arrays.npz`). A job may put a
`status` scalar: a `RESULTS` name saying whether its solver converged
(default `converged`); a job that raises is recorded as `failed`.

Adding an experiment (e.g. `saddle` or `mnist`) takes a few lines here:

    def _saddle_job(config):
        from symland import ...            # import inside the job
        ...
        return {"barrier": b, "index": i, "status": s}, {"path_loss": losses}

    register(Experiment(
        name="saddle", job=_saddle_job, version=1,
        axes={"width": Axis(4, integer(lo=1)), "seed": Axis(0, seed())},
        headline=("barrier", "index"),
        figures=(Scatter(x="width", y="barrier", colour="activation"),)))

Bump `version` when a job's output changes meaning: it is part of the hash
that keys the result store, so old results are then not reused.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SEED_MAX = 2 ** 32


# --- axis checkers: each takes a TOML value, returns the normalised value or raises ValueError("<axis>: ...")


def integer(*, lo: int | None = None, hi: int | None = None):
    """Checker: an integer in [lo, hi] (TOML integer; booleans refused)."""

    def check(name, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        if lo is not None and value < lo:
            raise ValueError(f"{name}: must be ≥ {lo}, got {value}")
        if hi is not None and value > hi:
            raise ValueError(f"{name}: must be ≤ {hi}, got {value}")
        return int(value)

    return check


def seed():
    """Checker: a seed in [0, 2³²)."""
    return integer(lo=0, hi=SEED_MAX - 1)


def real(*, lo: float | None = None, hi: float | None = None, open_lo: bool = False, open_hi: bool = False):
    """Checker: a finite real number in [lo, hi] (open ends with `open_lo`/`open_hi`); integers become floats."""

    def check(name, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}: expected a real number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name}: must be finite, got {value!r}")
        if lo is not None and (value < lo or (open_lo and value == lo)):
            raise ValueError(f"{name}: must be {'>' if open_lo else '≥'} {lo:g}, got {value:g}")
        if hi is not None and (value > hi or (open_hi and value == hi)):
            raise ValueError(f"{name}: must be {'<' if open_hi else '≤'} {hi:g}, got {value:g}")
        return value

    return check


def choice(choices):
    """Checker: one of `choices` (strings)."""
    choices = tuple(choices)

    def check(name, value):
        if value not in choices:
            raise ValueError(f"{name}: unknown value {value!r}; choose one of {', '.join(choices)}")
        return value

    return check


def boolean():
    """Checker: true or false."""

    def check(name, value):
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        return value

    return check


def text():
    """Checker: a string."""

    def check(name, value):
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")
        return value

    return check


def neuron_pair():
    """Checker: `"all"` or a pair `[l, m]` of distinct 0-based neuron indices."""

    def check(name, value):
        if value == "all":
            return value
        if (isinstance(value, list) and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
                and value[0] != value[1]):
            return sorted(int(v) for v in value)
        raise ValueError(f"{name}: expected \"all\" or a pair [l, m] of distinct indices ≥ 0, got {value!r}")

    return check


# --- the registry


@dataclasses.dataclass(frozen=True)
class Axis:
    """One configuration key of an experiment: its default and its checker `check(name, value)`."""

    default: Any
    check: Callable[[str, Any], Any]
    help: str = ""


@dataclasses.dataclass(frozen=True)
class Scatter:
    """Report figure: headline `y` against axis `x`, one point per job, coloured by axis `colour`."""

    x: str
    y: str
    colour: str | None = None
    logy: bool = False


@dataclasses.dataclass(frozen=True)
class Bars:
    """Report figure: mean of headline `y` (a fraction) over the jobs of each value of axis `by`."""

    y: str
    by: str


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A sweepable experiment: `job(config) -> (scalars, arrays)` with declared axes.

    **Fields:** `name`; `job` (a module-level function, so that Dask can
    send it to workers by reference); `axes` (name → `Axis`); `headline`
    (scalar names for `summary.csv`, in order); `figures` (`Scatter` /
    `Bars` for `symland report`); `version` (part of the job hash);
    `check` (optional cross-axis check of a resolved configuration).
    """

    name: str
    job: Callable[[dict], tuple[dict, dict]]
    axes: dict
    headline: tuple = ()
    figures: tuple = ()
    version: int = 1
    check: Callable[[dict], None] | None = None
    description: str = ""

    def resolve(self, values: dict, *, where: str = "config") -> dict:
        """Defaults overridden by `values`, every value checked; unknown keys refused."""
        for key in values:
            if key not in self.axes:
                raise ValueError(f"{where}.{key}: unknown axis of experiment {self.name!r}; "
                                 f"axes: {', '.join(self.axes)}")
        config = {}
        for key, axis in self.axes.items():
            try:
                config[key] = axis.check(key, values[key]) if key in values else axis.default
            except ValueError as err:
                raise ValueError(f"{where}.{err}" if where else str(err)) from None
        if self.check is not None:
            self.check(config)
        return config


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add `experiment` to `EXPERIMENTS` (a name may be registered once)."""
    if experiment.name in EXPERIMENTS:
        raise ValueError(f"experiment: {experiment.name!r} is already registered")
    for fig in experiment.figures:
        for field in ("x", "colour", "by"):
            key = getattr(fig, field, None)
            if key is not None and key not in experiment.axes:
                raise ValueError(f"figures: {field}={key!r} is not an axis of {experiment.name!r}")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def get_experiment(name) -> Experiment:
    """The registered experiment `name`; `ValueError` listing the known ones otherwise."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment: unknown experiment {name!r}; choose one of {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]


# --- selftest: cheap jobs for the reliability tests (no JAX computation)


def _selftest_job(config):
    """x ↦ x²; sleeps `sleep` seconds, raises when `fail`, and appends `pid x cores` to `log` when set.

    `cores`: the comma-separated cores the process may run on (its affinity).
    """
    if config["log"]:
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        with open(config["log"], "a") as fh:
            fh.write(f"{os.getpid()} {config['x']} {','.join(map(str, cores)) or '-'}\n")
    if config["sleep"] > 0:  # time.sleep(0) still yields the CPU
        time.sleep(config["sleep"])
    if config["fail"]:
        raise RuntimeError(f"selftest job x={config['x']} failed on request")
    x = config["x"]
    return {"square": x * x, "half": x / 2}, {"range": np.arange(x, dtype=np.float64)}


register(Experiment(
    name="selftest", job=_selftest_job,
    axes={"x": Axis(0, integer(), "the number to square"),
          "sleep": Axis(0.0, real(lo=0.0), "seconds to sleep"),
          "fail": Axis(False, boolean(), "raise RuntimeError"),
          "log": Axis("", text(), "file to append 'pid x cores' to when the job starts")},
    headline=("square", "half"),
    figures=(Scatter(x="x", y="square"),),
    description="x ↦ x² (sleeps or raises on request): the sweep machinery's own test"))


# --- toy: permutation paths on the 2-D toy (Brea et al. 2019, Fig. 1)


def _toy_check(config):
    if config["pair"] != "all" and max(config["pair"]) >= config["n_hidden"]:
        raise ValueError(f"pair: {config['pair']} is out of range for n_hidden = {config['n_hidden']}")


def _toy_job(config):
    """Permutation paths of one toy problem (Brea et al. 2019, §4.1, Fig. 1): one pair or all pairs.

    Headline: fraction of δ steps that converged, fraction of paths with every
    step converged, the barrier (highest computed loss on the path minus the
    loss at θ*), and at the permutation point θ_{l⇔m} its loss, Hessian
    index and nullity (for `pair = "all"`: the lowest loss, with its index and
    nullity) and the fraction of pairs whose θ_{l⇔m} is a certified strict saddle.
    """
    from symland._data import toy_problem
    from symland._path import find_permutation_paths
    from symland._results import Kind

    problem = toy_problem(config["activation"], seed=config["seed"], n_samples=config["n_samples"],
                          n_hidden=config["n_hidden"])
    pairs = "all" if config["pair"] == "all" else [tuple(config["pair"])]
    paths = find_permutation_paths(problem.model, problem.teacher, problem.x, problem.y, 1, pairs,
                                   steps=config["steps"], ratio=config["ratio"],
                                   max_newton_steps=config["max_newton_steps"])
    reports = [p.permutation_point_report for p in paths]
    start_loss = np.array([p.loss[0] for p in paths])
    barrier = np.array([max(float(np.max(p.loss)), r.loss) for p, r in zip(paths, reports)]) - start_loss
    converged = np.array([p.converged for p in paths])
    lowest = int(np.argmin([r.loss for r in reports]))
    failing = sorted({s for p in paths for s in p.status if s != "converged"})
    scalars = {
        "n_paths": len(paths),
        "converged_step_fraction": float(converged.mean()),
        "converged_path_fraction": float(converged.all(axis=1).mean()),
        "barrier": float(barrier.max()) if len(paths) == 1 else float(barrier.min()),
        "permutation_point_loss": reports[lowest].loss,
        "permutation_point_index": reports[lowest].index,
        "permutation_point_nullity": reports[lowest].nullity,
        "permutation_point_kind": str(reports[lowest].kind),
        "certified_saddle_fraction": float(np.mean([r.kind == Kind.strict_saddle for r in reports])),
        "status": "converged" if not failing else failing[0],
    }
    arrays = {
        "pairs": np.array([[p.l, p.m] for p in paths]),
        "delta": np.array([p.delta for p in paths]),
        "loss": np.array([p.loss for p in paths]),
        "converged": converged,
        "barrier": barrier,
        "permutation_point_loss": np.array([r.loss for r in reports]),
        "permutation_point_grad_norm": np.array([r.grad_norm for r in reports]),
        "permutation_point_index": np.array([r.index for r in reports]),
        "permutation_point_nullity": np.array([r.nullity for r in reports]),
    }
    return scalars, arrays


_ACTIVATIONS = ("relu", "softplus", "tanh", "sigmoid", "erf", "gelu", "g")  # symland.ACTIVATIONS, tested equal

register(Experiment(
    name="toy", job=_toy_job, check=_toy_check,
    axes={"activation": Axis("relu", choice(_ACTIVATIONS)),
          "seed": Axis(1, seed()),
          "pair": Axis("all", neuron_pair(), '"all" or [l, m] (0-based)'),
          "n_hidden": Axis(5, integer(lo=2), "width of the hidden layer (teacher = student)"),
          "n_samples": Axis(1000, integer(lo=1)),
          "steps": Axis(200, integer(lo=1), "log-spaced δ steps"),
          "ratio": Axis(1e-4, real(lo=0.0, hi=1.0, open_lo=True), "last δ / δ₀"),
          "max_newton_steps": Axis(50, integer(lo=1))},
    headline=("converged_step_fraction", "converged_path_fraction", "barrier", "permutation_point_loss",
              "permutation_point_index", "permutation_point_nullity", "permutation_point_kind",
              "certified_saddle_fraction"),
    figures=(Scatter(x="n_hidden", y="permutation_point_loss", colour="activation", logy=True),
             Scatter(x="seed", y="barrier", colour="activation", logy=True),
             Bars(y="certified_saddle_fraction", by="activation"),
             Bars(y="converged_path_fraction", by="activation")),
    description="permutation paths on the 2-D toy (Brea et al. 2019, Fig. 1)"))


# --- spurious: symmetric critical families of the Gaussian-input ReLU problem


def _spurious_job(config):
    """One named family of `SPURIOUS_FAMILIES` at one k (Safran & Shamir 2018; Arjevani & Field 2020)."""
    from symland.gaussian import spurious_family

    k = config["k"]
    points = spurious_family(config["family"], [k])
    if k not in points:
        raise RuntimeError(f"family {config['family']!r} was not followed to k = {k} (continuation failed)")
    p = points[k]
    scalars = {"loss": p.loss, "k_loss": k * p.loss, "grad_norm": p.grad_norm, "index": p.index,
               "nullity": p.nullity, "kind": str(p.kind), "min_eigenvalue": p.min_eigenvalue,
               "is_minimum": str(p.kind) == "minimum", "status": p.status}
    values, mult = zip(*p.multiplicities) if p.multiplicities else ((), ())
    arrays = {"z": np.asarray(p.z, dtype=np.float64), "eigenvalues": np.asarray(values, dtype=np.float64),
              "multiplicities": np.asarray(mult, dtype=np.int64)}
    return scalars, arrays


_FAMILIES = ("delta_sk1", "delta_sk", "delta_s2_sk2", "delta_s2_sk2_b")  # symland.gaussian.SPURIOUS_FAMILIES

register(Experiment(
    name="spurious", job=_spurious_job,
    axes={"family": Axis("delta_sk1", choice(_FAMILIES)),
          "k": Axis(7, integer(lo=2), "number of student = teacher neurons")},
    headline=("loss", "k_loss", "grad_norm", "index", "nullity", "kind", "status"),
    figures=(Scatter(x="k", y="k_loss", colour="family"),
             Bars(y="is_minimum", by="family")),
    description="symmetric spurious critical points of the Gaussian-input ReLU problem"))


# --- saddle: minimum-energy paths and certified saddles on the toy (Brea et al. 2019, Suppl. Fig. 4)


def _saddle_job(config):
    """Minimum-energy paths θ* → σ(θ*) of one toy teacher and their certified saddles (`permutation_saddles`).

    Headline: the fraction of pairs with a certified saddle, the lowest
    certified barrier with its saddle's index and nullity, and how many pairs
    have the permutation point on top of the path (`top`, Suppl. Fig. 4 A).
    """
    from symland._data import toy_problem
    from symland._saddle import permutation_saddles

    problem = toy_problem(config["activation"], seed=config["seed"], n_samples=config["n_samples"],
                          n_hidden=config["n_hidden"])
    pairs = "all" if config["pair"] == "all" else [tuple(config["pair"])]
    res = permutation_saddles(problem.model, problem.teacher, problem.x, problem.y, 1, pairs,
                              init=config["init"], images=config["images"], max_steps=config["max_steps"])
    certified = np.array([r.certified for r in res])
    barrier = np.array([r.barrier for r in res], dtype=np.float64)
    reports = [r.saddle_report for r in res]
    best = min((i for i in range(len(res)) if certified[i]), key=lambda i: barrier[i], default=None)
    failing = sorted({r.status for r in res if r.status != "converged"})
    scalars = {
        "n_pairs": len(res),
        "certified_fraction": float(certified.mean()),
        "barrier": None if best is None else float(barrier[best]),
        "saddle_index": None if best is None else reports[best].index,
        "saddle_nullity": None if best is None else reports[best].nullity,
        "top_fraction": float(np.mean([r.relation["relation"] == "top" for r in res])),
        "status": "converged" if not failing else failing[0],
    }
    arrays = {
        "pairs": np.array([[r.l, r.m] for r in res]),
        "certified": certified,
        "barrier": barrier,
        "saddle_index": np.array([-1 if rep is None else rep.index for rep in reports]),
        "saddle_grad_norm": np.array([np.nan if rep is None else rep.grad_norm for rep in reports]),
        "relation": np.array([r.relation["relation"] for r in res]),
        "init": np.array([r.init for r in res]),
        "status": np.array([r.status for r in res]),
    }
    return scalars, arrays


_INITS = ("auto", "fixed-delta", "network", "descent", "merged")  # symland._saddle.INITS, tested equal

register(Experiment(
    name="saddle", job=_saddle_job, check=_toy_check,
    axes={"activation": Axis("tanh", choice(_ACTIVATIONS)),
          "seed": Axis(1, seed()),
          "pair": Axis("all", neuron_pair(), '"all" or [l, m] (0-based)'),
          "n_hidden": Axis(5, integer(lo=2), "width of the hidden layer (teacher = student)"),
          "n_samples": Axis(1000, integer(lo=1)),
          "init": Axis("auto", choice(_INITS), "initial band (see permutation_saddles)"),
          "images": Axis(11, integer(lo=3), "images of the initial band"),
          "max_steps": Axis(3000, integer(lo=1), "FIRE steps per relaxation")},
    headline=("certified_fraction", "barrier", "saddle_index", "saddle_nullity", "top_fraction"),
    figures=(Bars(y="certified_fraction", by="activation"),
             Scatter(x="seed", y="barrier", colour="activation", logy=True),
             Scatter(x="n_hidden", y="barrier", colour="activation", logy=True)),
    description="minimum-energy paths and certified saddles on the 2-D toy (Brea et al. 2019, Suppl. Fig. 4)"))


# --- mnist: one Fig. 3 path (784-H-H-10 teacher on image data, Brea et al. 2019, §5)


def _mnist_check(config):
    from symland._data import IMAGE_SOURCES, find_fashion_mnist, idx_files

    if config["data"] == "fashion-mnist" and find_fashion_mnist() is None:
        raise ValueError("data: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist); "
                         "use data = \"digits\" or a folder of IDX files")
    if config["data"] not in IMAGE_SOURCES:
        idx_files(config["data"])  # ValueError naming the folder or the missing file
    if config["pair"] != "all" and max(config["pair"]) >= config["H"]:
        raise ValueError(f"pair: {config['pair']} is out of range for H = {config['H']}")


def _mnist_job(config):
    """One Fig. 3 run (`symland.experiments.mnist.fig3_path`): teacher, relabelled data, one path."""
    from symland.experiments.mnist import fig3_data, fig3_path

    x, labels, _, projection = fig3_data(config["data"], config["samples"], config["input_rtol"])
    pair = None if config["pair"] == "all" else tuple(config["pair"])
    run = fig3_path(x, labels, config["H"], config["seed"], layer=config["layer"], pair=pair,
                    steps=config["steps"], ratio=config["ratio"], epochs=config["epochs"],
                    method=config["method"], solver=config["solver"], max_hvps=config["max_hvps"],
                    gauge=config["gauge"])
    path = run["path"]
    statuses = path["status"]
    failing = sorted({s for s in statuses if s != "converged"})
    pp = path["permutation_point"]
    scalars = {
        "barrier": run["barrier"], "teacher_accuracy": run["accuracy"][0],
        "permutation_point_accuracy": run["accuracy"][-1],
        "converged_step_fraction": float(np.mean([s == "converged" for s in statuses])),
        "permutation_point_loss": pp["loss"], "permutation_point_kind": pp["kind"],
        # its Hessian index, and whether exact (False: a lower bound; PermutationPath.permutation_point_index)
        "permutation_point_index": pp["index"], "permutation_point_index_exact": pp["index_exact"],
        "cosine": run["cosine"], "dropped_input_directions": projection.dropped,
        "status": "converged" if not failing else failing[0],
    }
    arrays = {"distance": np.asarray(path["distance"], dtype=np.float64),
              "loss": np.asarray(path["loss"], dtype=np.float64),
              "accuracy": np.asarray(run["accuracy"], dtype=np.float64),
              "pair": np.asarray(run["pair"])}
    return scalars, arrays


register(Experiment(
    name="mnist", job=_mnist_job, check=_mnist_check,
    # 3: the permutation point's index (the even block's smallest by LOBPCG where the path finds them);
    # 2: inputs projected by fig3_data (axis input_rtol); 1 read the raw data
    version=3,
    axes={"data": Axis("fashion-mnist", text(), "fashion-mnist, digits, or a folder of IDX files"),
          "H": Axis(10, integer(lo=2), "width of both hidden layers"),
          "seed": Axis(0, seed()),
          "samples": Axis(10_000, integer(lo=1), "training samples"),
          # = symland._data.INPUT_RTOL (not imported: the driver process stays JAX-free)
          "input_rtol": Axis(1e-3, real(lo=0.0, hi=1.0, open_hi=True),
                             "inputs projected off directions with σ below this fraction of σ_max (0: raw)"),
          "steps": Axis(100, integer(lo=1), "log-spaced δ steps"),
          "ratio": Axis(1e-4, real(lo=0.0, hi=1.0, open_lo=True), "last δ / δ₀"),
          "layer": Axis(2, integer(lo=1, hi=2), "hidden layer of the pair"),
          "pair": Axis("all", neuron_pair(), '"all" (the most similar pair) or [l, m]'),
          "epochs": Axis(20, integer(lo=1), "teacher training epochs"),
          "method": Axis("auto", choice(("auto", "dense", "matrix-free")), "path solver"),
          # = symland._newton_krylov.PATH_SOLVERS (not imported: the driver stays JAX-free)
          "solver": Axis("trust-ncg", choice(("trust-ncg", "trust-krylov", "trust-pcg", "trust-gn")),
                         "matrix-free δ-step solver"),
          # = symland._newton_krylov.FIG3_HVP_BUDGET (not imported: the driver process stays JAX-free)
          "max_hvps": Axis(60, integer(lo=1), "Hessian-vector products per δ step (matrix-free)"),
          "gauge": Axis("auto", choice(("auto", "paper", "balanced", "upstream")),
                        "how δ is measured (symland.pair_distance)")},
    headline=("barrier", "teacher_accuracy", "permutation_point_accuracy", "converged_step_fraction",
              "permutation_point_loss", "permutation_point_kind", "permutation_point_index",
              "permutation_point_index_exact"),
    figures=(Scatter(x="H", y="barrier", colour="seed", logy=True),
             Bars(y="converged_step_fraction", by="H")),
    description="one Fig. 3 permutation path on image data (784-H-H-10, Brea et al. 2019, §5)"))
