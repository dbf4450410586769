"""Latency-predictor accuracy per layer kind on this host (issue 3 figure).

Every zoo model is profiled twice on this machine (``profile_graph``, 1 thread). Three
per-layer-type regressions are fitted on the same random 80 % of the first profiles' nodes
(stratified by kind) and scored on the other 20 % (R², MAE, share within ±10 %):

* ``layer_regression``: ``LayerTypeRegressor()`` (default: per-kind log-space randomised
  trees on the geometry features);
* ``loglog_or_linear``: ``form="auto"`` (per kind, linear or log-log by leave-one-out);
* baseline ``plain_linear``: a plain linear per-type regression on the Pre-DNNOff Table 4.1
  features (``form="linear", features="table4.1"``).

``leave_one_model_out`` is the harder test: fit on every other model, predict one unseen
model's nodes, pooled over models.

``repeatability`` scores the second profile against the first with the same metrics: on a
shared 2-core machine no predictor can agree with a measurement more often than two
measurements agree with each other, so it is the ceiling to read the figures against.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import save

from edgesplit.graph import trace
from edgesplit.models import ZOO, build
from edgesplit.predict.accuracy import Dataset, holdout_report, metrics, split_indices
from edgesplit.predict.layer_regression import LayerTypeRegressor
from edgesplit.predict.profile import profile_graph


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="four small models, 3 repeats")
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = ["mnist_cnn", "lenet", "alexnet", "mobilenet_v2"] if args.quick else list(ZOO)
    repeats = 3 if args.quick else 5
    nodes, first, second, owner = [], [], [], []
    for name in names:
        module, x = build(name)
        g = trace(module, x, name=name)
        a = profile_graph(g, x, threads=1, repeats=repeats, warmup=1).node_seconds()
        b = profile_graph(g, x, threads=1, repeats=repeats, warmup=1).node_seconds()
        nodes += list(g.nodes)
        first += [a[n.name] for n in g.nodes]
        second += [b[n.name] for n in g.nodes]
        owner += [name] * len(g.nodes)
        print(f"profiled {name}: {len(g.nodes)} nodes", flush=True)
    data = Dataset(tuple(nodes), np.array(first), tuple(owner))
    makers = {
        "layer_regression": LayerTypeRegressor,
        "loglog_or_linear": lambda: LayerTypeRegressor(form="auto", features="geometry"),
        "plain_linear": lambda: LayerTypeRegressor(form="linear", features="table4.1"),
    }
    reports = {k: holdout_report(make, data) for k, make in makers.items()}
    ours, base = reports["layer_regression"], reports["plain_linear"]
    lomo = {}
    for key, make in makers.items():
        pred = np.zeros(len(nodes))
        for name in names:
            held = np.array([o == name for o in owner])
            train = [nodes[i] for i in np.flatnonzero(~held)]
            est = make().fit(train, data.seconds[~held])
            pred[held] = est.predict([nodes[i] for i in np.flatnonzero(held)])
        lomo[key] = metrics(pred, data.seconds)
    _, test = split_indices([n.kind for n in nodes], 0.2, 0)
    rep = metrics(np.array(second)[test], np.array(first)[test])
    for label, r in reports.items():
        o, u = r["overall"], lomo[label]
        print(
            f"{label:17s} R² {o['r2']:.3f}  within ±10 % {o['within_10pct']:.1%}  "
            f"median rel. error {o['median_rel_error']:.1%} | unseen model: within ±10 % "
            f"{u['within_10pct']:.1%}, median rel. error {u['median_rel_error']:.1%}"
        )
    print(
        f"{'repeatability':17s} R² {rep['r2']:.3f}  within ±10 % {rep['within_10pct']:.1%}  "
        f"median rel. error {rep['median_rel_error']:.1%}"
    )
    ratio = ours["overall"]["within_10pct"] / max(base["overall"]["within_10pct"], 1e-9)
    print(f"share within ±10 %: layer regression / plain linear = {ratio:.2f}x")
    save(
        "plan_predictor_accuracy",
        {
            "quick": args.quick,
            "models": names,
            "repeats": repeats,
            "threads": 1,
            "samples": len(nodes),
            "holdout_20pct": reports,
            "leave_one_model_out": lomo,
            "repeatability_second_profile": rep,
        },
    )


if __name__ == "__main__":
    main()
