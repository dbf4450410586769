"""Hardening figures (issue 14): the attacks on a real ``edgesplit serve`` and what they cost.

Every attack goes over loopback to a real ``edgesplit serve --model mnist_cnn --token T``
process (:class:`edgesplit.runtime.server.ServerProcess`), a fresh one per section:

==================  ===================================================================
schemathesis        ``st run`` on the server's own ``/openapi.json``, phases examples,
                    coverage, fuzzing and stateful, ``--mode all`` (negative data too),
                    ``--checks all``, the token set; operations, requests, failures
                    (5xx and schema violations). Goal: 0 failures.
malformed           the issue's inputs once answered 500 (safetensors dtypes F4,
                    F6_E2M3, F8_E8M0, shape ``[0, 2^63]``; ``/offload`` with ``end``
                    ``"abc"``/``[1]``/``Infinity``, ``splitting_point`` ``1e400``,
                    ``shape`` ``5``/``["a"]``/``[1e400]``; 100,000 ``[`` sent both as a
                    JSON body and as a safetensors header: 13 in all). Goal: every one a
                    4xx.
stalls              ``/healthz`` timed every 10 ms while one client repeats an attack:
                    the part-building request (``assignment=0,...,0,10000``) and a
                    safetensors header of 200,000 entries. Goal: p99 <= 50 ms.
rss                 ``VmRSS`` of the server (``/proc/PID/status``) before and after
                    ``--rejected`` requests of every rejected kind (the 13 above, a
                    wrong token, an unknown model, distinct bad assignments, a body
                    over ``--max-body``). Goal: growth <= 5 MiB.
slow uploads        18 uploads trickling 1 byte/s hold connections while 12 normal
                    inferences are sent. Goal: all 12 served, torch.equal to local.
burst               200 inferences at once: each answer 200 or 503 with Retry-After;
                    then 200 clients honouring Retry-After. Goal: 0 5xx; 200/200.
kill                ``benchmarks/bench_engine_failover.py``'s run of the shipped 3-tier
                    resnet50 plan with the edge killed by SIGKILL, then by SIGTERM,
                    mid-run. Goal: 0 lost, 0 wrong (every output torch.equal to local).
hop                 ``benchmarks/bench_runtime_hop.py`` run as it is (it refreshes
                    results/bench/runtime_hop.json); its 4 KB and 100 KB rows and goals
                    (issue 13: WebSocket hop <= 0.3 ms median extra over raw TCP).
==================  ===================================================================

The baselines are the issue's measurements before hardening (``BEFORE``), beside each
figure with its goal and pass/fail, and the load average (benchmarks/_common.py).
Output: results/bench/hardening.json.

    .venv/bin/python benchmarks/bench_hardening.py [--quick] [--only SECTION ...]

``--quick`` shortens every section (a smoke run; figures under load mean little).
The attack helpers are shared with tests/runtime/test_attacks.py, which runs them bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save

from edgesplit.runtime import wire
from edgesplit.runtime.server import ServerProcess
from edgesplit.runtime.store import ModelStore

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hardening-token"
MODEL = "mnist_cnn"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
INFER = f"/v1/infer?model={MODEL}&cut=0"
STALL_PART = f"/v1/part?model={MODEL}&assignment=0,0,0,0,0,0,0,0,10000&part=0"
GOAL_HEALTHZ_P99_MS = 50.0
GOAL_RSS_MIB = 5.0
#: The issue's measurements before hardening (issue 14, "Why").
BEFORE = {
    "healthz_blocked_s": {"part_build": [3.5, 6.6], "huge_header": 7.4},
    "rss_after_720_rejected_assignments_mib": 15,
    "slow_uploads_normal_served": "0/12",
    "inputs_answered_500": 13,
}


# --------------------------------------------------------------------------- server, oracle


def start_server(*args: str) -> ServerProcess:
    """``edgesplit serve --model mnist_cnn --token T --threads 1`` on a free loopback port."""
    return ServerProcess((MODEL,), args=("--token", TOKEN, "--threads", "1", *args)).start()


def rss_bytes(pid: int) -> int:
    """Resident set size of a process: ``VmRSS`` of ``/proc/PID/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


