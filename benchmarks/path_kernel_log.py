"""Which dense-path kernels a test run builds: a pytest plugin that logs `_path_kernels`' cache misses.

Run (the thirtieth session's figure of 12 keys, BENCHMARKS.md "Test-suite time", at 410caaf, whose
kernels were keyed by gtol and max_newton_steps as well):
    PYTHONPATH=src:benchmarks PATH_KERNEL_LOG=/tmp/kernels.jsonl \\
        .venv/bin/python -m pytest -q -n 2 -m "not slow" -p path_kernel_log
Each miss appends one JSON line: the test, then `_path_kernels`' arguments (model, layer, loss, …,
gauge), so keys that differ only in arguments that need not be compiled in show up side by side.
"""

from __future__ import annotations

import json
import os

_LOG = os.environ.get("PATH_KERNEL_LOG", "path-kernels.jsonl")


def pytest_configure(config):
    import symland._path as path

    cached = path._path_kernels

    def logged(*args, **kwargs):
        misses = cached.cache_info().misses
        out = cached(*args, **kwargs)
        if cached.cache_info().misses > misses:
            with open(_LOG, "a") as f:
                f.write(json.dumps([os.environ.get("PYTEST_CURRENT_TEST", "?"), *map(repr, args),
                                    *(f"{k}={v!r}" for k, v in kwargs.items())]) + "\n")
        return out

    logged.cache_info = cached.cache_info
    path._path_kernels = logged
