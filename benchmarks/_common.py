"""Shared benchmark plumbing: result files under results/bench/ and timing helpers."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent.parent / "results" / "bench"


def machine() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_1m": os.getloadavg()[0],
    }


def save(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {"benchmark": name, "machine": machine(), **doc}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")
    return path


def interleaved(
    candidate: Callable[[], object], baseline: Callable[[], object], repeats: int, warmup: int = 2
) -> tuple[float, float]:
    """Median seconds of ``candidate`` and ``baseline``, run alternately so noise hits both."""
    for _ in range(warmup):
        candidate()
        baseline()
    cand, base = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        candidate()
        t1 = time.perf_counter()
        baseline()
        t2 = time.perf_counter()
        cand.append(t1 - t0)
        base.append(t2 - t1)
    return statistics.median(cand), statistics.median(base)
