"""Tensor decomposition: time of `tensor_minima` for 1,000 random starts at k = d = 10 (issue 12 target ≤ 2 min).

Usage: PYTHONPATH=src python benchmarks/bench_tensor.py [--d 10] [--p 3] [--starts 1000]

Prints wall time and process CPU time (user + system) of one call, compilation
included, and a second call (compiled). On a shared machine wall time is an upper
bound; CPU time / number of cores is the idle-machine estimate.
"""

import argparse
import resource
import time

from symland import tensor_minima


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--p", type=int, default=3)
    ap.add_argument("--starts", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    for i in range(a.repeat):
        c, t = cpu(), time.perf_counter()
        r = tensor_minima(a.d, p=a.p, n_starts=a.starts)
        print(f"call {i + 1}: d = k = {a.d}, p = {a.p}, {a.starts} starts: wall {time.perf_counter() - t:.1f} s, "
              f"CPU {cpu() - c:.1f} s; kinds {r.kinds()}")


if __name__ == "__main__":
    main()
