"""Coverage of certified saddles on random smooth teachers (issue 9).

Run: PYTHONPATH=src .venv/bin/python benchmarks/scan_saddles.py [--seeds 1:6] [--activations tanh softplus]
     [--samples 1000] [--init auto] [--gaps]

For every seed and activation: the 2-5-1 toy teacher (`toy_problem`, its
random teacher and N(0, I) inputs), all 10 pairs through
`permutation_saddles` in one batched call. Prints per teacher the number of
pairs with a certified saddle (converged band, refined maximum a strict
saddle with ‖∇L‖∞ ≤ 1e−10, dense-Hessian index), the initialisations used,
the relations to the permutation point, and the total coverage; then, for
the pairs whose fixed-δ path is complete and whose θ_{l⇔m} has index 1,
whether the certified saddle agrees with θ_{l⇔m} or lies below it (issue 9's
consistency check).

With `--gaps`, only the transition network of each teacher is built
(without links) and the script says whether some descent from a plateau
reaches θ*'s class: the teachers where `plateau_links` runs are those where
none does.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np
from jax.flatten_util import ravel_pytree

import symland as s
from symland._network import ODD_ACTIVATIONS
from symland._saddle import _PairLoss, merged_configuration
from symland._transition_network import transition_network


def seed_range(text):
    a, b = (int(t) for t in text.split(":"))
    return range(a, b)


def descent_reaches_theta_star(toy) -> bool:
    """Whether a descent from a plateau of the toy's transition network (no links) ends in θ*'s class."""
    x0, unravel = ravel_pytree(toy.teacher)
    n = toy.teacher[0][0].shape[0]
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    net = transition_network(
        _PairLoss(toy.model, "mse", toy.teacher), np.asarray(x0), (toy.x, toy.y), layer=1, n_neurons=n,
        unravel=unravel, pairs=pairs, closed_form_hessian=True, signed=toy.model.activation in ODD_ACTIVATIONS,
        merged_points=[np.asarray(ravel_pytree(merged_configuration(toy.teacher, 1, a, b))[0]) for a, b in pairs])
    return any(e.node == 0 for e in net.ends)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=seed_range, default=seed_range("1:6"))
    ap.add_argument("--activations", nargs="+", default=["tanh", "softplus"])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--init", default="auto")
    ap.add_argument("--gaps", action="store_true", help="only say where no descent reaches θ* (links run there)")
    args = ap.parse_args()
    if args.gaps:
        for act in args.activations:
            for seed in args.seeds:
                toy = s.toy_problem(act, seed=seed, n_samples=args.samples)
                print(f"{act} seed {seed}: {'a descent reaches θ*' if descent_reaches_theta_star(toy) else 'NO DESCENT REACHES θ*'}",
                      flush=True)
        return
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
            cert = [r for r in res if r.certified]
            if cert:
                print(f"  certified: barriers {min(r.barrier for r in cert):.5g}…{max(r.barrier for r in cert):.5g}, "
                      f"largest rise above the saddle {max(r.mep.discretisation_error / r.barrier for r in cert):.2%}"
                      f" of the barrier, largest saddle ‖∇L‖∞ {max(r.saddle_report.grad_norm for r in cert):.2g}, "
                      f"indices {sorted({r.saddle_report.index for r in cert})}", flush=True)
    print(f"coverage: {certified}/{total} = {100.0 * certified / total:.1f} % of pairs with a certified saddle")
    if failures:
        print("not certified (status, saddle kind, what the transition network gave):", dict(failures))
    print("consistency, pairs with a complete fixed-δ path and θ_{l⇔m} of index 1: the certified saddle",
          dict(consistency) or "no such pair")


if __name__ == "__main__":
    main()
