"""The `_saddle` doctest, cold, in one process per XLA_FLAGS setting: total and XLA compilation seconds.

Run: PYTHONPATH=src python benchmarks/bench_xla_flags.py ["--xla_flag=value ..."] ...
(no argument: the settings of BENCHMARKS.md, "Test-suite time", twenty-eighth session). Each process
has JAX's persistent cache off, so everything compiles; a flag that compiles faster can still run slower.
"""

from __future__ import annotations

import os
import subprocess
import sys

CALL = r"""
import time, jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_enable_compilation_cache", False)
from jax._src import monitoring
tot = {}
monitoring.register_event_duration_secs_listener(lambda n, d, **k: tot.__setitem__(n, tot.get(n, 0.0) + d))
import doctest, symland._saddle as m
t = time.time()
r = doctest.testmod(m)
print(r.failed, round(time.time() - t, 1), round(tot.get("/jax/core/compile/backend_compile_duration", 0.0), 1))
"""

SETTINGS = ["", "--xla_backend_optimization_level=0", "--xla_backend_optimization_level=1",
            "--xla_cpu_use_fusion_emitters=false", "--xla_cpu_use_thunk_runtime=false",
            "--xla_cpu_parallel_codegen_split_count=1"]


def main(argv):
    print("XLA_FLAGS | doctest failures | total s | XLA compilation s")
    for flags in argv or SETTINGS:
        env = dict(os.environ, XLA_FLAGS=flags)
        res = subprocess.run([sys.executable, "-c", CALL], env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"XLA_FLAGS={flags!r}: failed:\n{res.stderr[-2000:]}")
        failed, total, xla = res.stdout.split()[-3:]
        print(f"[{flags}] | {failed} | {total} | {xla}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
