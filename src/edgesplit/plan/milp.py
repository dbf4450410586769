"""Exact k-processor placement as a MILP (cvxpy modelling, HiGHS by default).

Samadi and Mohammadi pose operation-granularity placement as an optimisation problem solved
with cvxpy; their formulation section is empty, so this is the latency IP of their
reference [11], Tarnawski et al. (NeurIPS 2020, §4 "latency"), as stated in
``shared/benchmarks/dnn-partitioning/README.md``, generalised to heterogeneous
accelerators. Variables: ``x[v, a]`` (node ``v`` on accelerator ``a``; the host otherwise),

* contiguity (Tarnawski's "no path leaves and comes back"), with continuous ``y[v, a]`` =
  "reached after leaving ``a``'s subgraph": ``y_v >= y_u``, ``y_v >= x_u - x_v`` for every
  edge ``u -> v`` and ``x_v + y_v <= 1``; dropped with ``contiguous=False``;
* crossing ``c[u, a] >= |x_u - x_w|`` for every edge ``u -> w``: ``u``'s output is paid
  once per accelerator boundary it crosses;
* call duration ``call_a = sum_v t_a(v) x[v, a] + sum_u cost_a(u) c[u, a]``;
* critical-path semantics: ``r_v >= r_u + host(v)(1 - sum_a x[v, a])`` per edge,
  ``s_a >= r_u - M(1 - x[v, a] + x[u, a])`` per edge (an outside input delays the call),
  ``r_v >= s_a + call_a - M(1 - x[v, a])``, minimise ``T >= r_v``; sequential semantics
  minimise ``sum host + sum call`` instead;
* memory ``sum_v size(v) x[v, a] <= M_a``, unsupported ``x = 0``, colour classes equal;
* a path bound ``q`` without big-M that lifts the LP relaxation (see ``build``);
* identical accelerators: symmetry breaking, accelerator ``a`` may hold node ``v`` only
  if accelerator ``a - 1`` holds a node at or before ``v``.

``M`` is an upper bound on the optimum: the latency of the heuristic's placement (the
heuristic of :mod:`edgesplit.plan.heuristic` also supplies the fallback when the time limit
passes without an incumbent), and ``T <= M`` is added, which is valid and tightens the LP.
Size: O(nA) binaries and O(mA) rows; NP-hard in general (Tarnawski et al. §4). A licensed
Gurobi or MOSEK is used when cvxpy finds one, else HiGHS.

:func:`solve` is the registry entry ``ilp``: the same machinery on a planner Problem, whose
formulation (sequential, message-per-device-pair semantics) is in
:mod:`edgesplit.plan.placement_ilp`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import cvxpy as cp
import numpy as np

from edgesplit.errors import InfeasiblePlanError, InputError
from edgesplit.placement.evaluate import SEMANTICS, evaluate
from edgesplit.placement.instance import HOST, Instance
from edgesplit.placement.result import PlacementResult
from edgesplit.plan.placement_ilp import build_problem_model
from edgesplit.plan.placement_problem import plan_from_assignment
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan

COMMERCIAL = ("GUROBI", "MOSEK")


@dataclass(frozen=True)
class Model:
    """The cvxpy problem with the variables callers need."""

    problem: cp.Problem
    x: cp.Variable
    objective: cp.Expression


def build(
    inst: Instance,
    semantics: str = "critical",
    contiguous: bool = True,
    upper_bound: float = math.inf,
    relaxed: bool = False,
) -> Model:
    """The MILP (or, with ``relaxed``, its LP relaxation) of ``inst``."""
    if semantics not in SEMANTICS:
        raise InputError(f"semantics must be one of {SEMANTICS}, not {semantics!r}")
    n, k = inst.n, inst.accelerators
    times = np.array(inst.acc_time, dtype=float).T.reshape(n, k)
    allowed = np.isfinite(times)
    times = np.where(allowed, times, 0.0)
    costs = np.array(inst.acc_cost, dtype=float).T.reshape(n, k)
    host = np.array(inst.host_time, dtype=float)
    x = cp.Variable((n, k), boolean=not relaxed, name="x")
    cross = cp.Variable((n, k), nonneg=True, name="cross")
    on_host = 1 - cp.sum(x, axis=1)
    cons: list[Any] = [x >= 0, x <= allowed.astype(float), cp.sum(x, axis=1) <= 1]
    U = np.array([u for u, _ in inst.edges], dtype=int)
    V = np.array([v for _, v in inst.edges], dtype=int)
    m = len(U)
    if m:
        cons += [cross[U] >= x[U] - x[V], cross[U] >= x[V] - x[U]]
    if contiguous and m and k:
        y = cp.Variable((n, k), nonneg=True, name="y")
        cons += [y[V] >= y[U], y[V] >= x[U] - x[V], x + y <= 1]
    if k:
        cons.append(np.array(inst.size) @ x <= np.array(inst.acc_memory))
    for cls in inst.colour_classes():
        cons.append(x[cls[1:]] == np.ones((len(cls) - 1, 1)) @ x[cls[0] : cls[0] + 1])
    if inst.identical and k > 1:
        g = cp.Variable((n, k), nonneg=True, name="first")
        cons += [g[0] <= x[0], g[1:] <= g[:-1] + x[1:], x[:, 1:] <= g[:, :-1]]
    calls = cp.sum(cp.multiply(times, x), axis=0) + cp.sum(cp.multiply(costs, cross), axis=0)
    if semantics == "sequential":
        objective = host @ on_host + cp.sum(calls)
    else:
        big = upper_bound if math.isfinite(upper_bound) else _trivial_bound(inst)
        # Slack on M keeps HiGHS's 1e-6 integrality tolerance from turning into infeasibility.
        big = big * 1.01 + 1e-6
        r = cp.Variable(n, nonneg=True, name="ready")
        s = cp.Variable(k, nonneg=True, name="start")
        total = cp.Variable(name="latency")
        cons += [r >= cp.multiply(host, on_host), total >= r, total <= big, total >= s + calls]
        # q_v: longest path to v with every node at its own device's time. Calls on a path
        # are sequential and a call lasts at least the sum of its nodes' times, so q <= r
        # holds for every integral placement; unlike r it has no big-M, so it lifts the LP bound.
        node_time = cp.multiply(host, on_host) + cp.sum(cp.multiply(times, x), axis=1)
        q = cp.Variable(n, nonneg=True, name="path")
        cons += [q >= node_time, total >= q]
        if m:
            cons.append(r[V] >= r[U] + cp.multiply(host[V], on_host[V]))
            cons.append(q[V] >= q[U] + node_time[V])
        if k:
            ones_m, ones_n, ones_k = np.ones((m, 1)), np.ones((n, 1)), np.ones((1, k))
            fin = cp.reshape(s + calls, (1, k), order="C")
            if m:
                r_u = cp.reshape(r[U], (m, 1), order="C") @ ones_k
                s_b = ones_m @ cp.reshape(s, (1, k), order="C")
                cons.append(s_b >= r_u - big * (1 - x[V] + x[U]))
            cons.append(cp.reshape(r, (n, 1), order="C") @ ones_k >= ones_n @ fin - big * (1 - x))
        objective = total
    return Model(cp.Problem(cp.Minimize(objective), cons), x, objective)


def _trivial_bound(inst: Instance) -> float:
    total = sum(inst.host_time)
    for a in range(inst.accelerators):
        total += sum(t for t in inst.acc_time[a] if math.isfinite(t)) + sum(inst.acc_cost[a])
    return total


def run_solver(
    problem: cp.Problem,
    time_limit: float,
    threads: int = 1,
    start: tuple[cp.Variable, np.ndarray] | None = None,
) -> str:
    """Solve with a licensed commercial solver if cvxpy has one, else HiGHS; returns its name.

    ``start`` gives values for one variable (the placement ``x``) that HiGHS completes into
    its first incumbent; cvxpy cannot pass a partial start to HiGHS itself. With a start,
    ``time_limit`` covers cvxpy's compilation too (HiGHS gets what is left).
    """
    for name in COMMERCIAL:
        if name not in cp.installed_solvers():
            continue
        try:
            opts = {"TimeLimit": time_limit, "Threads": threads} if name == "GUROBI" else {}
            problem.solve(solver=name, **opts)
            return name
        except cp.error.SolverError:
            continue  # installed but unlicensed: fall through to HiGHS
    if start is None:
        problem.solve(solver="HIGHS", time_limit=float(time_limit), threads=int(threads))
    else:
        _solve_highs_started(problem, start, time_limit, threads)
    return "HIGHS"


def _solve_highs_started(
    problem: cp.Problem, start: tuple[cp.Variable, np.ndarray], time_limit: float, threads: int
) -> None:
    """cvxpy's HiGHS path (get_problem_data -> highspy -> unpack_results) plus a MIP start."""
    import highspy as hp
    from cvxpy.reductions.solvers.conic_solvers.conic_solver import dims_to_solver_dict

    t0 = time.perf_counter()
    data, chain, inverse = problem.get_problem_data(cp.HIGHS)
    time_limit = max(1.0, time_limit - (time.perf_counter() - t0))
    inf = hp.Highs().inf
    dims = dims_to_solver_dict(data[cp.settings.DIMS])
    a_mat = data[cp.settings.A].tocsc()
    b = data[cp.settings.B]
    n_eq, n_leq = dims[cp.settings.EQ_DIM], dims[cp.settings.LEQ_DIM]
    model = hp.HighsModel()
    lp = model.lp_
    lp.num_col_, lp.num_row_ = a_mat.shape[1], a_mat.shape[0]
    lp.offset_ = 0
    lp.col_cost_ = data[cp.settings.C]
    lp.row_lower_ = np.concatenate([b[:n_eq], -inf * np.ones(n_leq)])
    lp.row_upper_ = b
    lp.a_matrix_.format_ = hp.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a_mat.indptr
    lp.a_matrix_.index_ = a_mat.indices
    lp.a_matrix_.value_ = a_mat.data
    lb, ub = data[cp.settings.LOWER_BOUNDS], data[cp.settings.UPPER_BOUNDS]
    col_lower = np.full(lp.num_col_, -inf) if lb is None else lb.copy()
    col_upper = np.full(lp.num_col_, inf) if ub is None else ub.copy()
    integrality = [hp.HighsVarType.kContinuous] * lp.num_col_
    for ind in list(data[cp.settings.BOOL_IDX]) + list(data[cp.settings.INT_IDX]):
        integrality[ind] = hp.HighsVarType.kInteger
    for ind in data[cp.settings.BOOL_IDX]:
        col_lower[ind], col_upper[ind] = max(col_lower[ind], 0), min(col_upper[ind], 1)
    lp.integrality_ = integrality
    lp.col_lower_, lp.col_upper_ = col_lower, col_upper
    highs = hp.Highs()
    highs.setOptionValue("log_to_console", False)
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("time_limit", float(time_limit))
    highs.setOptionValue("threads", int(threads))
    highs.passModel(model)
    var, values = start
    offset = data[cp.settings.PARAM_PROB].var_id_to_col[var.id]
    flat = np.asarray(values, dtype=float).flatten(order="F")  # cvxpy columns are Fortran order
    index = np.arange(offset, offset + flat.size, dtype=np.int32)
    highs.setSolution(int(flat.size), index, flat)
    highs.run()
    results = {
        "solution": highs.getSolution(),
        "basis": highs.getBasis(),
        "info": highs.getInfo(),
        "model_status": highs.getModelStatus().name,
        "run_time": highs.getRunTime(),
    }
    problem.unpack_results(results, chain, inverse)


