"""``placement solve`` stops when the bound proves the incumbent and keeps it when stopped
(issue 16 item 6): early stop never changes the brute-force optimum, a path bound can
prove the heuristic's start before any MILP is built, and a time limit, ``Watch.stop`` or
a real Ctrl-C return the incumbent (exit 130 from the command, the placement written)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgesplit.plan import milp
from edgesplit.plan.tarnawski import load_problem
from tests.interrupt import interrupt_when

from .conftest import brute_force, independent, tensor_problem


def tarnawski_file(path: Path, n: int, fpgas: int, seed: int = 0, chain: bool = False) -> Path:
    """A Tarnawski-format input: random DAG (or chain), memory for ``fpgas - 1`` parts."""
    rng = np.random.default_rng(seed)
    nodes = []
    for v in range(n):
        cpu = float(rng.uniform(5, 20))
        nodes.append(
            {
                "id": v,
                "name": f"n{v}",
                "supportedOnFpga": 1,
                "cpuLatency": cpu,
                "fpgaLatency": cpu * float(rng.uniform(0.05, 0.2)),
                "isBackwardNode": False,
                "size": float(rng.integers(1, 4)),
            }
        )
    cost = [0.0] * n if chain else rng.uniform(0.5, 3.0, n).tolist()
    edges = []
    for v in range(1, n):
        parents = {v - 1} if chain else {v - 1} | set(rng.choice(v, min(v, 2), False).tolist())
        edges += [{"sourceId": int(u), "destId": v, "cost": float(cost[u])} for u in parents]
    total = sum(float(x["size"]) for x in nodes)
    doc = {
        "maxSizePerFPGA": total * 2 if chain else total / (fpgas - 1),
        "maxFPGAs": fpgas,
        "maxCPUs": 1,
        "nodes": nodes,
        "edges": edges,
    }
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    "seed, semantics, chain",
    [
        (1, "critical", False),
        (2, "critical", False),
        (3, "sequential", False),
        (4, "critical", True),
    ],
)
def test_early_stop_keeps_the_brute_force_optimum(seed: int, semantics: str, chain: bool) -> None:
    problem = tensor_problem(seed, 6, 2, chain=chain, semantics=semantics, identical=False)
    opt = brute_force(problem)
    bound = milp.path_bound(problem)
    assert bound is not None and bound <= opt * (1 + 1e-9)
    plan = milp.solve(problem, time_limit=30)
    ok, _, value = independent(problem, plan.assignment)
    assert ok and value == pytest.approx(opt, rel=1e-7)
    assert plan.meta["status"] == "optimal" and plan.meta["gap"] <= milp.REL_GAP
    assert "proves" in plan.meta["stop_reason"]
    assert plan.meta["bound"] <= value * (1 + 1e-9)


@pytest.mark.parametrize("seed", range(10, 18))
def test_path_bound_never_exceeds_the_brute_force_optimum(seed: int) -> None:
    """The bound that may skip the MILP is a lower bound on random DAGs, both semantics,
    colour classes, tight memory and distinct accelerators."""
    problem = tensor_problem(
        seed,
        6,
        2,
        semantics="sequential" if seed % 2 else "critical",
        colours=seed % 3 == 0,
        tight_memory=seed % 4 == 1,
        identical=seed % 5 != 0,
    )
    bound = milp.path_bound(problem)
    assert bound is not None and 0 < bound <= brute_force(problem) * (1 + 1e-9)


def test_path_bound_proves_the_heuristic_without_building_the_milp(tmp_path: Path) -> None:
    """A chain with free transfers that fits one accelerator: every node at its fastest
    time along the one path is both the bound and the heuristic's placement."""
    problem = load_problem(tarnawski_file(tmp_path / "chain.json", 7, 1, seed=5, chain=True))
    plan = milp.solve(problem, time_limit=30)
    assert plan.meta["status"] == "optimal" and "solver" not in plan.meta
    assert "path bound proves" in plan.meta["stop_reason"]
    assert plan.meta["gap"] == 0.0 and plan.meta["incumbent_from"] == "heuristic"
    assert independent(problem, plan.assignment)[2] == pytest.approx(brute_force(problem))


