"""Failover figure (issue 13): kill and restart each remote tier during a 200-request 3-tier run.

The shipped plan (examples/plan-resnet50-3tier.json) runs device -> edge -> cloud over two
real `edgesplit serve` processes on loopback, through `edgesplit run-plan --check`. For each
tier in turn: once `--kill-after` requests have completed the tier is killed with SIGKILL,
and restarted as soon as a request has failed over; the run goes on. The figure is the
number of outputs torch.equal to local inference (goal: all of them), with the failed-over
rows and the rows after the restart that offloaded again. The baseline in the same run is a
run of the same length with no tier killed.

    .venv/bin/python benchmarks/bench_engine_failover.py [-n 200] [--kill-after 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import save

from edgesplit.runtime.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "examples" / "plan-resnet50-3tier.json"
TOPOLOGY = ROOT / "examples" / "topology-3tier.yaml"
THREADS = "2"


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n")]


def wait_for(run: subprocess.Popen[str], path: Path, done: Any) -> None:
    deadline = time.monotonic() + 600
    while run.poll() is None and not done(records(path)) and time.monotonic() < deadline:
        time.sleep(0.05)


def one_run(
    tiers: dict[str, ServerProcess], topo: Path, n: int, kill: str | None, after: int
) -> dict[str, Any]:
    jsonl = Path(tempfile.mkdtemp()) / "records.jsonl"
    argv = [sys.executable, "-m", "edgesplit.cli", "run-plan", str(PLAN), "--topology", str(topo)]
    argv += ["-n", str(n), "--check", "--json", "--threads", THREADS, "--jsonl", str(jsonl)]
    t0 = time.perf_counter()
    run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill is not None:
        wait_for(run, jsonl, lambda rs: len(rs) >= after)
        tiers[kill].kill()
        wait_for(run, jsonl, lambda rs: any(r["failover"] for r in rs))
        tiers[kill].start()
    out, err = run.communicate(timeout=1200)
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"run-plan exited {run.returncode}: {err[-500:]}")
    doc = json.loads(out)
    rows = doc["records"]
    failed = [r for r in rows if r["failover"]]
    last = max((r["id"] for r in failed), default=-1)
    resumed = [r for r in rows if r["id"] > last and not r["failover"]]
    result = {
        "killed": kill,
        "requests": doc["requests"],
        "equal_to_local": doc["check"]["equal"],
        "checked": doc["check"]["checked"],
        "bitwise_expected": doc["bitwise_expected"],
        "failover_rows": len(failed),
        "failed_devices": sorted({r["failed_device"] for r in failed}),
        "resumed_rows_after_restart": len(resumed),
        "wall_s": wall,
    }
    print(
        f"kill {kill or 'none':5s}: {result['equal_to_local']}/{result['requests']} equal to "
        f"local, {len(failed)} failed over ({', '.join(result['failed_devices']) or '-'}), "
        f"{len(resumed)} offloaded after the restart, {wall:.1f} s",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="requests per run")
    parser.add_argument("--kill-after", type=int, default=30, help="completed requests first")
    args = parser.parse_args()
    edge, cloud = ServerProcess(("resnet50",)), ServerProcess(("resnet50",))
    topo = Path(tempfile.mkdtemp()) / "topology.yaml"
    text = TOPOLOGY.read_text().replace("http://127.0.0.1:8101", edge.url)
    topo.write_text(text.replace("http://127.0.0.1:8102", cloud.url))
    edge.args = ("--threads", THREADS, "--topology", str(topo), "--as", "edge")
    cloud.args = ("--threads", THREADS, "--topology", str(topo), "--as", "cloud")
    tiers = {"edge": edge, "cloud": cloud}
    try:
        edge.start()
        cloud.start()
        runs = [one_run(tiers, topo, args.n, kill, args.kill_after) for kill in (None, *tiers)]
    finally:
        edge.stop()
        cloud.stop()
    met = all(r["equal_to_local"] == r["requests"] == args.n for r in runs)
    print(
        f"goal {args.n}/{args.n} equal to local inference in every run: {'met' if met else 'MISSED'}"
    )
    save("engine_failover", {"requests": args.n, "kill_after": args.kill_after, "runs": runs})


if __name__ == "__main__":
    main()