@dataclass
class Oracle:
    """One mnist_cnn input, its safetensors body and the unsplit model's output (1 thread)."""

    body: bytes
    expected: dict[str, torch.Tensor]

    @classmethod
    def make(cls) -> Oracle:
        store = ModelStore((MODEL,))
        graph = store.model(MODEL).graph
        name = graph.input_names[0]
        x = torch.randn(*graph.tensor(name).shape, generator=torch.Generator().manual_seed(14))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the server runs with --threads 1: bitwise equal
        try:
            expected, _ = store.run(store.segment(MODEL, 0), {name: x})
        finally:
            torch.set_num_threads(threads)
        return cls(wire.encode_tensors({name: x}), expected)

    def equal(self, content: bytes) -> bool:
        got = wire.decode_tensors(content)
        return got.keys() == self.expected.keys() and all(
            torch.equal(got[k], v) for k, v in self.expected.items()
        )


# --------------------------------------------------------------------------- malformed inputs


def safetensors_raw(header: Any, data: bytes = b"", raw_header: bytes | None = None) -> bytes:
    """A safetensors document as bytes, however wrong: 8-byte length, header, data."""
    head = raw_header if raw_header is not None else json.dumps(header).encode()
    return len(head).to_bytes(8, "little") + head + data


def _offload(field: str, raw_value: str) -> bytes:
    """A valid /offload body (Listing 1) with ``input_data[field]`` set to a raw JSON literal."""
    doc = wire.offload_document(MODEL, 0, torch.zeros(1, 1, 28, 28))
    doc["input_data"][field] = "@@RAW@@"
    return json.dumps(doc).replace('"@@RAW@@"', raw_value).encode()


def malformed_cases() -> list[tuple[str, str, bytes]]:
    """The issue's malformed inputs, (label, path and query, body): 12 distinct ones, with
    the 100,000 ``[`` sent to both kinds of body (JSON and a safetensors header), 13 in all."""
    x = {"dtype": "F32", "shape": [1, 1, 28, 28], "data_offsets": [0, 3136]}
    cases = []
    for dtype, nbytes in (("F4", 392), ("F6_E2M3", 588), ("F8_E8M0", 784)):
        head = {"x": {**x, "dtype": dtype, "data_offsets": [0, nbytes]}}
        cases.append((f"safetensors dtype {dtype}", INFER, safetensors_raw(head, bytes(nbytes))))
    huge_shape = {"x": {**x, "shape": [0, 2**63], "data_offsets": [0, 0]}}
    cases.append(("safetensors shape [0, 2^63]", INFER, safetensors_raw(huge_shape)))
    brackets = b"[" * 100_000
    cases.append(("safetensors header of 100,000 '['", INFER, safetensors_raw(None, b"", brackets)))
    for field, raw in (
        ("end", '"abc"'),
        ("end", "[1]"),
        ("end", "Infinity"),
        ("splitting_point", "1e400"),
        ("shape", "5"),
        ("shape", '["a"]'),
        ("shape", "[1e400]"),
    ):
        cases.append((f"/offload {field}={raw}", "/offload", _offload(field, raw)))
    cases.append(("/offload body of 100,000 '['", "/offload", brackets))
    return cases


def huge_header_body(entries: int = 200_000) -> bytes:
    """A safetensors header naming ``entries`` empty tensors (~15 MB at 200,000)."""
    head = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(entries)}
    return safetensors_raw(head)


def rejected_kinds(
    oracle: Oracle, max_body: int
) -> dict[str, Callable[[int], tuple[str, bytes, dict[str, str]]]]:
    """Every kind of rejected request, as ``i -> (path, body, headers)``; ``i`` varies it."""
    kinds: dict[str, Callable[[int], tuple[str, bytes, dict[str, str]]]] = {}
    for label, path, body in malformed_cases():
        kinds[label] = lambda i, p=path, b=body: (p, b, AUTH)
    kinds["wrong token"] = lambda i: (INFER, oracle.body, {"Authorization": f"Bearer wrong{i}"})
    kinds["unknown model"] = lambda i: (f"/v1/part?model=nope{i}&assignment=0&part=0", b"", AUTH)
    kinds["bad assignment"] = lambda i: (
        f"/v1/part?model={MODEL}&assignment=0,0,0,0,0,0,0,{i % 97},{10_000 + i}&part={i % 5}",
        oracle.body,
        AUTH,
    )
    kinds["body over --max-body"] = lambda i: (INFER, bytes(max_body + 1 + i % 64), AUTH)
    return kinds