def decode(x_value: np.ndarray | None, n: int) -> tuple[int, ...]:
    """Assignment from a (near-)integral ``x``: the accelerator whose ``x`` exceeds 1/2."""
    if x_value is None:
        raise InfeasiblePlanError("the solver returned no values for x")
    return round_shares(x_value[:n], 0.5)


def round_shares(x: np.ndarray, tau: float) -> tuple[int, ...]:
    """Each node to the accelerator with its largest share if that share exceeds ``tau``."""
    out = []
    for row in x:
        a = int(np.argmax(row)) if row.size else -1
        out.append(a + 1 if a >= 0 and row[a] > tau else HOST)
    return tuple(out)


def place(
    inst: Instance,
    semantics: str = "critical",
    contiguous: bool = True,
    time_limit: float = 60.0,
    threads: int = 1,
    warm: PlacementResult | None = None,
) -> PlacementResult:
    """Solve the MILP; the heuristic's placement bounds it and is the fallback."""
    from edgesplit.plan.heuristic import place as heuristic_place

    t0 = time.perf_counter()
    start = warm or heuristic_place(inst, semantics, contiguous)
    model = build(inst, semantics, contiguous, upper_bound=start.latency)
    x0 = np.zeros((inst.n, inst.accelerators))
    for v, d in enumerate(start.assignment):
        if d != HOST:
            x0[v, d - 1] = 1.0
    left = max(1.0, time_limit - (time.perf_counter() - t0))
    try:
        solver = run_solver(model.problem, left, threads, start=(model.x, x0))
    except cp.error.SolverError as err:
        return replace(start, algorithm="milp", status="solver_error", meta={"error": str(err)})
    status = model.problem.status
    info = getattr(model.problem.solver_stats, "extra_stats", None)
    has_incumbent = status == cp.OPTIMAL or (
        status == cp.USER_LIMIT and getattr(info, "primal_solution_status", 0) == 2
    )
    meta: dict[str, Any] = {"solver": solver, "solver_status": status, "start": start.latency}
    bound: float | None = None
    if has_incumbent and model.x.value is not None and model.problem.value is not None:
        objective = float(model.problem.value)
        meta["milp_objective"] = objective
        if info is not None and solver == "HIGHS":
            # HiGHS reports its bound without cvxpy's constant offset; shift it back.
            bound = objective - (info.objective_function_value - info.mip_dual_bound)
        elif status == cp.OPTIMAL:
            bound = objective
        assignment = decode(model.x.value, inst.n)
        latency = evaluate(inst, assignment, semantics, contiguous).latency
        if not latency <= start.latency:  # a time-limited incumbent can be no better
            assignment, latency = start.assignment, start.latency
            meta["incumbent_from"] = "heuristic"
    elif status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE) and not math.isfinite(start.latency):
        raise InfeasiblePlanError(
            f"no placement of {inst.name!r} satisfies memory, colour and contiguity limits; "
            "raise the accelerator memory or allow more accelerators"
        )
    else:
        assignment, latency = start.assignment, start.latency
        meta["incumbent_from"] = "heuristic"
        meta["note"] = "no MILP incumbent within the time limit"
        if info is not None and solver == "HIGHS" and math.isfinite(info.mip_dual_bound):
            # cvxpy moves the objective's constant (the sequential host sum) into an offset
            offset = sum(inst.host_time) if semantics == "sequential" else 0.0
            bound = float(info.mip_dual_bound) + offset
    if bound is not None:
        bound = min(max(0.0, bound), latency)
    return PlacementResult(
        algorithm="milp",
        assignment=assignment,
        latency=latency,
        solve_s=time.perf_counter() - t0,
        status="optimal" if status == cp.OPTIMAL else "time_limit",
        bound=bound,
        semantics=semantics,
        contiguous=contiguous,
        meta=meta,
    )


