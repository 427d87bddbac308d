import os
import pathlib

os.environ.setdefault("MPLBACKEND", "Agg")
# One persistent XLA compilation cache for the whole run, shared by the xdist workers and by the
# processes the tests start (CLI subprocesses, Dask workers), which inherit the environment. The
# library builds its jitted closures per call, so the same computation on the same shapes is
# otherwise compiled again in every test that runs it: one `permutation_saddle` on the tanh toy, which
# the saddle tests and their doctest each repeat, takes 32.2 s cold and 4.2 s again in the same process
# (`benchmarks/bench_compile_cache.py`; BENCHMARKS.md, "Test-suite time"). The key covers the HLO, the
# compile options and JAX's version, so a hit is the same executable. One cold run writes ≈ 36 MB, and
# nothing is evicted (a size limit needs the `filelock` package, and without it JAX only warns and
# caches nothing): `make clean` removes it with .pytest_cache.
_CACHE = pathlib.Path(__file__).resolve().parent.parent / ".pytest_cache" / "jax-compilation"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
