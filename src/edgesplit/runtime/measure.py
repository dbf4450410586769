"""Latency measurement of one split inference (Luger 2023 §3.4, eq. 3.1–3.4, Table 6.1).

Stamps are ``time.time()`` seconds, as in the thesis; the cloud's two stamps come from the
cloud's own clock, so only their difference is used::

    edge_lat    = edge_lat_stop − overall_lat_start                                  (3.1)
    cloud_lat   = cloud_lat_stop − cloud_lat_start                                   (3.2)
    comm_lat    = overall_lat − cloud_lat − edge_lat − ping_lat/2 − response_size/BW (3.3)
    overall_lat = overall_lat_stop − overall_lat_start                               (3.4)

On the engine (:mod:`edgesplit.runtime.engine`) the row comes from the request's record
(:func:`from_record`): ``edge_lat`` is the compute of the stages the device ran, timed
by the device; ``cloud_lat`` is the receiver's own processing seconds as its reply
reports them (a duration on the receiver's clock, never two machines' stamps compared);
``overall_lat`` is the device's end-to-end seconds; ``comm_lat`` follows eq. 3.3 from
those three, so the round trip minus the receiver's processing is the one clock rule.

Eq. 3.3 as printed subtracts the response's one-way delay (ping/2) and its transfer, so
``comm_lat`` is the *upload* time: size·8/BW + ping/2 (eq. 4.3). A local fallback has
no communication: ``comm_lat = 0`` and ``cloud_lat`` holds the locally run tail.

:class:`Recorder` writes one CSV row per request whose first eight columns are Table
6.1's (id, datetime, start, stop, size, SP, BW, CS), the derived latencies after them,
optional per-stage rows (``row = "layer"``: Table 6.1's per-layer rows, at the
engine's stage granularity), and the same records as JSON lines.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from edgesplit.io import write_atomic
from edgesplit.runtime import records


def comm_latency(
    overall: float, cloud: float, edge: float, ping: float, response_bytes: int, bw_mbit: float
) -> float:
    """Luger eq. 3.3 (seconds; bandwidth in Mbit/s)."""
    return overall - cloud - edge - ping / 2 - response_bytes * 8 / (bw_mbit * 1e6)


@dataclass(frozen=True)
class RowContext:
    """What the device knew when a request started: the sensor, the plan, the clock."""

    id: int
    datetime: str
    start: float
    cut: int
    bandwidth_mbit: float
    rtt_s: float
    clock_ghz: float
    model: str
    clock_method: str = ""
    predicted_lat: float | None = None
    cost: float | None = None
    plan: str = ""


def from_record(record: dict[str, Any], local: str, ctx: RowContext) -> Measurement:
    """Table 6.1's row of one engine record (eq. 3.1–3.4; see the module docstring).

    A failed-over request has no communication: ``comm_lat = 0`` and ``cloud_lat`` holds
    the stages the device ran in the remote tier's place, as the thesis' agent did.
    """
    mine = [s for s in record["stages"] if s["device"] == local and "planned" not in s]
    edge = sum(float(s["compute_s"]) for s in mine)  # eq. 3.1
    overall = float(record["total_s"])  # eq. 3.4
    first = [h for h in record["hops"] if h["src"] == local]
    if first:
        cloud = sum(float(h["remote_s"]) for h in first)  # eq. 3.2, the receiver's clock
        size = sum(int(h["sent_wire_bytes"]) for h in first)
        response = sum(int(h["reply_wire_bytes"]) for h in first)
        comm = comm_latency(overall, cloud, edge, ctx.rtt_s, response, ctx.bandwidth_mbit)
    else:
        taken = [s for s in record["stages"] if "planned" in s or s["device"] != local]
        cloud = sum(float(s["compute_s"]) for s in taken)
        size = response = 0
        comm = 0.0
    check = record.get("check")
    return Measurement(
        id=ctx.id,
        datetime=ctx.datetime,
        start=ctx.start,
        stop=ctx.start + overall,
        size=size,
        SP=ctx.cut,
        BW=ctx.bandwidth_mbit,
        CS=ctx.clock_ghz,
        model=ctx.model,
        edge_lat=edge,
        comm_lat=comm,
        cloud_lat=cloud,
        overall_lat=overall,
        rtt=ctx.rtt_s,
        response_size=response,
        fallback=bool(record.get("failover")),
        retries=records.retries(record),
        predicted_lat=ctx.predicted_lat,
        cost=ctx.cost,
        plan=ctx.plan,
        correct=None if check is None else bool(check["equal"] or check["close"]),
        error=str(record.get("failed_device") or ""),
        clock_method=ctx.clock_method,
        layers={
            f"stage{s['stage']}:{s['device']}": float(s["compute_s"]) for s in record["stages"]
        },
    )


@dataclass(frozen=True)
class Measurement:
    """One request: Table 6.1's columns first, then eq. 3.1–3.4 and the run's context."""

    id: int
    datetime: str
    start: float
    stop: float
    size: int
    SP: int
    BW: float
    CS: float
    model: str
    edge_lat: float
    comm_lat: float
    cloud_lat: float
    overall_lat: float
    rtt: float
    response_size: int
    fallback: bool
    retries: int
    predicted_lat: float | None = None
    cost: float | None = None
    plan: str = ""
    correct: bool | None = None
    error: str = ""
    clock_method: str = ""
    layers: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS: tuple[str, ...] = (
    *tuple(f.name for f in fields(Measurement) if f.name != "layers"),
    "row",
)


class Recorder:
    """Collects measurements; writes CSV and JSON lines atomically on :meth:`save`."""

    def __init__(self, layer_rows: bool = False) -> None:
        self.layer_rows = layer_rows
        self.rows: list[Measurement] = []

    def add(self, m: Measurement) -> None:
        self.rows.append(m)

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(COLUMNS)
        for m in self.rows:
            w.writerows(csv_rows(m, self.layer_rows))
        return buf.getvalue()

    def jsonl_text(self) -> str:
        return "".join(json.dumps(m.to_dict()) + "\n" for m in self.rows)

    def save(self, csv_path: str | Path, jsonl_path: str | Path | None = None) -> None:
        write_atomic(csv_path, self.csv_text())
        if jsonl_path is not None:
            write_atomic(jsonl_path, self.jsonl_text())


def csv_rows(m: Measurement, layer_rows: bool = False) -> list[list[Any]]:
    """``m``'s CSV row under :data:`COLUMNS`, then its per-stage rows when ``layer_rows``."""
    doc = m.to_dict()
    rows = [[doc[c] if c != "row" else "request" for c in COLUMNS]]
    if layer_rows:
        for layer, seconds in m.layers.items():
            # Table 6.1's per-layer rows (per stage on the engine): id names the stage
            # and its device, size/BW/CS are 0.
            rows.append(
                [f"{m.id}:{layer}", m.datetime, 0.0, seconds, 0, m.SP, 0, 0]
                + [""] * (len(COLUMNS) - 9)
                + ["layer"]
            )
    return rows


