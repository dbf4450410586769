"""Fault run: the cloud server is killed (SIGKILL) and restarted during 200 requests.

AlexNet at cut 10 through ``edgesplit serve`` in a child process. At request 50 the
server is killed; a new one is started on the same port in the background at once (it
takes seconds to load). Meanwhile the engine (a two-tier plan, one hop, as ``edgesplit
run`` runs it) finishes requests locally (failover; rows marked ``fallback``) and probes
the server at most every 0.5 s; it resumes offloading when the new one answers. Goal (issue #4): 200 results, every one ``torch.equal`` to local
inference, the fallback rows marked. Output: results/bench/runtime_fault.json and the
per-request CSV results/bench/runtime_fault.csv.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import torch

from edgesplit.graph import trace
from edgesplit.graph.partition import assemble_output
from edgesplit.io import write_json
from edgesplit.models import build
from edgesplit.runtime.loop import EDGE, cut_stages, two_tier_engine
from edgesplit.runtime.measure import Recorder, RowContext, from_record
from edgesplit.runtime.server import ServerProcess

CUT = 10
KILL_AT = 50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="mnist_cnn instead of alexnet")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = "mnist_cnn" if args.quick else "alexnet"
    cut = 4 if args.quick else CUT
    module, x0 = build(model)
    graph = trace(module, x0, name=model)
    server = ServerProcess((model,), args=("--threads", "1")).start()
    engine = two_tier_engine(graph, server.url, model=model)
    engine.probe_every_s = 0.5
    engine.switch(cut_stages(graph, cut))
    recorder = Recorder()
    equal = 0
    restarter: threading.Thread | None = None
    try:
        for i in range(args.requests):
            if i == KILL_AT:
                server.kill()
                restarter = threading.Thread(target=server.start)
                restarter.start()
            x = torch.randn(x0.shape, generator=torch.Generator().manual_seed(i))
            outs, record = engine.infer([x])
            with torch.inference_mode():
                equal += bool(torch.equal(assemble_output(graph, outs), graph.module(x)))
            recorder.add(
                from_record(record, EDGE, RowContext(i, "", 0.0, cut, 1000.0, 0.0, 2.6, model))
            )
    finally:
        if restarter is not None:
            restarter.join()
        engine.close()
        server.stop()
    rows = recorder.rows
    fallback_ids = [m.id for m in rows if m.fallback]
    doc = {
        "benchmark": "runtime_fault",
        "model": model,
        "cut": cut,
        "requests": args.requests,
        "results": len(rows),
        "equal_to_local": equal,
        "fallback_rows": len(fallback_ids),
        "first_fallback": fallback_ids[0] if fallback_ids else None,
        "last_fallback": fallback_ids[-1] if fallback_ids else None,
        "offloaded_after_restart": sum(1 for m in rows if m.id > KILL_AT and not m.fallback),
        "killed_at": KILL_AT,
        "goal": "every request answered, all equal to local inference, fallback rows marked",
        "goal_met": len(rows) == args.requests == equal and bool(fallback_ids),
    }
    recorder.save(Path("results/bench/runtime_fault.csv"))
    out = write_json(Path("results/bench/runtime_fault.json"), doc)
    print(
        f"{len(rows)} results, {equal} equal to local, {len(fallback_ids)} fallback rows "
        f"(ids {doc['first_fallback']}..{doc['last_fallback']}), "
        f"{doc['offloaded_after_restart']} offloaded after the restart; wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
