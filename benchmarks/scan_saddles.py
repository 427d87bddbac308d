"""Coverage of certified saddles on random smooth teachers (issue 9).

Run: PYTHONPATH=src .venv/bin/python benchmarks/scan_saddles.py [--seeds 1:6] [--activations tanh softplus]
     [--samples 1000] [--init auto]

For every seed and activation: the 2-5-1 toy teacher (`toy_problem`, its
random teacher and N(0, I) inputs), all 10 pairs through
`permutation_saddles` in one batched call. Prints per teacher the number of
pairs with a certified saddle (converged band, refined maximum a strict
saddle with ‖∇L‖∞ ≤ 1e−10, dense-Hessian index), the initialisations used,
the relations to the permutation point, and the total coverage; then, for
the pairs whose fixed-δ path is complete and whose θ_{l⇔m} has index 1,
whether the certified saddle agrees with θ_{l⇔m} or lies below it (issue 9's
consistency check).
"""

from __future__ import annotations

import argparse
import collections
import time

import symland as s


def seed_range(text):
    a, b = (int(t) for t in text.split(":"))
    return range(a, b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=seed_range, default=seed_range("1:6"))
    ap.add_argument("--activations", nargs="+", default=["tanh", "softplus"])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--init", default="auto")
    args = ap.parse_args()
    total = certified = 0
    failures = collections.Counter()
    consistency = collections.Counter()  # complete fixed-δ path, θ_{l⇔m} of index 1: MEP saddle vs θ_{l⇔m}
    for act in args.activations:
        for seed in args.seeds:
            toy = s.toy_problem(act, seed=seed, n_samples=args.samples)
            t = time.perf_counter()
            res = s.permutation_saddles(toy.model, toy.teacher, toy.x, toy.y, 1, "all", init=args.init)
            dt = time.perf_counter() - t
            ok = sum(r.certified for r in res)
            total += len(res)
            certified += ok
            for r in res:
                if not r.certified:
                    failures[(r.status, str(r.saddle_report.kind) if r.saddle_report else "none",
                              f"network: {r.network}")] += 1
                pp = r.permutation_point
                if r.certified and pp is not None and pp.index == 1:
                    dL = r.saddle_report.loss - pp.loss
                    consistency["agrees (|ΔL| ≤ 1e-10·L)" if abs(dL) <= 1e-10 * pp.loss
                                else "lies below" if dL < 0 else "lies ABOVE"] += 1
            inits = collections.Counter(r.init for r in res)
            rel = collections.Counter(f"{r.relation['relation']}/{r.relation['route']}" for r in res)
            print(f"{act} seed {seed}: {ok}/{len(res)} certified ({dt:.1f} s); init {dict(inits)}; "
                  f"relations {dict(rel)}", flush=True)
    print(f"coverage: {certified}/{total} = {100.0 * certified / total:.1f} % of pairs with a certified saddle")
    if failures:
        print("not certified (status, saddle kind, what the transition network gave):", dict(failures))
    print("consistency, pairs with a complete fixed-δ path and θ_{l⇔m} of index 1: the certified saddle",
          dict(consistency) or "no such pair")


if __name__ == "__main__":
    main()
