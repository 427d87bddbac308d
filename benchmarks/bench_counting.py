"""Timings of the exact counting code (issue 4). Run from the repository root:

    PYTHONPATH=src python benchmarks/bench_counting.py

Prints a markdown table: best of `REPEAT` wall-clock runs for each case.
"""

import contextlib
import importlib.util
import io
import platform
import subprocess
import sys
import time

import symland.cli
from symland.counting import T, count_permutation_points

REPEAT = 5


def best(fn, repeat=REPEAT):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cli_table():
    # Only the subcommands present on this checkout (the dispatcher imports them all).
    symland.cli.COMMANDS = tuple(c for c in symland.cli.COMMANDS
                                 if importlib.util.find_spec(f"symland.cli.{c}") is not None)
    with contextlib.redirect_stdout(io.StringIO()):
        rc = symland.cli.main(["count", "T", "--K", "1:5", "--n", "2:100"])
    assert rc == 0


CLI_SNIPPET = (
    "import importlib.util, symland.cli as c; "
    "c.COMMANDS = tuple(x for x in c.COMMANDS if importlib.util.find_spec('symland.cli.' + x)); "
    "raise SystemExit(c.main(['count', 'T', '--K', '1:5', '--n', '2:100']))"
)


def cli_subprocess():
    subprocess.run([sys.executable, "-c", CLI_SNIPPET], check=True, stdout=subprocess.DEVNULL)


def main():
    rows = [
        ("`T(50, 1000)`", best(lambda: T(50, 1000)), "< 1 s"),
        ("`T(500, 1000)` (alternating-sum branch of `stirling2`)", best(lambda: T(500, 1000)), "-"),
        ("`T(5, 10**6)`", best(lambda: T(5, 10**6)), "-"),
        ("`count_permutation_points((784, 1000, 1000, 10), K=20)`",
         best(lambda: count_permutation_points((784, 1000, 1000, 10), K=20)), "< 1 s"),
        ("`symland count T --K 1:5 --n 2:100` (in process, `main([...])`)", best(cli_table), "< 2 s"),
        ("same, fresh interpreter (`python -c`, imports included)", best(cli_subprocess, 3), "< 2 s"),
    ]
    print(f"python {platform.python_version()}, {platform.machine()}, best of {REPEAT} (3 for the subprocess)")
    print()
    print("| case | time | target |")
    print("|---|---:|---:|")
    for name, t, target in rows:
        print(f"| {name} | {t * 1e3:.2f} ms | {target} |")


if __name__ == "__main__":
    main()
