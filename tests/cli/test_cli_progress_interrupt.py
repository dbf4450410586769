"""Long commands show progress on stderr and survive Ctrl-C (issue 16 item 3).

Each command runs as a user runs it, in its own process with stderr piped (so progress
comes as plain lines), and gets a real SIGINT: exit 130, no traceback, one
``interrupted: ...`` line saying what was kept, and every kept row complete.
"""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgesplit.runtime.measure import COLUMNS
from tests.interrupt import interrupt_when, sigint_default

ROOT = Path(__file__).resolve().parents[2]


def csv_rows(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.reader(f))[1:]


@pytest.mark.slow
def test_run_interrupted_keeps_every_completed_row(tmp_path: Path) -> None:
    table, lines = tmp_path / "x.csv", tmp_path / "x.jsonl"
    # 100 ms RTT: 200 requests take far longer than the few rows waited for.
    argv = ["run", "mnist_cnn", "-n", "200", "--rtt", "100ms", "--csv", str(table),
            "--jsonl", str(lines)]  # fmt: skip
    code, out, err = interrupt_when(argv, lambda _: len(csv_rows(table)) >= 3)

    assert code == 130, err
    assert "Traceback" not in err, err
    assert out == ""
    last = err.strip().splitlines()[-1]
    match = re.fullmatch(rf"interrupted: (\d+) of 200 rows kept in {table} and {lines}", last)
    assert match, last
    kept = int(match.group(1))
    assert 3 <= kept < 200
    with table.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    assert tuple(header) == COLUMNS
    assert len(rows) == kept
    assert all(len(r) == len(COLUMNS) and r[-1] == "request" for r in rows)
    assert [int(r[0]) for r in rows] == list(range(kept))
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r["id"] for r in records] == list(range(kept))
    # Progress came as plain lines on stderr while it ran.
    assert re.search(r"^run mnist_cnn: \d+/200 requests, last [\d.]+ ms", err, re.M), err


@pytest.mark.slow
def test_simulate_interrupted_writes_no_half_document(tmp_path: Path) -> None:
    out_file = tmp_path / "sim.json"
    argv = ["simulate", "--policy", "bestfit", "--intervals", "100000", "--out", str(out_file),
            "--json"]  # fmt: skip

    def ready(lines: list[str]) -> bool:
        return any(re.match(r"simulate bestfit: \d+/100000 intervals", s) for s in lines)

    code, out, err = interrupt_when(argv, ready)

    assert code == 130, err
    assert "Traceback" not in err, err
    assert out == ""  # --json: nothing rather than half a document
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("interrupted: stopped before any output was written")
    ), err
    assert not out_file.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left beside it either


@pytest.mark.slow
def test_run_json_stdout_is_one_document_and_progress_goes_to_stderr(tmp_path: Path) -> None:
    table = tmp_path / "r.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "edgesplit.cli", "run", "mnist_cnn", "-n", "3", "--json",
         "--csv", str(table)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["requests"] == 3
    assert "run mnist_cnn: 3/3 requests, last" in proc.stderr.splitlines()[-1]
    assert len(csv_rows(table)) == 3


def test_piped_progress_lines_and_what_an_interrupt_keeps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from edgesplit.commands.progress import Progress, interrupted_line, keeping, rows_kept

    with Progress("job", total=3, unit="items", interval_s=3600) as bar:
        assert capsys.readouterr().err == ""  # nothing before the first item
        bar.advance(info="last 1 ms")
        bar.advance(info="last 2 ms")  # within interval_s: no line
        bar.stage("checking")  # a stage always gets its line
        bar.advance()
    assert capsys.readouterr().err.splitlines() == [
        "job: 1/3 items, last 1 ms",
        "job: 2/3 items, checking",
        "job: 3/3 items, checking",
    ]
    done = [0]
    with pytest.raises(KeyboardInterrupt), keeping(lambda: rows_kept(done[0], 9, ["a.csv"])):
        done[0] = 4
        raise KeyboardInterrupt
    assert interrupted_line() == "interrupted: 4 of 9 rows kept in a.csv"
    assert interrupted_line().startswith("interrupted: stopped before any output")
    assert rows_kept(1, None, [None], "requests") == (
        "1 request completed; none written (no --csv/--jsonl given)"
    )


def test_row_log_writes_what_the_whole_file_writer_writes(tmp_path: Path) -> None:
    from edgesplit.runtime.measure import Measurement, Recorder, RowLog

    rows = [
        Measurement(i, f"t{i}", 1.0 * i, 1.5 * i, 100 + i, 3, 7.2, 2.6, "m", 0.1, 0.2, 0.3,
                    0.6, 0.02, 40, i == 2, i, layers={"edge[0:3]": 0.1, "cloud[3:9]": 0.3})
        for i in range(4)
    ]  # fmt: skip
    whole = Recorder(layer_rows=True)
    table, lines = tmp_path / "a.csv", tmp_path / "a.jsonl"
    with RowLog(table, lines, layer_rows=True) as log:
        for m in rows:
            log.add(m)
            whole.add(m)
            # Flushed per row: the file holds every row written so far.
            assert table.read_bytes() == whole.csv_text().encode()
    assert lines.read_bytes() == whole.jsonl_text().encode()

    # Refused or interrupted before its first row: the previous file stays as it was.
    with pytest.raises(KeyboardInterrupt), RowLog(table) as log:
        raise KeyboardInterrupt
    assert table.read_bytes() == whole.csv_text().encode()
    # Ended normally with no request: the header alone.
    with RowLog(table):
        pass
    assert table.read_bytes() == Recorder().csv_text().encode()


@pytest.mark.slow
def test_demo_interrupted_while_its_servers_start_exits_130_without_a_traceback(
    tmp_path: Path,
) -> None:
    """Ctrl-C at a terminal reaches the whole process group: the demo and its two servers."""
    import os

    proc = subprocess.Popen(
        [sys.executable, "-m", "edgesplit.demo", "--seconds", "5", "--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=sigint_default,
    )
    assert proc.stdout is not None
    try:
        started = proc.stdout.readline()  # printed once torch is loaded, as the servers start
        assert "edgesplit demo" in started, started
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err + out, err
    assert err.strip().splitlines()[-1].startswith("interrupted: "), err
    assert "servers were stopped" in err