def test_stop_flag_keeps_the_incumbent_without_an_inaccurate_warning(tmp_path: Path) -> None:
    problem = load_problem(tarnawski_file(tmp_path / "hard.json", 40, 5))
    seen: list[tuple[float | None, float | None]] = []
    watch = milp.Watch()

    def progress(elapsed: float, incumbent: float | None, bound: float | None) -> None:
        seen.append((incumbent, bound))
        if incumbent is not None:
            watch.stop.set()

    watch.progress = progress
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = milp.solve(problem, time_limit=300, watch=watch)
    assert not [w for w in caught if "inaccurate" in str(w.message)]
    assert watch.interrupted == "stop" and plan.meta["status"] == "interrupted"
    assert "stopped" in plan.meta["stop_reason"] and "incumbent kept" in plan.meta["stop_reason"]
    ok, _, value = independent(problem, plan.assignment)
    assert ok and value <= plan.meta["start"] * (1 + 1e-9)
    assert plan.meta["warm_start_only"] == (value >= plan.meta["start"] * (1 - milp.REL_GAP))
    assert any(inc is not None and math.isfinite(inc) for inc, _ in seen)


def test_ctrl_c_while_the_milp_is_built_returns_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C before HiGHS runs (cvxpy compiling a large model) keeps the warm start."""
    problem = load_problem(tarnawski_file(tmp_path / "hard.json", 12, 3))

    def interrupted(*args: object, **kwargs: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(milp, "run_solver", interrupted)
    watch = milp.Watch()
    plan = milp.solve(problem, time_limit=30, watch=watch)
    assert watch.interrupted == "ctrl-c" and plan.meta["status"] == "interrupted"
    assert plan.meta["warm_start_only"] and plan.meta["incumbent_from"] == "heuristic"
    assert independent(problem, plan.assignment)[2] == pytest.approx(plan.meta["start"])


def test_ctrl_c_reaches_callers_without_a_watch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``plan --algorithm ilp`` and the benchmarks pass no watch: for them Ctrl-C still
    raises KeyboardInterrupt (once HiGHS has stopped), instead of a silent early result."""
    problem = load_problem(tarnawski_file(tmp_path / "hard.json", 12, 3))

    def cancelled(problem: object, start: object, limit: float, threads: int, watch: Any) -> None:
        watch.interrupted = "ctrl-c"  # as the wait loop records a Ctrl-C after cancelSolve

    monkeypatch.setattr(milp, "_solve_highs_started", cancelled)
    with pytest.raises(KeyboardInterrupt):
        milp.solve(problem, time_limit=30)


@pytest.mark.slow
def test_ctrl_c_during_placement_solve_keeps_the_incumbent(tmp_path: Path) -> None:
    """A real SIGINT once the progress line shows an incumbent: exit 130, no traceback,
    stdout one JSON document, the placement file written with status "interrupted"."""
    source = tarnawski_file(tmp_path / "hard.json", 40, 5)
    out = tmp_path / "placement.json"
    argv = ["placement", "solve", str(source), "--time-limit", "300", "--out", str(out), "--json"]
    code, stdout, stderr = interrupt_when(argv, lambda lines: any("incumbent " in x for x in lines))
    assert code == 130, stderr
    assert "Traceback" not in stderr and "inaccurate" not in stderr
    assert "interrupted:" in stderr and "kept" in stderr
    printed: dict[str, Any] = json.loads(stdout)
    written: dict[str, Any] = json.loads(out.read_text())
    assert printed == written
    assert written["edgesplit"]["status"] == "interrupted"
    assert written["totalLatency"] <= written["edgesplit"]["meta"]["start"] * (1 + 1e-9)
