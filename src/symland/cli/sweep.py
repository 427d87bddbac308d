"""`symland sweep SPEC`: run a grid of experiment jobs on Dask into a resumable result store."""

from __future__ import annotations

from ._options import int_arg, output_dir


def add_parser(subparsers):
    p = subparsers.add_parser(
        "sweep", help="run a grid of jobs (TOML spec) on Dask into a resumable result store",
        description="Expand SPEC (TOML: experiment, [grid], [fixed], out) into jobs and run every job "
                    "not already complete in OUT, on an embedded LocalCluster or an existing Dask "
                    "scheduler. See docs/sweeps.md.")
    p.add_argument("spec", help="TOML spec file")
    p.add_argument("--out", default=None, help="result store folder (overrides `out` in the spec)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run on this Dask scheduler instead of an embedded LocalCluster")
    p.add_argument("--workers", type=int_arg("workers", lo=0), default=None,
                   help="LocalCluster worker processes (default: one per core); 0: run the jobs "
                        "one after another in this process, without Dask")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    return p


CONNECT_TIMEOUT_S = 5.0


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """`ValueError` naming `scheduler` unless a TCP connection to `tcp://HOST:PORT` opens within `timeout` s.

    Checked before the store is created: Dask's client would wait a minute and leave an empty store.
    """
    import socket

    host, _, port = address.removeprefix("tcp://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise ValueError(f"scheduler: cannot connect to {address} ({err.strerror or type(err).__name__})") from None


def run(args) -> int:
    from symland.sweep import ResultStore, check_scheduler, load_spec, run_sweep

    spec = load_spec(args.spec)
    out = args.out if args.out is not None else spec.out
    if out is None:
        raise ValueError("out: give --out or out = \"...\" in the spec")
    out = output_dir(out)
    if args.scheduler is not None:
        address = check_scheduler(args.scheduler)
        if args.workers is not None:
            raise ValueError("workers: only for the embedded LocalCluster, not with --scheduler")
        check_reachable(address)
    spec.jobs()  # every grid value checked by its axis
    held = ResultStore(out).experiment() if out.is_dir() else None  # a damaged store is refused here
    if held is not None and held != spec.experiment:
        raise ValueError(f"out: {str(out)!r} holds a {held!r} sweep, not {spec.experiment!r}; use another folder")
    result = run_sweep(spec, out, scheduler=args.scheduler, workers=args.workers,
                       progress=not args.no_progress)
    print(f"{result.total} jobs: {result.skipped} already complete, {result.done} done, "
          f"{result.failed} failed")
    print(f"summary: {result.summary}")
    return 0 if result.ok else 1