class RowLog:
    """The run's rows written as each request finishes: a fresh CSV (header, then rows)
    and/or JSON-lines file, flushed after every row, so an interrupted run keeps each
    completed request (issue 16 item 3). The files are created with the first row, so a
    run refused or interrupted before its first request leaves the previous files untouched;
    one that ends normally with none leaves the header. ``count`` is the requests written."""

    def __init__(
        self, csv_path: Path | None, jsonl_path: Path | None = None, layer_rows: bool = False
    ) -> None:
        self.csv_path, self.jsonl_path = csv_path, jsonl_path
        self.layer_rows = layer_rows
        self.count = 0
        self._files: list[IO[str]] = []

    def _open(self, path: Path) -> IO[str]:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("w", newline="")
        self._files.append(f)
        return f

    def _start(self) -> None:
        if self.csv_path is not None:
            self._csv = self._open(self.csv_path)
            self._writer = csv.writer(self._csv)
            self._writer.writerow(COLUMNS)
        if self.jsonl_path is not None:
            self._jsonl = self._open(self.jsonl_path)

    def add(self, m: Measurement) -> None:
        if self.count == 0:
            self._start()
        if self.csv_path is not None:
            self._writer.writerows(csv_rows(m, self.layer_rows))
            self._csv.flush()
        if self.jsonl_path is not None:
            self._jsonl.write(json.dumps(m.to_dict()) + "\n")
            self._jsonl.flush()
        self.count += 1

    def close(self) -> None:
        for f in self._files:
            f.close()

    def __enter__(self) -> RowLog:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None and self.count == 0 and not self._files:
            self._start()  # a run that ended with no request still leaves its (empty) log
        self.close()
