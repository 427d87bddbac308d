"""The sweep result store: one folder per job, keyed by the hash of its resolved configuration.

Layout of a store `OUT/`:

    sweep.json              the experiment and the latest spec run into this store
    jobs/<hash16>/          one finished job (hash16: first 16 hex digits of `job_hash`)
        result.json         configuration, hash, status, scalars, wall time, host, traceback
        arrays.npz          the job's arrays (absent when it returned none)
    jobs/.tmp-*             a job folder being written (removed by the next run)
    summary.csv             one row per job in the store

Every file is written under a temporary name and renamed into place, and a
job folder is built complete under `jobs/.tmp-*` and then renamed to its final
name, so a reader (or a rerun after SIGKILL) sees a job either whole or not at
all. Only the process that runs the sweep writes the store; workers return
their results to it, so they need no shared filesystem.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from .._io import atomic_write_bytes
from ._experiments import get_experiment

FAILED = "failed"  # the RESULTS name of a job that raised


def _order(value):
    """Sort key: numbers before strings before lists, each in natural order."""
    if isinstance(value, (bool, int, float)):
        return (0, float(value), "")
    if isinstance(value, str):
        return (1, 0.0, value)
    return (2, 0.0, json.dumps(value, sort_keys=True))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


class ResultStore:
    """The folder `out` holding a sweep's job results (layout in the module docstring).

    **Arguments:** `out`, the store folder (created by `open`).

    Example:
    >>> import tempfile
    >>> from symland.sweep import ResultStore, load_spec
    >>> store = ResultStore(tempfile.mkdtemp()).open("selftest")
    >>> store.completed_hashes()
    set()
    """

    def __init__(self, out):
        self.out = Path(out)
        self.jobs_dir = self.out / "jobs"

    # -- opening

    def experiment(self) -> str | None:
        """The experiment this store holds, or None for a new store."""
        meta = self.out / "sweep.json"
        if not meta.is_file():
            return None
        try:
            name = json.loads(meta.read_text(encoding="utf-8"))["experiment"]
        except (ValueError, KeyError, TypeError) as err:  # bad JSON or UTF-8, not an object, no name
            raise ValueError(f"out: {str(meta)!r} is damaged, not a sweep store's record "
                             f"({type(err).__name__}); use another folder") from None
        if not isinstance(name, str):
            raise ValueError(f"out: {str(meta)!r} is damaged: 'experiment' is not a name")
        return name

    def open(self, experiment: str, spec: dict | None = None) -> "ResultStore":
        """Create the store for `experiment` (or reopen it), remove stale temporaries.

        `ValueError` if `out` is a file or holds another experiment's results.
        """
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"out: {str(self.out)!r} exists and is not a folder")
        held = self.experiment() if self.out.is_dir() else None
        if held is not None and held != experiment:
            raise ValueError(f"out: {str(self.out)!r} holds a {held!r} sweep, not {experiment!r}; "
                             "use another folder")
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.jobs_dir.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in self.jobs_dir.glob(".old-*"):
            shutil.rmtree(stale, ignore_errors=True)
        meta = {"experiment": experiment, "version": get_experiment(experiment).version}
        if spec is not None:
            meta["spec"] = spec
        atomic_write_bytes(self.out / "sweep.json", json.dumps(meta, indent=1).encode())
        return self

    # -- jobs

    def job_dir(self, job_hash: str) -> Path:
        return self.jobs_dir / job_hash[:16]

    def read(self, job_hash: str) -> dict | None:
        """The record of a job, or None if it is not in the store (or belongs to another hash)."""
        path = self.job_dir(job_hash) / "result.json"
        try:
            record = json.loads(path.read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None
        return record if record.get("hash") == job_hash else None

    def is_complete(self, job_hash: str) -> bool:
        """True when the job's record exists and its status is not `failed`."""
        record = self.read(job_hash)
        return record is not None and record["status"] != FAILED

    def completed_hashes(self) -> set:
        return {r["hash"] for r in self.records() if r["status"] != FAILED}

    def write(self, record: dict, arrays: dict | None = None) -> bool:
        """Store one job atomically; returns False if a complete record was already there (kept).

        `record` must hold `hash` and `status`; `arrays` (name → array) go to
        `arrays.npz`. A previous `failed` record of the same job is replaced.
        """
        final = self.job_dir(record["hash"])
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=self.jobs_dir))
        try:
            if arrays:
                buf = io.BytesIO()
                np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
                (tmp / "arrays.npz").write_bytes(buf.getvalue())
            (tmp / "result.json").write_text(json.dumps(record, indent=1, sort_keys=True))
            if final.exists():
                if self.is_complete(record["hash"]):
                    shutil.rmtree(tmp, ignore_errors=True)
                    return False
                old = self.jobs_dir / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
                os.rename(final, old)
                os.rename(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True

    def records(self) -> list[dict]:
        """Every job record in the store, sorted by configuration."""
        out = []
        if not self.jobs_dir.is_dir():
            return out
        for d in self.jobs_dir.iterdir():
            if d.name.startswith("."):
                continue
            try:
                record = json.loads((d / "result.json").read_text())
            except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
                continue
            if isinstance(record, dict) and isinstance(record.get("config"), dict):  # skip damaged ones
                out.append(record)
        return sorted(out, key=lambda r: tuple(_order(r["config"][k]) for k in sorted(r["config"])))

    def arrays(self, job_hash: str) -> dict:
        """The arrays of a job (empty dict when it has none)."""
        path = self.job_dir(job_hash) / "arrays.npz"
        if not path.is_file():
            return {}
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    # -- summary

    def summary_rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of `summary.csv`: config columns, status, wall time, headline, error."""
        experiment = get_experiment(self.experiment())
        header = ["hash", *experiment.axes, "status", "wall_time", *experiment.headline, "error"]
        rows = []
        for r in self.records():
            scalars = r.get("scalars") or {}
            rows.append([r["hash"][:16], *(_cell(r["config"].get(k)) for k in experiment.axes),
                         r["status"], f"{r.get('wall_time', 0.0):.3f}",
                         *(_cell(scalars.get(k)) for k in experiment.headline),
                         _cell(r.get("error"))])
        return header, rows

    def write_summary(self) -> Path:
        """Write `summary.csv` (atomically) from the job records; returns its path."""
        header, rows = self.summary_rows()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return atomic_write_bytes(self.out / "summary.csv", buf.getvalue().encode("utf-8"))
