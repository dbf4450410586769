"""Transport: safetensors binary (/v1/infer) against the thesis' JSON/base64 (/offload).

Same uvicorn server on loopback, same run, no shaping: the wall time to move one tensor
of about 0.1, 1 and 10 MB (VGG16 cuts 31, 17 and 1: 0.10, 0.80 and 12.8 MB) to the server
and get the result back. The server runs the empty segment [cut, cut), so it validates
the tensor and hands it back: the figure is the transport alone (encode, send, parse,
check, answer, decode), the part that differs between the two formats. Goal (issue #4):
binary at least 3x faster at 1 MB and above. Output: results/bench/runtime_transport.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from edgesplit.io import write_json
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.transport import HTTPTransport

CUTS = {"0.1MB": 31, "1MB": 17, "10MB": 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    repeats = 5 if args.quick else 15
    app = create_app(ServerConfig(models=("vgg16",)))
    graph = app.state.store.model("vgg16").graph
    rows = []
    with BackgroundServer(app) as server:
        client = HTTPTransport(server.url, timeout_s=120)
        for label, cut in CUTS.items():
            (t,) = graph.cut(cut).tensors
            x = torch.randn(t.shape)
            times: dict[str, list[float]] = {"binary": [], "json": []}
            for i in range(repeats + 1):
                for name in ("binary", "json") if i % 2 else ("json", "binary"):
                    t0 = time.perf_counter()
                    if name == "binary":
                        reply = client.infer("vgg16", cut, {t.name: x}, end=cut)
                    else:
                        reply = client.offload_json("vgg16", cut, x, end=cut)
                    dt = time.perf_counter() - t0
                    assert torch.equal(next(iter(reply.tensors.values())), x)
                    if i:  # the first round warms both paths up
                        times[name].append(dt)
            b, j = statistics.median(times["binary"]), statistics.median(times["json"])
            rows.append(
                {
                    "size": label,
                    "bytes": t.nbytes,
                    "cut": cut,
                    "binary_median_s": b,
                    "json_median_s": j,
                    "speedup": j / b,
                    "repeats": repeats,
                }
            )
            print(
                f"{label:>6} ({t.nbytes:>9} B): binary {b * 1e3:8.2f} ms  "
                f"json/base64 {j * 1e3:8.2f} ms  ratio {j / b:5.2f}x"
            )
        client.close()
    met = all(r["speedup"] >= 3 for r in rows if r["bytes"] >= 500_000)
    doc = {
        "benchmark": "runtime_transport",
        "what": "median wall time, agent -> uvicorn on loopback -> agent, tensor echoed",
        "baseline": "thesis JSON/base64 /offload (Listing 1), same server, same run",
        "goal": "binary >= 3x faster at 1 MB and above",
        "goal_met": met,
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    out = write_json(Path("results/bench/runtime_transport.json"), doc)
    print(f"goal met: {met}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
