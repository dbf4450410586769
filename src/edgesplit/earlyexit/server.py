"""Edge and cloud server processes for early-exit inference, and an HTTP ``send``.

Each server process rebuilds the same BranchyNet (seeded, or from a safetensors weights
file), traces it and builds the same :class:`EarlyExitExecutor` from a *spec* JSON file
(model, weights, instance, genes), so part indices agree across processes. It answers
``POST /v1/earlyexit`` (see :mod:`edgesplit.earlyexit.runtime`); the edge forwards cloud
runs to ``--cloud-url``. Bodies are safetensors (never pickle), bounded by
``MAX_BODY``; servers bind 127.0.0.1 unless told otherwise.

:func:`launch` starts the cloud and edge servers as child processes on free loopback ports
and waits for them. Every request is O(its tensors' bytes) on the wire.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import torch
from fastapi import FastAPI, Request, Response

from edgesplit.earlyexit.instance import EarlyExitInstance, build_problem
from edgesplit.earlyexit.problem import CLOUD, EDGE, TIER_NAMES
from edgesplit.earlyexit.runtime import EarlyExitExecutor, Send, Values, execute
from edgesplit.errors import InputError, TransportError
from edgesplit.runtime.wire import decode_tensors, encode_tensors

MAX_BODY = 64 * 1024 * 1024
PATH = "/v1/earlyexit"


def executor_from_spec(spec: Mapping[str, Any]) -> EarlyExitExecutor:
    """Rebuild the model, problem and executor a spec describes (same in every process)."""
    from edgesplit.models.branchy import build_branchy
    from edgesplit.models.zoo import load_weights

    inst = EarlyExitInstance.model_validate(spec["instance"])
    # Parts depend only on the genes, not on predicted costs: skip profiling here.
    inst = inst.model_copy(update={"predictors": "table4.2", "profile": None})
    net, x = build_branchy(inst.model)
    weights = spec.get("weights") or inst.weights
    if weights:
        load_weights(net, str(weights))
    net.eval()
    problem, graph = build_problem(
        net, x, list(spec["accuracies"]), inst.requirement.build(), inst, name=inst.model
    )
    return EarlyExitExecutor(graph, problem, spec["genes"])


def http_send(urls: Mapping[int, str], timeout_s: float = 60.0) -> Send:
    """A ``send`` that POSTs to the server of the target tier (``urls[tier]``)."""
    client = httpx.Client(timeout=timeout_s)

    def send(
        tier: int, parts: Sequence[int], returns: Sequence[str], tensors: Mapping[str, Any]
    ) -> Values:
        headers = {"x-parts": ",".join(map(str, parts)), "x-return": ",".join(returns)}
        try:
            r = client.post(urls[tier] + PATH, content=encode_tensors(tensors), headers=headers)
        except httpx.HTTPError as err:
            raise TransportError(f"{TIER_NAMES[tier]} server unreachable: {err}") from None
        if r.status_code != 200:
            raise TransportError(f"{TIER_NAMES[tier]} server answered {r.status_code}: {r.text}")
        return decode_tensors(r.content, MAX_BODY)

    return send


def make_app(executor: EarlyExitExecutor, tier: int, cloud_url: str | None = None) -> Any:
    """The FastAPI app of the edge (``tier=EDGE``) or cloud (``tier=CLOUD``) server."""
    app = FastAPI(title=f"edgesplit early-exit {TIER_NAMES[tier]}")
    forward = http_send({CLOUD: cloud_url}) if tier == EDGE and cloud_url else None

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"tier": TIER_NAMES[tier], "status": "ok"}

    @app.post(PATH)
    async def run(request: Request) -> Response:
        size = int(request.headers.get("content-length", "0"))
        if size > MAX_BODY:
            return Response(f"body of {size} bytes is over {MAX_BODY}", status_code=413)
        try:
            parts = [int(p) for p in request.headers.get("x-parts", "").split(",") if p]
            returns = [n for n in request.headers.get("x-return", "").split(",") if n]
            bad = [p for p in parts if p not in executor.parts]
            if not parts or bad:
                raise InputError(f"x-parts must list known part indices, got {parts}")
            values = decode_tensors(await request.body(), MAX_BODY)
            out = execute(executor, tier, parts, returns, values, forward)
        except (InputError, TransportError) as err:
            return Response(str(err), status_code=400)
        return Response(encode_tensors(out), media_type="application/octet-stream")

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TransportError(
                f"server for {url} exited with status {proc.returncode}; see its log file"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    raise TransportError(f"server at {url} did not start within {timeout_s} s")


@contextlib.contextmanager
def launch(spec_path: str | Path, timeout_s: float = 90.0) -> Iterator[dict[int, str]]:
    """Start cloud and edge server processes for ``spec_path``; yields ``{tier: url}``."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[int, str] = {}
    try:
        for tier in (CLOUD, EDGE):
            port = free_port()
            cmd = [sys.executable, "-m", "edgesplit.earlyexit.server", str(spec_path),
                   TIER_NAMES[tier], str(port)]  # fmt: skip
            if tier == EDGE:
                cmd.append(urls[CLOUD])
            # Server logs go to a file next to the spec: a pipe nobody reads could fill up.
            log = Path(spec_path).with_name(f"earlyexit-{TIER_NAMES[tier]}.log")
            with open(log, "wb") as log_file:
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file)
            procs.append(proc)
            urls[tier] = f"http://127.0.0.1:{port}"
            _wait(urls[tier], proc, timeout_s)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def write_spec(path: str | Path, spec: Mapping[str, Any]) -> Path:
    from edgesplit.io import write_json

    return write_json(path, dict(spec))


def main(argv: Sequence[str]) -> None:
    """``python -m edgesplit.earlyexit.server SPEC TIER PORT [CLOUD_URL]``."""
    import uvicorn

    torch.set_num_threads(1)
    spec = json.loads(Path(argv[0]).read_text())
    tier = TIER_NAMES.index(argv[1])
    app = make_app(executor_from_spec(spec), tier, argv[3] if len(argv) > 3 else None)
    uvicorn.run(app, host="127.0.0.1", port=int(argv[2]), log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