def solve(
    problem: Problem,
    *,
    time_limit: float = 60.0,
    contiguous: bool = True,
    threads: int = 1,
) -> Plan:
    """Registry entry ``ilp``: the exact MILP of a planner Problem (see placement_ilp)."""
    from edgesplit.plan.heuristic import solve as heuristic_solve

    t0 = time.perf_counter()
    start = heuristic_solve(problem, contiguous=contiguous)
    model, x = build_problem_model(problem, contiguous)
    x0 = np.zeros((problem.n_nodes, problem.n_devices))
    for v, d in enumerate(start.assignment):
        x0[v, d] = 1.0
    left = max(1.0, time_limit - (time.perf_counter() - t0))
    meta: dict[str, Any] = {"heuristic_objective": start.predicted.get("objective_value")}
    try:
        meta["solver"] = run_solver(model, left, threads, start=(x, x0))
    except cp.error.SolverError as err:
        meta["error"] = str(err)
    assignment = start.assignment
    if model.status in (cp.OPTIMAL, cp.USER_LIMIT) and x.value is not None:
        info = getattr(model.solver_stats, "extra_stats", None)
        if model.status == cp.OPTIMAL or getattr(info, "primal_solution_status", 0) == 2:
            assignment = tuple(int(np.argmax(row)) for row in np.asarray(x.value))
            meta["milp_objective"] = float(model.value)  # type: ignore[arg-type]
    meta["status"] = "optimal" if model.status == cp.OPTIMAL else "time_limit"
    meta["solve_s"] = time.perf_counter() - t0
    plan = plan_from_assignment(problem, "ilp", assignment, meta)
    if plan.predicted["objective_value"] > start.predicted["objective_value"]:
        return replace(start, algorithm="ilp", meta={**meta, "incumbent_from": "heuristic"})
    return plan
