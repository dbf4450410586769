"""One record per engine request, written as CSV and JSON lines and flushed per record.

A record (plain JSON) holds:

``id``, ``total_s``
    the request's number and its end-to-end seconds on the device the run started on;
``start_s``, ``end_s`` (``run-plan``)
    when the request started and ended, in seconds since the run began (the device's
    clock): with ``--concurrency K`` they show the requests overlapping;
``stages``
    per stage: ``stage``, ``device`` and ``compute_s``, measured by the machine that ran it
    (stretched by the device's emulated clock), and ``wait_s``, the queueing for the
    device's compute slot when requests are pipelined;
``hops``
    per message pair sender → receiver (``src``, ``dst``, ``codec``): tensors and bytes
    each way before (``*_raw_bytes``: the tensors' own bytes) and after the codec
    (``*_wire_bytes``: the body), ``encode_s`` and ``decode_s`` (both ends summed, each
    end's own clock), ``round_trip_s`` (sender), ``remote_s`` (the receiver's reported
    processing seconds) and ``transfer_s = round_trip_s − remote_s`` — one clock per
    difference, machines' clocks are never compared; ``shaped`` (a direction was paced by
    a topology link with ``shaping: true``), ``paced_out_s`` and ``paced_back_s`` (the
    seconds each direction was held on its link's token bucket, queueing included; null
    when not shaped; see :mod:`edgesplit.runtime.emulation`);
``failover``, ``failed_device``, ``failover_stage``, ``failover_retries``
    whether the request finished on the device the run started on because a tier failed
    (or offloading was paused after one did), the device that failed, the stage from
    which it ran here (see :mod:`edgesplit.runtime.engine`) and the retries the failed
    hop made first; failover stages carry ``planned``, the device the plan gave them.
    The row's ``retries`` is every retry of the request (:func:`retries`);
``tiers``
    per device: torch thread count and device kind (whether bitwise equality can hold);
``check``
    with ``--check``: ``equal`` (``torch.equal`` on every output), ``max_abs`` and
    ``top1_agree``.

The CSV row flattens a record: ``stageI_DEVICE_compute_s`` and ``hopJ_SRC>DST_FIELD``
columns; the header is the first record's, as a run of one plan keeps its stages and hops.
Both files are opened for append and flushed after each record, so a stopped run keeps
every finished request.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO, Any

HOP_FIELDS = (
    "codec",
    "sent_raw_bytes",
    "sent_wire_bytes",
    "reply_raw_bytes",
    "reply_wire_bytes",
    "encode_s",
    "decode_s",
    "round_trip_s",
    "remote_s",
    "transfer_s",
    "shaped",
    "paced_out_s",
    "paced_back_s",
)


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One CSV row of a record (see the module docstring)."""
    row: dict[str, Any] = {"id": record["id"], "total_s": record["total_s"]}
    for st in record.get("stages", []):
        row[f"stage{st['stage']}_{st['device']}_compute_s"] = st["compute_s"]
    for j, hop in enumerate(record.get("hops", [])):
        for key in HOP_FIELDS:
            row[f"hop{j}_{hop['src']}>{hop['dst']}_{key}"] = hop.get(key)
    check = record.get("check")
    if check:
        row.update({f"check_{k}": v for k, v in check.items()})
    row["failover"] = record.get("failover", False)
    row["failed_device"] = record.get("failed_device") or ""
    row["retries"] = retries(record)
    return row


def retries(record: dict[str, Any]) -> int:
    """Every retry of one request: its hops' and the failed hop's (all of which failed)."""
    made = sum(int(h.get("retries", 0)) for h in record.get("hops", []))
    return made + int(record.get("failover_retries") or 0)


class RecordWriter:
    """Appends records to a CSV and/or a JSON-lines file, flushing after each one."""

    def __init__(self, csv_path: Path | None = None, jsonl_path: Path | None = None) -> None:
        self._csv: IO[str] | None = None
        self._jsonl: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None
        if csv_path is not None:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            self._fresh = not csv_path.exists() or csv_path.stat().st_size == 0
            self._csv = csv_path.open("a", newline="")
        if jsonl_path is not None:
            jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            self._jsonl = jsonl_path.open("a")

    def write(self, record: dict[str, Any]) -> None:
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(record) + "\n")
            self._jsonl.flush()
        if self._csv is not None:
            row = flatten(record)
            if self._writer is None:
                self._writer = csv.DictWriter(
                    self._csv, fieldnames=list(row), extrasaction="ignore"
                )
                if self._fresh:
                    self._writer.writeheader()
            self._writer.writerow(row)
            self._csv.flush()

    def close(self) -> None:
        for f in (self._csv, self._jsonl):
            if f is not None:
                f.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per run: total, per-stage compute, per-link transfer and bytes."""
    import statistics

    def med(xs: list[float]) -> float:
        return statistics.median(xs) if xs else 0.0

    out: dict[str, Any] = {
        "requests": len(records),
        "total_s_median": med([r["total_s"] for r in records]),
    }
    stage_times: dict[str, list[float]] = {}
    links: dict[str, dict[str, list[float]]] = {}
    for r in records:
        for st in r.get("stages", []):
            stage_times.setdefault(f"{st['stage']}@{st['device']}", []).append(st["compute_s"])
        for hop in r.get("hops", []):
            d = links.setdefault(f"{hop['src']}>{hop['dst']}", {})
            for key in ("transfer_s", "sent_wire_bytes", "reply_wire_bytes"):
                d.setdefault(key, []).append(hop[key])
    out["stage_compute_s_median"] = {k: med(v) for k, v in stage_times.items()}
    out["links_median"] = {k: {f: med(v) for f, v in d.items()} for k, d in links.items()}
    return out
