"""CLI start-up: wall time of `edgesplit --help` (and friends) against `python -c pass`.

Issue 12 point 7: `edgesplit --help`, `edgesplit models` and every `--help` must not import
torch-heavy modules; the goal is at most 0.5 s above a bare interpreter start. Each command
runs as a fresh process, alternating with the baseline so that noise hits both; medians are
reported. The edgesplit commands run through the venv's console script, as a user runs them.

    .venv/bin/python benchmarks/bench_cli_startup.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import save

BIN = Path(sys.executable).parent
COMMANDS: dict[str, list[str]] = {
    "edgesplit --help": [str(BIN / "edgesplit"), "--help"],
    "edgesplit models": [str(BIN / "edgesplit"), "models"],
    "edgesplit plan --help": [str(BIN / "edgesplit"), "plan", "--help"],
    "edgesplit run-plan --help": [str(BIN / "edgesplit"), "run-plan", "--help"],
    "edgesplit reproduce --help": [str(BIN / "edgesplit"), "reproduce", "--help"],
}
BASELINE = [sys.executable, "-c", "pass"]


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.decode()[-300:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    rows = []
    for label, cmd in COMMANDS.items():
        wall(cmd)  # warm the page cache for both
        wall(BASELINE)
        ours, base = [], []
        for _ in range(args.repeats):
            ours.append(wall(cmd))
            base.append(wall(BASELINE))
        row = {
            "command": label,
            "median_s": statistics.median(ours),
            "baseline_median_s": statistics.median(base),
        }
        row["above_baseline_s"] = row["median_s"] - row["baseline_median_s"]
        row["goal_met"] = row["above_baseline_s"] <= 0.5
        rows.append(row)
        print(
            f"{label:32s} {row['median_s'] * 1e3:7.0f} ms  python -c pass "
            f"{row['baseline_median_s'] * 1e3:5.0f} ms  +{row['above_baseline_s'] * 1e3:5.0f} ms"
            f"  {'ok' if row['goal_met'] else 'MISSED (goal +500 ms)'}"
        )
    save("cli_startup", {"repeats": args.repeats, "goal_above_baseline_s": 0.5, "rows": rows})


if __name__ == "__main__":
    main()