# --------------------------------------------------------------------------- /healthz timing


@contextmanager
def healthz_probe(url: str, timeout_s: float) -> Iterator[list[float | None]]:
    """Times ``GET /healthz`` every 10 ms in a thread; a sample is seconds, None if it failed."""
    samples: list[float | None] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=timeout_s) as client:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    ok = client.get(url + "/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                samples.append(time.perf_counter() - t0 if ok else None)
                time.sleep(0.01)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(timeout=timeout_s + 5)


def _ms(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    if not s:
        return {}
    return {
        "p50_ms": 1e3 * statistics.median(s),
        "p99_ms": 1e3 * s[min(len(s) - 1, int(0.99 * len(s)))],
        "max_ms": 1e3 * s[-1],
    }


def stall(
    url: str, path: str, body: bytes, seconds: float, timeout_s: float = 30.0
) -> dict[str, Any]:
    """Repeat one attack for ``seconds`` while /healthz is timed; statuses and latencies."""
    statuses: Counter[str] = Counter()
    with (
        httpx.Client(timeout=timeout_s, headers=AUTH) as client,
        healthz_probe(url, timeout_s) as samples,
    ):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                statuses[str(client.post(url + path, content=body).status_code)] += 1
            except httpx.HTTPError as err:
                statuses[type(err).__name__] += 1
    ok = [s for s in samples if s is not None]
    return {
        "attacks": dict(statuses),
        "healthz_samples": len(samples),
        "healthz_failed": len(samples) - len(ok),
        "healthz": _ms(ok),
    }


# --------------------------------------------------------------------------- slow uploads


def slow_uploads(
    url: str, oracle: Oracle, n_slow: int = 18, n_normal: int = 12, timeout_s: float = 60.0
) -> dict[str, Any]:
    """``n_slow`` uploads trickle 1 byte/s while ``n_normal`` inferences are sent at once."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST {INFER} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: {wire.SAFETENSORS_TYPE}\r\nContent-Length: {len(oracle.body)}\r\n\r\n"
    ).encode()
    socks = []
    for _ in range(n_slow):
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(head)
        socks.append(s)
    stop = threading.Event()

    def trickle() -> None:
        sent = 0
        while not stop.wait(1.0) and sent < len(oracle.body):
            for s in socks:
                with suppress(OSError):  # the server may have answered 408 and closed it
                    s.sendall(oracle.body[sent : sent + 1])
            sent += 1

    dripper = threading.Thread(target=trickle, daemon=True)
    dripper.start()
    try:
        time.sleep(1.5)  # every slow upload has started its body
        t0 = time.perf_counter()
        with httpx.Client(
            timeout=timeout_s, headers=AUTH, limits=httpx.Limits(max_connections=n_normal)
        ) as client:

            def one(_: int) -> tuple[str, bool]:
                try:
                    r = client.post(url + INFER, content=oracle.body)
                except httpx.HTTPError as err:
                    return type(err).__name__, False
                return str(r.status_code), r.status_code == 200 and oracle.equal(r.content)

            with ThreadPoolExecutor(n_normal) as pool:
                answers = list(pool.map(one, range(n_normal)))
        wall = time.perf_counter() - t0
    finally:
        stop.set()
        dripper.join(timeout=5)
        for s in socks:
            s.close()
    return {
        "trickling_clients": n_slow,  # no "load" in a key name
        "normal": n_normal,
        "normal_served": sum(ok for _, ok in answers),
        "normal_statuses": dict(Counter(st for st, _ in answers)),
        "normal_wall_s": wall,
    }


# --------------------------------------------------------------------------- burst


async def _burst_async(
    url: str, oracle: Oracle, n: int, honour: bool, max_tries: int
) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    missing_retry_after = 0
    done = equal = retries = 0
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=60, headers=AUTH, limits=limits) as client:

        async def one() -> None:
            nonlocal missing_retry_after, done, equal, retries
            for attempt in range(max_tries if honour else 1):
                try:
                    r = await client.post(url + INFER, content=oracle.body)
                except httpx.HTTPError as err:
                    statuses[type(err).__name__] += 1
                    return
                statuses[str(r.status_code)] += 1
                if r.status_code == 200:
                    done += 1
                    equal += oracle.equal(r.content)
                    return
                if r.status_code != 503:
                    return
                after = r.headers.get("retry-after")
                if after is None or not after.isdigit():
                    missing_retry_after += 1
                    return
                if honour and attempt + 1 < max_tries:
                    retries += 1
                    await asyncio.sleep(int(after))

        await asyncio.gather(*(one() for _ in range(n)))
    return {
        "requests": n,
        "statuses": dict(statuses),
        "five_xx_other_than_503": sum(
            v for k, v in statuses.items() if k.startswith("5") and k != "503"
        ),
        "errors": sum(v for k, v in statuses.items() if not k.isdigit()),
        "503_without_retry_after": missing_retry_after,
        "completed": done,
        "equal_to_local": equal,
        "retries": retries,
    }


def burst(
    url: str, oracle: Oracle, n: int = 200, honour: bool = False, max_tries: int = 60
) -> dict[str, Any]:
    """``n`` inferences at once; with ``honour`` each retries after Retry-After until 200."""
    return asyncio.run(_burst_async(url, oracle, n, honour, max_tries))


# --------------------------------------------------------------------------- schemathesis


#: Rules no JSON schema can state, so a schema-valid body may still be refused with a 4xx
#: (schemathesis' ST202 allows them per operation): a tensor's bytes must match the shape
#: crossing the model's cut, a stage body must carry a plan's cursor in its metadata, a
#: model or session id must exist. A 5xx or an undocumented answer still fails.
SEMANTIC_4XX = ("400", "404", "409", "413", "422")
SCHEMATHESIS_TOML = """
[[operations]]
include-path-regex = "^/(offload|v1/.*)$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = [{statuses}]
"""


def schemathesis(url: str, max_examples: int, max_time_s: int, report_dir: Path) -> dict[str, Any]:
    """``st run`` on the server's /openapi.json: all phases, negative data, every check."""
    st = Path(sys.executable).with_name("schemathesis")
    config = report_dir / "schemathesis.toml"
    statuses = ", ".join(f'"{s}"' for s in ("2xx", *SEMANTIC_4XX))
    config.write_text(SCHEMATHESIS_TOML.format(statuses=statuses))
    argv = [str(st), "--config-file", str(config), "run", url + "/openapi.json"]
    argv += ["--phases", "examples,coverage,fuzzing,stateful"]
    argv += ["--mode", "all", "--checks", "all", "--max-examples", str(max_examples)]
    argv += ["--max-time", str(max_time_s), "-H", f"Authorization: Bearer {TOKEN}", "--seed", "14"]
    argv += ["--workers", "1", "--request-timeout", "10", "--no-color", "--report", "json"]
    argv += ["--report-json-path", str(report_dir / "schemathesis.json")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=max_time_s + 120)
    path = report_dir / "schemathesis.json"
    if not path.exists():
        return {"exit_code": proc.returncode, "error": proc.stdout[-2000:] + proc.stderr[-2000:]}
    rep = json.loads(path.read_text())
    failures = rep.get("failures", [])
    return {
        "exit_code": proc.returncode,
        "operations": rep["operations"]["tested"],
        "requests": rep["test_cases"]["generated"],
        "failures": sum(f["count"] for f in failures),
        "errors": len(rep.get("errors", [])),
        "failure_kinds": [
            {"code": f["code"], "title": f["title"], "operations": f["operations"]}
            for f in failures
        ],
        "phases": {k: v["status"] for k, v in rep["phases"].items()},
        "tail": proc.stdout[-3000:],
    }


# --------------------------------------------------------------------------- RSS after rejections


def rss_growth(per_kind: int, max_body: int = 1 << 20) -> dict[str, Any]:
    """Server RSS before and after ``per_kind`` rejected requests of every kind (a warm-up of
    20 per kind first, so that lazily built state is in the baseline)."""
    oracle = Oracle.make()
    server = start_server("--max-body", str(max_body))
    try:
        kinds = rejected_kinds(oracle, max_body)
        statuses: dict[str, Counter[str]] = {k: Counter() for k in kinds}
        with httpx.Client(timeout=60) as client:

            def send(kind: str, i: int) -> None:
                path, body, headers = kinds[kind](i)
                try:
                    statuses[kind][
                        str(
                            client.post(
                                server.url + path, content=body, headers=headers
                            ).status_code
                        )
                    ] += 1
                except httpx.HTTPError as err:
                    statuses[kind][type(err).__name__] += 1

            for kind in kinds:
                for i in range(20):
                    send(kind, per_kind + i)
            before = rss_bytes(server.proc.pid)
            for kind in kinds:
                for i in range(per_kind):
                    send(kind, i)
            after = rss_bytes(server.proc.pid)
    finally:
        server.kill()
    growth = (after - before) / 2**20
    return {
        "per_kind": per_kind,
        "kinds": len(kinds),
        "statuses": {k: dict(v) for k, v in statuses.items()},
        "not_4xx": sum(n for v in statuses.values() for s, n in v.items() if not s.startswith("4")),
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "growth_mib": growth,
        "goal_mib": GOAL_RSS_MIB,
        "pass": growth <= GOAL_RSS_MIB,
    }


# --------------------------------------------------------------------------- kill -9, SIGTERM, hop


class _Terminated:
    """A tier whose ``kill()`` is SIGTERM (graceful), for bench_engine_failover.one_run."""

    def __init__(self, tier: ServerProcess) -> None:
        self.tier = tier

    def kill(self) -> None:
        self.tier.stop()

    def start(self) -> None:
        self.tier.start()


def kill_runs(n: int, kill_after: int) -> dict[str, Any]:
    """The shipped 3-tier plan's run with the edge SIGKILLed, then SIGTERMed, mid-run."""
    import bench_engine_failover as failover

    edge, cloud = ServerProcess(("resnet50",)), ServerProcess(("resnet50",))
    topo = Path(tempfile.mkdtemp()) / "topology.yaml"
    text = failover.TOPOLOGY.read_text().replace("http://127.0.0.1:8101", edge.url)
    topo.write_text(text.replace("http://127.0.0.1:8102", cloud.url))
    edge.args = ("--threads", failover.THREADS, "--topology", str(topo), "--as", "edge")
    cloud.args = ("--threads", failover.THREADS, "--topology", str(topo), "--as", "cloud")
    runs = {}
    try:
        edge.start()
        cloud.start()
        for sig, tier in ((signal.SIGKILL, edge), (signal.SIGTERM, _Terminated(edge))):
            row = failover.one_run({"edge": tier}, topo, n, "edge", kill_after)  # type: ignore[dict-item]
            row["lost"] = n - row["requests"]
            row["wrong"] = row["checked"] - row["equal_to_local"]
            runs[sig.name] = row
    finally:
        edge.stop()
        cloud.stop()
    return {
        "requests": n,
        "kill_after": kill_after,
        "runs": runs,
        "pass": all(
            r["lost"] == 0 and r["wrong"] == 0 and r["checked"] == n for r in runs.values()
        ),
    }


def hop(quick: bool) -> dict[str, Any]:
    """bench_runtime_hop.py as it is; its 4 KB and 100 KB rows and the issue 13 goals."""
    argv = [sys.executable, str(ROOT / "benchmarks" / "bench_runtime_hop.py")]
    proc = subprocess.run([*argv, *(["--quick"] if quick else [])], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:], "pass": False}
    doc = json.loads((ROOT / "results" / "bench" / "runtime_hop.json").read_text())
    rows = [r for r in doc["rows"] if r["size"] in ("4KB", "100KB")]
    return {"goal": doc["goal"], "rows": rows, "goals": doc["goals"], "pass": doc["pass"]}


# --------------------------------------------------------------------------- main


def _stall_section(seconds: float) -> dict[str, Any]:
    """/healthz under each stall attack; the baseline is /healthz on the idle server, same run."""
    server = start_server()
    try:
        with healthz_probe(server.url, 30.0) as samples:
            time.sleep(seconds)
        idle = _ms([s for s in samples if s is not None])
        out = {
            "part_build": stall(server.url, STALL_PART, Oracle.make().body, seconds),
            "huge_header": stall(server.url, INFER, huge_header_body(), seconds),
        }
    finally:
        server.kill()
    for row in out.values():
        p99 = row["healthz"].get("p99_ms", float("inf"))
        row["p99_over_idle"] = p99 / idle["p99_ms"] if idle else None
        row["pass"] = row["healthz_failed"] == 0 and p99 <= GOAL_HEALTHZ_P99_MS
    return {
        "goal_p99_ms": GOAL_HEALTHZ_P99_MS,
        "baseline_idle_healthz": idle,
        **out,
        "pass": all(r["pass"] for r in out.values()),
    }


def _served_section(what: str) -> dict[str, Any]:
    oracle = Oracle.make()
    server = start_server()
    try:
        if what == "slow_uploads":
            row = slow_uploads(server.url, oracle)
            row["pass"] = row["normal_served"] == row["normal"]
            return row
        once = burst(server.url, oracle)
        honoured = burst(server.url, oracle, honour=True)
    finally:
        server.kill()
    ok_once = (
        once["five_xx_other_than_503"] == once["errors"] == once["503_without_retry_after"] == 0
    )
    ok_once = ok_once and set(once["statuses"]) <= {"200", "503"}
    return {
        "once": once,
        "retry_after_honoured": honoured,
        "pass": ok_once and honoured["completed"] == honoured["equal_to_local"] == 200,
    }


def _malformed_section() -> dict[str, Any]:
    server = start_server()
    rows = []
    try:
        with httpx.Client(timeout=60, headers=AUTH) as client:
            for label, path, body in malformed_cases():
                try:
                    status = str(client.post(server.url + path, content=body).status_code)
                except httpx.HTTPError as err:  # a reset connection, as a 500 once did
                    status = type(err).__name__
                rows.append({"input": label, "status": status})
    finally:
        server.kill()
    return {"rows": rows, "pass": all(r["status"].startswith("4") for r in rows)}


def main(argv: list[str] | None = None) -> int:
    sections = (
        "schemathesis",
        "malformed",
        "stalls",
        "rss",
        "slow_uploads",
        "burst",
        "kill",
        "hop",
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short sections: proves it runs")
    parser.add_argument("--only", nargs="+", choices=sections, default=list(sections))
    parser.add_argument("--rejected", type=int, default=None, help="rejected requests per kind")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]
    )
    doc: dict[str, Any] = {"quick": bool(args.quick), "before_hardening": BEFORE}
    for section in args.only:
        t0 = time.perf_counter()
        try:
            if section == "schemathesis":
                server = start_server()
                try:
                    with tempfile.TemporaryDirectory() as tmp:
                        row = schemathesis(
                            server.url,
                            5 if args.quick else 20,
                            30 if args.quick else 120,
                            Path(tmp),
                        )
                finally:
                    server.kill()
                row["pass"] = row.get("failures", 1) == 0 and row.get("errors", 1) == 0
            elif section == "malformed":
                row = _malformed_section()
            elif section == "stalls":
                row = _stall_section(3.0 if args.quick else 20.0)
            elif section == "rss":
                row = rss_growth(args.rejected or (200 if args.quick else 10_000))
            elif section in ("slow_uploads", "burst"):
                row = _served_section(section)
            elif section == "kill":
                row = kill_runs(8 if args.quick else 200, 3 if args.quick else 30)
            else:
                row = hop(args.quick)
        except Exception as err:  # one broken section must not lose the others' figures
            row = {"error": f"{type(err).__name__}: {err}", "pass": False}
        row["wall_s"] = time.perf_counter() - t0
        doc[section] = row
        print(
            f"{section}: {'pass' if row.get('pass') else 'FAIL'} ({row['wall_s']:.1f} s)",
            flush=True,
        )
    doc["pass"] = {s: bool(doc[s].get("pass")) for s in args.only}
    save("hardening", doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
