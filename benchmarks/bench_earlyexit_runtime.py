"""Measured against predicted latency of real early-exit runs on the engine, per exit (issue 7 figure).

This process (the mobile tier), an edge and a cloud ``edgesplit serve`` process run the
paper's BranchyNet on loopback with a plan that uses all three tiers: trunk segment 1 on
the mobile device, segments 2-3 on the edge, 4-5 in the cloud, each side branch on the
tier of its junction; the edge relays the cloud's stages (mobile -> edge -> cloud). Exit
``k`` runs on the engine with the ``index`` rule: nothing past the exit is computed or
sent. All three processes are this machine with one torch thread, so the prediction uses
per-type regressions fitted to a one-thread profile of this machine for every tier
(speed factors 1) and links of 10 Gbit/s (loopback moves bytes far faster than a request
costs). Eq. 4.6 has no per-message cost; the same run measures the loopback round trip
(``GET /healthz``) and reports ``predicted + hops x RTT`` as well. Every result is checked
``torch.equal`` to ``forward_exit``. ``--quick``: 5 requests.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import torch
from _common import save

from edgesplit.earlyexit.instance import EarlyExitInstance, load_instance_problem
from edgesplit.earlyexit.problem import CLOUD, EDGE, MOBILE, to_plan
from edgesplit.earlyexit.run import launch, runnable_plan
from edgesplit.experiments.zuo2024 import ASSUMED_ACCURACIES
from edgesplit.runtime.exits import link_bytes, open_exits, with_rule
from edgesplit.runtime.stages import fingerprint
from edgesplit.system.topology import Topology


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    requests = 5 if args.quick else 30
    inst = EarlyExitInstance.model_validate({
        "accuracies": ASSUMED_ACCURACIES, "predictors": "fitted", "include_loading": False,
        "cloud_speed_factor": 1.0, "mobile_speed_factor": 1.0,
        "wireless": {"rate_mbps": 10000}, "wired": {"rate_mbps": 10000},
    })  # fmt: skip
    problem, graph, net, x = load_instance_problem(inst)
    seg_tier = {1: MOBILE, 2: EDGE, 3: EDGE, 4: CLOUD, 5: CLOUD}
    genes = [0] * problem.n_layers
    for k, seg in enumerate(problem.trunk, start=1):
        for i in seg:
            genes[i] = seg_tier[k]
    for k, br in enumerate(problem.branches, start=1):
        for i in br:
            genes[i] = seg_tier[k]
    plan = runnable_plan(to_plan(problem, genes, "hand"), problem, graph, None, 0.6)
    fp = fingerprint(graph)
    with tempfile.TemporaryDirectory() as tmp, launch(plan, Path(tmp), 1e10, 1e10) as topo_doc:
        topo = Topology.model_validate(topo_doc)
        with httpx.Client() as client:
            rtts = []
            for _ in range(50):
                t0 = time.perf_counter()
                client.get(topo.device("edge").url + "/healthz")
                rtts.append(time.perf_counter() - t0)
        rtt = statistics.median(rtts[5:])
        rows = []
        for k in range(1, problem.n_exits + 1):
            spec = with_rule(plan.exits, index=k)
            runner = open_exits(plan, graph, fp, topo, spec=spec, failover=False)
            name = spec["outputs"][k - 1]
            for _ in range(3):
                runner.infer([x])
            times, equal, hops, sent = [], True, 0, {}
            for _ in range(requests):
                outs, record = runner.infer([x])
                equal &= torch.equal(outs[name], net.forward_exit(x, k))
                times.append(record["total_s"])
                hops, sent = len(record["hops"]), link_bytes(record)
            runner.close()
            pred = problem.latency(k, genes)["total_s"]
            rows.append({
                "exit": k, "tiers": sorted({("mobile", "edge", "cloud")[genes[i]] for i in problem.chain(k)}),
                "measured_median_ms": statistics.median(times) * 1000,
                "predicted_eq46_ms": pred * 1000,
                "round_trips": hops,
                "link_bytes": sent,
                "predicted_with_rtt_ms": (pred + hops * rtt) * 1000,
                "measured_over_predicted_with_rtt": statistics.median(times) / (pred + hops * rtt),
                "overhead_per_round_trip_ms": (
                    (statistics.median(times) - pred) / hops * 1000 if hops else None
                ),
                "torch_equal": equal,
            })  # fmt: skip
    save(
        "earlyexit_runtime",
        {
            "requests_per_exit": requests,
            "loopback_rtt_ms": rtt * 1000,
            "genes": genes,
            "exits": rows,
        },
    )
    print(f"loopback HTTP round trip {rtt * 1000:.2f} ms")
    for r in rows:
        print(
            f"exit {r['exit']} ({'+'.join(r['tiers'])}): measured {r['measured_median_ms']:.2f} ms, "
            f"predicted {r['predicted_eq46_ms']:.2f} ms (+{r['round_trips']} RTT: "
            f"{r['predicted_with_rtt_ms']:.2f} ms, ratio {r['measured_over_predicted_with_rtt']:.2f}), "
            f"torch.equal {r['torch_equal']}"
        )


if __name__ == "__main__":
    main()
