"""Sweeps over grids of experiment configurations on Dask distributed (issue 11).

A TOML spec names an experiment of `EXPERIMENTS` and the axes of its grid
(`load_spec`); `run_sweep` runs every job not already complete in a
`ResultStore` (one folder per job, keyed by the hash of its resolved
configuration, written atomically) on an embedded `LocalCluster` or an
existing scheduler, and writes `summary.csv`. User guide: docs/sweeps.md.
"""

from symland.sweep._experiments import EXPERIMENTS as EXPERIMENTS
from symland.sweep._experiments import Axis as Axis
from symland.sweep._experiments import Bars as Bars
from symland.sweep._experiments import Experiment as Experiment
from symland.sweep._experiments import Scatter as Scatter
from symland.sweep._experiments import get_experiment as get_experiment
from symland.sweep._experiments import register as register
from symland.sweep._spec import Job as Job
from symland.sweep._spec import SweepSpec as SweepSpec
from symland.sweep._spec import job_hash as job_hash
from symland.sweep._spec import load_spec as load_spec
from symland.sweep._spec import parse_spec as parse_spec
from symland.sweep._store import FAILED as FAILED
from symland.sweep._store import ResultStore as ResultStore
from symland.sweep._engine import SweepResult as SweepResult
from symland.sweep._engine import WORKER_ENV as WORKER_ENV
from symland.sweep._engine import check_scheduler as check_scheduler
from symland.sweep._engine import execute_job as execute_job
from symland.sweep._engine import local_cluster as local_cluster
from symland.sweep._engine import run_sweep as run_sweep
