"""What the test suite's persistent XLA compilation cache saves (tests/conftest.py).

Run: PYTHONPATH=src python benchmarks/bench_compile_cache.py
One `permutation_saddle` on the tanh toy (seed 2, pair 2 & 3: the `_saddle` doctest and the
`tests/test_saddle.py` fixture), timed in three ways with one fresh cache directory: the first call
(cache empty: everything compiles), a second call in the same process (the library's jitted
closures are new objects, so only the persistent cache can serve them), and a first call in a
second process (compilations from the cache; tracing remains).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

CALL = """
import time, jax
jax.config.update("jax_enable_x64", True)
import symland as s
toy = s.toy_problem("tanh", seed=2)
for label in {labels!r}:
    t = time.perf_counter()
    r = s.permutation_saddle(toy.model, toy.teacher, toy.x, toy.y, 1, 2, 3)
    print(f"  {{label}}: {{time.perf_counter() - t:.1f}} s ({{r.status}}, certified {{r.certified}})",
          flush=True)
"""


def run(labels, cache):
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    subprocess.run([sys.executable, "-c", CALL.format(labels=labels)], env=env, check=True)


def main():
    with tempfile.TemporaryDirectory() as cache:
        print("permutation_saddle, tanh toy seed 2, pair 2 & 3, one fresh compilation cache:")
        t = time.perf_counter()
        run(["process 1, first call (cache empty)", "process 1, second call"], cache)
        run(["process 2, first call"], cache)
        print(f"  ({time.perf_counter() - t:.0f} s in all)")


if __name__ == "__main__":
    main()
