"""Sweep specs: a TOML file naming an experiment and the axes of its grid, expanded into jobs.

    experiment = "toy"            # a name registered in symland.sweep.EXPERIMENTS
    out = "runs/toy"              # optional; relative to the spec file; --out overrides it
    [fixed]                       # optional: one value per axis, for every job
    steps = 50
    [grid]                        # the axes: each a non-empty list; jobs = their product
    activation = ["relu", "softplus"]
    seed = [1, 2, 3]

Every value is checked by its axis before any job runs; axes not named take
the experiment's default. Each job's configuration is fully resolved (every
axis present), and `job_hash` keys the result store by it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import tomllib
from pathlib import Path

from ._experiments import Experiment, get_experiment

SPEC_KEYS = ("experiment", "out", "grid", "fixed", "description")


@dataclasses.dataclass(frozen=True)
class Job:
    """One point of the grid: its fully resolved configuration and the hash that keys it."""

    experiment: str
    config: dict
    hash: str


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A parsed spec: experiment, grid (axis → list of values), fixed values, output folder.

    `jobs` expands the grid (product of the axes in the order given) into `Job`s,
    one per distinct resolved configuration.
    """

    experiment: str
    grid: dict
    fixed: dict
    out: Path | None = None
    description: str = ""

    @property
    def definition(self) -> Experiment:
        return get_experiment(self.experiment)

    def jobs(self) -> list[Job]:
        exp = self.definition
        exp.resolve(self.fixed, where="fixed")
        keys = list(self.grid)
        jobs, seen = [], set()
        for values in itertools.product(*(self.grid[k] for k in keys)):
            config = exp.resolve({**self.fixed, **dict(zip(keys, values))}, where="grid")
            h = job_hash(exp, config)
            if h not in seen:
                seen.add(h)
                jobs.append(Job(exp.name, config, h))
        return jobs

    def to_dict(self) -> dict:
        return {"experiment": self.experiment, "grid": self.grid, "fixed": self.fixed,
                "description": self.description}


def job_hash(experiment: Experiment, config: dict) -> str:
    """sha256 of the sorted JSON of (experiment name, version, resolved configuration)."""
    blob = json.dumps({"experiment": experiment.name, "version": experiment.version, "config": config},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def parse_spec(data: dict, *, base: Path | None = None) -> SweepSpec:
    """A `SweepSpec` from the dict of a TOML spec; every error names the key at fault.

    **Arguments:** `data` (the parsed TOML), `base` (folder that a relative
    `out` is taken relative to; the current folder if None).
    **Returns:** a `SweepSpec` whose jobs have all been checked.
    """
    for key in data:
        if key not in SPEC_KEYS:
            raise ValueError(f"spec: unknown key {key!r}; a spec has {', '.join(SPEC_KEYS)}")
    if "experiment" not in data:
        raise ValueError("experiment: missing; name one, e.g. experiment = \"toy\"")
    exp = get_experiment(data["experiment"])
    grid = data.get("grid", {})
    fixed = data.get("fixed", {})
    if not isinstance(grid, dict):
        raise ValueError("grid: must be a table [grid] of axis = [values]")
    if not isinstance(fixed, dict):
        raise ValueError("fixed: must be a table [fixed] of axis = value")
    if not grid:
        raise ValueError("grid: empty grid; give at least one axis with a list of values under [grid]")
    for key, values in grid.items():
        if key not in exp.axes:
            raise ValueError(f"grid.{key}: unknown axis of experiment {exp.name!r}; axes: {', '.join(exp.axes)}")
        if not isinstance(values, list):
            raise ValueError(f"grid.{key}: expected a list of values, got {values!r}")
        if not values:
            raise ValueError(f"grid.{key}: empty list, so the grid has no jobs")
        if key in fixed:
            raise ValueError(f"fixed.{key}: also an axis of [grid]; give it in one place")
    exp.resolve(fixed, where="fixed")
    out = data.get("out")
    if out is not None:
        if not isinstance(out, str) or not out.strip():
            raise ValueError(f"out: expected a folder path, got {out!r}")
        out = Path(out)
        if base is not None and not out.is_absolute():
            out = base / out
    spec = SweepSpec(exp.name, dict(grid), dict(fixed), out, str(data.get("description", "")))
    spec.jobs()  # check every value now, before anything runs
    return spec


def load_spec(path) -> SweepSpec:
    """Read and check a TOML sweep spec (see the module docstring for the format).

    **Returns:** a `SweepSpec`. `FileNotFoundError` if `path` does not exist,
    `ValueError` naming the problem (malformed TOML, unknown experiment, unknown
    axis, empty grid, bad value) otherwise.

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.toml"
    >>> _ = p.write_text('experiment = "selftest"\\n[grid]\\nx = [1, 2, 3]\\n')
    >>> [job.config["x"] for job in load_spec(p).jobs()]
    [1, 2, 3]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spec: no file at {str(path)!r}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"spec: malformed TOML in {path.name}: {err}") from None
    except UnicodeDecodeError:
        raise ValueError(f"spec: {path.name} is not UTF-8 text") from None
    return parse_spec(data, base=path.resolve().parent)
