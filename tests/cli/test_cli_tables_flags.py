"""Issue 16 items 4, 5 and 8: tables that read right at 80 columns, an impossible plan is
never returned and ``--json`` is strict JSON, and numbers that should raise a flag do."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgesplit.commands.flags import check_fit, check_sim_vs_measured
from edgesplit.commands.tables import eng, make_table

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "examples/profiles/alexnet.json"
PLAN = ("plan", "alexnet", "--edge-profile", PROFILE, "--cloud-speedup", "8")
LINK = ("--bandwidth", "200mbit", "--rtt", "2ms")
_PREFIX = {"a": -18, "f": -15, "p": -12, "n": -9, "µ": -6, "m": -3, "": 0, "k": 3, "M": 6}


def _strict(text: str) -> object:
    """``json.loads`` that refuses NaN and Infinity, as every other JSON reader does."""

    def refuse(const: str) -> None:
        raise AssertionError(f"{const} in --json output")

    return json.loads(text, parse_constant=refuse)


def _at_80(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "edgesplit.cli", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip


def _value(cell: str, unit: str) -> float:
    """Read an :func:`eng` cell back (an independent parser of the printed notation)."""
    if cell == "0":
        return 0.0
    m = re.fullmatch(rf"(-?\d+(?:\.\d+)?) ([afpnµmkM]?){re.escape(unit)}", cell)
    assert m, f"{cell!r} is not engineering notation in {unit!r}"
    return float(m.group(1)) * 10.0 ** _PREFIX[m.group(2)]


@pytest.mark.parametrize(
    "value", [1.894e-3, 1.584e-3, 999.7, 0.99995, 8.742e-7, 602112.0, -4.7e-3, 12.0, 3e-17]
)
def test_eng_is_three_significant_digits_with_an_si_prefix(value: float) -> None:
    text = eng(value, "s")
    mantissa = text.split(" ")[0]
    assert 1 <= abs(float(mantissa)) < 1000
    assert len(mantissa.lstrip("-").replace(".", "")) == 3
    assert math.isclose(_value(text, "s"), value, rel_tol=5e-3)
    assert eng(0.0, "s") == "0" and eng(math.nan) == "n/a" and eng(math.inf, "s") == "inf"


def test_a_row_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        make_table("t", ["a", "b", "c"], [["1", "2"]])


def _columns(header: str, rows: list[str]) -> list[dict[str, str]]:
    """Cells by header: number columns are right-aligned under their header, so a cell ends
    where its header ends; the last column (marks) is left-aligned from where it starts."""
    spans = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", header)]
    out = []
    for line in rows:
        cells, start = {}, 0
        for name, _, end in spans[:-1]:
            cells[name] = line[start:end].strip()
            start = end
        cells[spans[-1][0]] = line[spans[-1][1] :].strip()
        out.append(cells)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("power", [(), ("--edge-power", "3")])
def test_plan_table_fits_80_columns_and_each_column_holds_its_own_values(cli, power) -> None:
    shown = _at_80(*PLAN, *LINK, *power)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in shown.stdout
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["cut", "bytes"])
    assert ("energy" in lines[header].split()) == bool(power)
    assert lines[header].split()[-1] == "marks"
    truth = _strict(cli(*PLAN, *LINK, *power, "--json").stdout)["candidates"]  # type: ignore[index]
    rows = _columns(lines[header], lines[header + 2 : header + 2 + len(truth)])
    fields = {"edge": "edge_s", "comm": "comm_s", "cloud": "cloud_s", "total": "latency_s"}
    fields |= {"cost": "cost", "energy": "energy_j", "bytes": "bytes"}
    units = {"bytes": "B", "cost": "$", "energy": "J"}
    for cells, want in zip(rows, truth):
        assert int(cells["cut"]) == want["cut"]
        for col, text in cells.items():
            if col in fields:
                got = _value(text, units.get(col, "s"))
                assert got == pytest.approx(want[fields[col]], rel=5e-3, abs=1e-12), col
        assert set(cells["marks"].split()) <= {"OL", "OC", "CL", "OE", "P", "(no", "memory)"}
    marked = {m for cells in rows for m in cells["marks"].split()}
    assert {"OL", "OC", "CL", "P"} <= marked and ("OE" in marked) == bool(power)


@pytest.mark.parametrize("algorithm", ["relax", "ilp", "heuristic", "exhaustive"])
def test_no_solver_sends_data_over_a_missing_link(cli, algorithm) -> None:
    # system-shannon links phone-edge and edge-cloud only. Under the energy objective only the
    # phone draws power, so a plan that ships its data straight to the cloud looked free:
    # it had infinite latency, exited 0 and printed Infinity.
    args = ("plan", "alexnet", "--system", "examples/system-shannon.yaml", "--objective")
    result = cli(*args, "energy", "--algorithm", algorithm, "--json")
    assert result.code == 0, result.stderr
    chosen = _strict(result.stdout)["chosen"]  # type: ignore[index]
    assert math.isfinite(chosen["predicted"]["latency_s"])
    assert chosen["predicted"]["compute_s:cloud"] == 0.0  # cloud is reached through edge only


def test_the_evaluator_names_the_missing_link() -> None:
    from edgesplit.commands.common import load_graph
    from edgesplit.plan.evaluate import evaluate, unlinked
    from edgesplit.plan.problem import Problem
    from edgesplit.system import load_system

    graph, _, _ = load_graph("alexnet")
    problem = Problem.from_system(load_system(ROOT / "examples/system-shannon.yaml"), graph)
    n = problem.n_nodes
    to_cloud = [0] * (n // 2) + [2] * (n - n // 2)
    assert unlinked(problem, to_cloud) == [(0, 2)]
    ev = evaluate(problem, to_cloud)
    assert not ev.feasible and "no link joins 'phone' and 'cloud'" in ev.problems[0]
    assert unlinked(problem, [0] * (n // 2) + [1] * (n - n // 2)) == []
    from edgesplit.errors import InfeasiblePlanError
    from edgesplit.plan.feasible import plan_from_assignment

    with pytest.raises(InfeasiblePlanError, match="no link joins 'phone' and 'cloud'") as err:
        plan_from_assignment(problem, "given", to_cloud, {})
    assert "memory" not in str(err.value).split(": ", 1)[1]


def test_solvers_on_a_partly_linked_system_raise_no_numpy_warning() -> None:
    import warnings

    import numpy as np

    from edgesplit.commands.common import load_graph
    from edgesplit.plan.problem import Problem
    from edgesplit.plan.registry import solve
    from edgesplit.system import load_system

    graph, _, _ = load_graph("alexnet")
    system = load_system(ROOT / "examples/system-shannon.yaml")
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        for objective in ("latency", "energy"):
            problem = Problem.from_system(system, graph, objective=objective)
            for algorithm in ("relax", "ilp", "heuristic"):
                plan = solve(problem, algorithm)
                assert math.isfinite(plan.predicted["latency_s"]), (objective, algorithm)


def test_a_two_device_plan_without_a_link_is_one_error_line(cli, assert_input_error) -> None:
    args = ("plan", "alexnet", "--system", "examples/system-shannon.yaml", "--devices")
    result = cli(*args, "phone,cloud", "--json")
    assert_input_error(result, "no link joins 'phone' and 'cloud'")


def test_print_json_writes_undefined_numbers_as_null(capsys) -> None:
    from edgesplit.commands.common import print_json

    print_json({"r2": math.nan, "latency_s": [math.inf, 1.5], "n": 3})
    assert _strict(capsys.readouterr().out) == {"r2": None, "latency_s": [None, 1.5], "n": 3}


def test_a_low_fidelity_profile_is_flagged_with_its_cause(cli, tmp_path) -> None:
    doc = json.loads((ROOT / PROFILE).read_text())
    for node in doc["nodes"]:
        node["median_s"] *= 0.47
    doc.pop("fidelity", None)
    doc.pop("sum_of_medians_s", None)
    low = tmp_path / "low.json"
    low.write_text(json.dumps(doc))
    result = cli("plan", "alexnet", "--edge-profile", low, "--bandwidth", "10mbit", "--json")
    assert result.code == 0
    _strict(result.stdout)
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert line.startswith(f"warning: profile '{low}' has fidelity 0.47")
    assert "20 repeats" in line and "load on the machine" in line and "--repeats" in line
    quiet = cli("plan", "alexnet", "--edge-profile", PROFILE, "--bandwidth", "10mbit", "--json")
    assert quiet.code == 0 and "warning" not in quiet.stderr
    system = (ROOT / "examples/system-shannon.yaml").read_text()
    (tmp_path / "sys.yaml").write_text(system.replace("profiles/alexnet.json", "low.json"))
    via = cli("plan", "alexnet", "--system", tmp_path / "sys.yaml", "--algorithm", "heuristic")
    (line,) = [x for x in via.stderr.splitlines() if x.strip()]
    assert via.code == 0 and "fidelity 0.47" in line and "calibrate: true" in line


def test_predictor_rows_worse_than_the_mean_are_flagged(capsys) -> None:
    rows = [
        ("layer_regression", "all", {"n": 40, "r2": 0.91}),
        ("layer_regression", "conv", {"n": 3, "r2": -441.0}),
        ("layer_regression", "pool", {"n": 1, "r2": math.nan}),
        ("plain_linear", "all", {"n": 40, "r2": 0.5}),
    ]
    assert check_fit(rows) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: layer_regression: R² below 0")
    assert "conv (n=3, R² -441)" in line and "pool (n=1, R² n/a)" in line
    assert "too few samples" in line and "all (" not in line


@pytest.mark.slow
def test_predictor_report_flags_its_undefined_rows_and_fits_80_columns() -> None:
    shown = _at_80("predictor-report", PROFILE)
    assert shown.returncode == 0, shown.stderr
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80
    warnings = [x for x in shown.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 2 and all("R² n/a" in w for w in warnings)  # one kind each: n=1


def test_simulated_and_measured_apart_more_than_twice_is_flagged(capsys) -> None:
    assert not check_sim_vs_measured("median response", 0.10, 0.19, "why")
    assert check_sim_vs_measured("median response", 0.10, 0.70, "Ray's per-task overhead")
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "warning: median response: measured 0.7 s is 7.0x slower than simulated 0.1 s: "
        "Ray's per-task overhead"
    )


def test_a_fixed_cut_reports_no_replans() -> None:
    from edgesplit.plan.types import Plan
    from edgesplit.runtime.loop import RunResult
    from edgesplit.runtime.measure import Recorder
    from edgesplit.runtime.rescheduler import Observation, Rescheduler

    def summary(algorithm: str) -> dict[str, object]:
        resched = Rescheduler(lambda obs: Plan.two_tier("m", algorithm, 4, 2), threshold=0.2)
        for i, mbit in enumerate([10.0, 2.0, 10.0]):
            resched.plan_for_request(Observation(mbit, 0.01, 1.0), i)
        result = RunResult(Recorder(), resched, None, None, None)  # type: ignore[arg-type]
        return result.summary()

    fixed, planned = summary("fixed"), summary("luger")
    assert fixed["replans"] == 0 and fixed["fixed_cut"] == 2
    assert fixed["prediction_updates"] == 3 and planned["replans"] == 3
