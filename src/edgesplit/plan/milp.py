"""Exact k-device placement as a MILP (cvxpy modelling, HiGHS by default).

Samadi and Mohammadi pose operation-granularity placement as an optimisation problem solved
with cvxpy; their formulation section is empty, so under ``comm="tensor"`` this is the
latency IP of their reference [11], Tarnawski et al. (NeurIPS 2020, §4 "latency"), as
stated in ``shared/benchmarks/dnn-partitioning/README.md``, generalised to heterogeneous
devices. Variables: ``x[v, a]`` (node ``v`` on non-source device ``a``; the source, the
host, otherwise),

* contiguity (Tarnawski's "no path leaves and comes back"), with continuous ``y[v, a]`` =
  "reached after leaving ``a``'s subgraph": ``y_v >= y_u``, ``y_v >= x_u - x_v`` for every
  edge ``u -> v`` and ``x_v + y_v <= 1``; dropped when ``problem.contiguous`` is false;
* crossing ``c[t, a] >= |x_p - x_r|`` for tensor ``t`` of producer ``p`` and each reader
  ``r`` (the host for model inputs and outputs): ``t`` is paid once per device boundary it
  crosses;
* call duration ``call_a = sum_v t_a(v) x[v, a] + sum_t cost_a(t) c[t, a]``;
* critical-path semantics: ``r_v >= r_u + host(v)(1 - sum_a x[v, a])`` per edge,
  ``s_a >= r_u - M(1 - x[v, a] + x[u, a])`` per edge (an outside input delays the call),
  ``r_v >= s_a + call_a - M(1 - x[v, a])``, minimise ``T >= r_v``; sequential semantics
  minimise the weighted ``sum host + sum call`` instead;
* memory ``sum_v size(v) x[v, a] <= M_a``, unsupported ``x = 0``, colour classes equal;
* a path bound ``q`` without big-M that lifts the LP relaxation (see ``_tensor_model``);
* identical devices: symmetry breaking, device ``a`` may hold node ``v`` only if device
  ``a - 1`` holds a node at or before ``v``.

Under ``comm="message"`` (Luger's per-pair messages, sequential) the model has one
``x[v, d]`` per device, ``send[t, (e, f)] >= x[p, e] + x[c, f] - 1`` per read (outputs:
``send[t, (e, src)] >= x[p, e]``), a binary ``msg[(e, f)] >= bytes(e, f) / total`` that
pays ``rtt/2`` once per message, the objective ``sum_d a_d busy_d + b comm``
(:func:`~edgesplit.plan.feasible.linear_weights`, exact for every objective) and the same
contiguity rows over every device.

``M`` is an upper bound on the optimum: the value of the heuristic's placement (the
heuristic of :mod:`edgesplit.plan.heuristic` also supplies the start and the fallback when
the time limit passes without a better incumbent), and ``T <= M`` is added, which is valid
and tightens the LP. Size: O(nA) binaries and O(mA) rows (message: O(k^2 (tensors +
reads)) rows); NP-hard in general (Tarnawski et al. §4). A licensed Gurobi or MOSEK is
used when cvxpy finds one, else HiGHS. A solver failure raises :class:`SolverError`; only
a real time limit is reported as ``time_limit``.

The search stops as soon as a bound proves the incumbent within :data:`REL_GAP` (the
path bound of :func:`path_bound` may prove the start before the MILP is built); on a time
limit, Ctrl-C or :attr:`Watch.stop` it keeps its incumbent and says so in ``meta``,
including when that incumbent is only the warm start.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from edgesplit.errors import InfeasiblePlanError, InputError, SolverError
from edgesplit.plan.evaluate import score
from edgesplit.plan.feasible import linear_weights, plan_from_assignment, round_shares
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan

COMMERCIAL = ("GUROBI", "MOSEK")

REL_GAP = 1e-6
"""The search stops when ``(incumbent - bound) / incumbent <= REL_GAP`` (HiGHS
``mip_rel_gap``; its default, 1e-4, would call a 0.01 % gap optimal)."""


@dataclass
class Watch:
    """How a caller follows and stops a running MILP, and how it ended.

    ``stop``: set it from any thread to end the search; the incumbent is kept (Ctrl-C in
    the solving thread does the same). ``progress(elapsed_s, incumbent, bound)`` is called
    about every 0.1 s while HiGHS runs, values in objective units (``None`` before HiGHS
    has one). ``interrupted``: ``"ctrl-c"`` or ``"stop"`` once either ended the search.
    """

    stop: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[float, float | None, float | None], None] | None = None
    offset: float = 0.0
    interrupted: str | None = None

    def report(self, elapsed: float, latest: dict[str, float]) -> None:
        if self.progress is None:
            return
        values = []
        for key in ("incumbent", "bound"):
            v = latest.get(key)
            values.append(v + self.offset if v is not None and math.isfinite(v) else None)
        self.progress(elapsed, values[0], values[1])


@dataclass(frozen=True)
class Model:
    """The cvxpy problem, its placement variable and what maps it back to devices.

    ``columns[c]`` is the device of column ``c`` of ``x``; a source missing from it gets
    ``1 - sum(x)``. ``offset`` is the objective's constant, which HiGHS's bound omits.
    """

    problem: cp.Problem
    x: cp.Variable
    columns: tuple[int, ...]
    offset: float = 0.0

    def shares(self, n_devices: int, source: int) -> np.ndarray | None:
        """The ``(n, k)`` share of every device, or None without a solution."""
        if self.x.value is None:
            return None
        x = np.asarray(self.x.value, dtype=float)
        full = np.zeros((x.shape[0], n_devices))
        full[:, list(self.columns)] = x
        if source not in self.columns:
            full[:, source] = 1.0 - x.sum(axis=1)
        return full

    def start_values(self, assignment: tuple[int, ...]) -> np.ndarray:
        x0 = np.zeros(self.x.shape)
        col = {d: c for c, d in enumerate(self.columns)}
        for v, d in enumerate(assignment):
            if d in col:
                x0[v, col[d]] = 1.0
        return x0


def build(problem: Problem, upper_bound: float = math.inf, relaxed: bool = False) -> Model:
    """The MILP of ``problem`` (or, with ``relaxed``, its LP relaxation)."""
    if problem.comm == "tensor":
        return _tensor_model(problem, upper_bound, relaxed)
    return _message_model(problem, relaxed)


def _reads(problem: Problem) -> tuple[list[int], list[int], list[int]]:
    """(tensor, producer, reader) per read; -1 stands for the source (host)."""
    st = problem.structure
    ts, ps, rs = [], [], []
    for t, p in enumerate(st.producer):
        readers = sorted(set(st.consumers[t])) + ([-1] if st.is_output[t] else [])
        for r in readers:
            if r != p:
                ts.append(t)
                ps.append(p)
                rs.append(r)
    return ts, ps, rs


def _tensor_model(problem: Problem, upper_bound: float, relaxed: bool) -> Model:
    src = problem.source
    if problem.semantics == "critical" and problem.objective != "latency":
        raise InputError("critical-path semantics optimises latency; use --objective latency")
    others = tuple(d for d in range(problem.n_devices) if d != src)
    n, k = problem.n_nodes, len(others)
    a_w, b_w = linear_weights(problem)
    times = np.array([problem.seconds[d] for d in others], dtype=float).T.reshape(n, k)
    allowed = np.isfinite(times)
    times = np.where(allowed, times, 0.0) * np.array([a_w[d] for d in others])
    assert problem.tensor_seconds is not None
    costs = np.array([problem.tensor_seconds[d] for d in others], dtype=float).T
    n_t = costs.shape[0]
    costs = b_w * costs.reshape(n_t, k)
    host = a_w[src] * np.array(problem.seconds[src], dtype=float)
    x = cp.Variable((n, k), boolean=not relaxed, name="x")
    cross = cp.Variable((n_t, k), nonneg=True, name="cross")
    on_host = 1 - cp.sum(x, axis=1)
    cons: list[Any] = [x >= 0, x <= allowed.astype(float), cp.sum(x, axis=1) <= 1]
    T, P, R = (np.array(z, dtype=int) for z in _reads(problem))
    # Row n (index -1) stands for the host; without model inputs or outputs (Tarnawski
    # files) no read touches it and x is used as it is.
    xp = cp.vstack([x, np.zeros((1, k))]) if len(T) and min(P.min(), R.min()) < 0 else x
    if len(T):
        cons += [cross[T] >= xp[P] - xp[R], cross[T] >= xp[R] - xp[P]]
    edges = problem.structure.edges
    U = np.array([u for u, _ in edges], dtype=int)
    V = np.array([v for _, v in edges], dtype=int)
    m = len(U)
    if problem.contiguous and m and k:
        y = cp.Variable((n, k), nonneg=True, name="y")
        cons += [y[V] >= y[U], y[V] >= x[U] - x[V], x + y <= 1]
    size = np.asarray(problem.node_memory_bytes)
    caps = np.array(
        [math.inf if problem.memory_bytes[d] is None else problem.memory_bytes[d] for d in others],
        dtype=float,
    )
    limited = np.flatnonzero(np.isfinite(caps))
    if len(limited) == k and k:
        cons.append(size @ x <= caps)
    elif len(limited):
        cons.append(size @ x[:, limited] <= caps[limited])
    for cls in problem.colour_classes():
        cons.append(x[cls[1:]] == np.ones((len(cls) - 1, 1)) @ x[cls[0] : cls[0] + 1])
    if problem.identical_servers and k > 1:
        g = cp.Variable((n, k), nonneg=True, name="first")
        cons += [g[0] <= x[0], g[1:] <= g[:-1] + x[1:], x[:, 1:] <= g[:, :-1]]
    calls = cp.sum(cp.multiply(times, x), axis=0) + cp.sum(cp.multiply(costs, cross), axis=0)
    if problem.semantics == "sequential":
        objective = host @ on_host + cp.sum(calls)
        return Model(cp.Problem(cp.Minimize(objective), cons), x, others, float(host.sum()))
    big = upper_bound if math.isfinite(upper_bound) else _trivial_bound(host, times, costs)
    # Slack on M keeps HiGHS's 1e-6 integrality tolerance from turning into infeasibility.
    big = big * 1.01 + 1e-6
    r = cp.Variable(n, nonneg=True, name="ready")
    s = cp.Variable(k, nonneg=True, name="start")
    total = cp.Variable(name="latency")
    cons += [r >= cp.multiply(host, on_host), total >= r, total <= big, total >= s + calls]
    # q_v: longest path to v with every node at its own device's time. Calls on a path are
    # sequential and a call lasts at least the sum of its nodes' times, so q <= r holds for
    # every integral placement; unlike r it has no big-M, so it lifts the LP bound.
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
    return Model(cp.Problem(cp.Minimize(total), cons), x, others)


def _trivial_bound(host: np.ndarray, times: np.ndarray, costs: np.ndarray) -> float:
    """Everything summed: host times, then per device its times and transfers (in this
    order, so that the big-M, and with it HiGHS's path, does not move with rounding)."""
    total = sum(host.tolist())
    for c in range(times.shape[1]):
        total += sum(times[:, c].tolist()) + sum(
            x for x in costs[:, c].tolist() if math.isfinite(x)
        )
    return float(total)


def _message_model(problem: Problem, relaxed: bool) -> Model:
    g = problem.graph
    n, k, src = problem.n_nodes, problem.n_devices, problem.source
    a, b = linear_weights(problem)
    secs = np.array(problem.seconds, dtype=float)
    allowed = np.isfinite(secs).T
    secs = np.where(np.isfinite(secs), secs, 0.0)
    x = cp.Variable((n, k), boolean=not relaxed, name="x")
    cons: list[Any] = [x >= 0, x <= allowed.astype(float), cp.sum(x, axis=1) == 1]
    onehot = np.zeros((1, k))
    onehot[0, src] = 1.0
    xp = cp.vstack([x, onehot])  # row n: the source, producer of the model inputs
    reads_t, reads_p, reads_c, out_t, out_p, nbytes = [], [], [], [], [], []
    st = problem.structure
    for j, t in enumerate(g.tensors):
        nbytes.append(float(t.nbytes))
        p = n if st.producer[j] < 0 else st.producer[j]
        for c in st.consumers[j]:
            reads_t.append(j)
            reads_p.append(p)
            reads_c.append(c)
        if st.is_output[j]:
            out_t.append(j)
            out_p.append(p)
    size = np.array(nbytes)
    total = max(float(size.sum()), 1.0)
    send = cp.Variable((len(nbytes), k * k), nonneg=True, name="send")
    comm: Any = 0
    for e in range(k):
        for f in range(k):
            if e == f:
                continue
            col = e * k + f
            link = problem.link(e, f)
            if link is None:
                cons.append(send[:, col] == 0)
            if reads_t:
                cons.append(send[reads_t, col] >= xp[reads_p, e] + x[reads_c, f] - 1)
            if out_t and f == src:
                cons.append(send[out_t, col] >= xp[out_p, e])
            if link is None:
                continue
            volume = size @ send[:, col]
            comm = comm + 8.0 / link.rate_bps * volume
            if link.rtt > 0:
                msg = cp.Variable(nonneg=True, boolean=not relaxed, name=f"msg{e}_{f}")
                cons += [msg >= volume / total, msg <= 1]
                comm = comm + link.rtt / 2.0 * msg
    busy = cp.hstack([secs[d] @ x[:, d] for d in range(k)])
    objective = np.array(a) @ busy + b * comm
    mem = problem.node_memory_bytes
    for d in range(k):
        cap = problem.memory_bytes[d]
        if cap is not None and math.isfinite(cap):
            cons.append(mem @ x[:, d] <= float(cap))
    for cls in problem.colour_classes():
        cons.append(x[cls[1:]] == np.ones((len(cls) - 1, 1)) @ x[cls[0] : cls[0] + 1])
    edges = st.edges
    if problem.contiguous and edges:
        U = np.array([u for u, _ in edges])
        V = np.array([v for _, v in edges])
        y = cp.Variable((n, k), nonneg=True, name="y")
        cons += [y[V] >= y[U], y[V] >= x[U] - x[V], x + y <= 1]
    return Model(cp.Problem(cp.Minimize(objective), cons), x, tuple(range(k)))


def run_solver(
    problem: cp.Problem,
    time_limit: float,
    threads: int = 1,
    start: tuple[cp.Variable, np.ndarray] | None = None,
    watch: Watch | None = None,
) -> str:
    """Solve with a licensed commercial solver if cvxpy has one, else HiGHS; returns its name.

    ``start`` gives values for one variable (the placement ``x``) that HiGHS completes into
    its first incumbent; cvxpy cannot pass a partial start to HiGHS itself. With a start or
    a ``watch``, HiGHS runs through :func:`_solve_highs_started`: ``time_limit`` then covers
    cvxpy's compilation too, the search stops at the relative gap :data:`REL_GAP`, and
    Ctrl-C or ``watch.stop`` ends it with its incumbent kept.
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
    try:
        if start is None and watch is None:
            with warnings.catch_warnings():  # a time limit is reported by the caller
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                problem.solve(solver="HIGHS", time_limit=float(time_limit), threads=int(threads))
        else:
            _solve_highs_started(problem, start, time_limit, threads, watch or Watch())
    except cp.error.SolverError as err:
        raise SolverError(f"HiGHS failed on the placement model: {err}") from None
    return "HIGHS"


def _highs_model(data: dict[str, Any]) -> Any:
    """The HighsModel of cvxpy's HiGHS problem data (as cvxpy's own HiGHS interface)."""
    import highspy as hp
    from cvxpy.reductions.solvers.conic_solvers.conic_solver import dims_to_solver_dict

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
    return model


def _solve_highs_started(
    problem: cp.Problem,
    start: tuple[cp.Variable, np.ndarray] | None,
    time_limit: float,
    threads: int,
    watch: Watch,
) -> None:
    """cvxpy's HiGHS path (get_problem_data -> highspy -> unpack_results) plus a MIP start,
    the gap tolerance :data:`REL_GAP`, and a stop: HiGHS runs in its own thread while this
    one waits, so Ctrl-C here (or ``watch.stop``) cancels the search and its incumbent is
    unpacked as after a time limit (``watch.interrupted`` says which)."""
    import highspy as hp

    t0 = time.perf_counter()
    data, chain, inverse = problem.get_problem_data(cp.HIGHS)
    time_limit = max(1.0, time_limit - (time.perf_counter() - t0))
    highs = hp.Highs()
    highs.setOptionValue("log_to_console", False)
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("time_limit", float(time_limit))
    highs.setOptionValue("threads", int(threads))
    highs.setOptionValue("mip_rel_gap", REL_GAP)
    highs.passModel(_highs_model(data))
    if start is not None:
        var, values = start
        offset = data[cp.settings.PARAM_PROB].var_id_to_col[var.id]
        flat = np.asarray(values, dtype=float).flatten(order="F")  # cvxpy columns: Fortran
        index = np.arange(offset, offset + flat.size, dtype=np.int32)
        highs.setSolution(int(flat.size), index, flat)
    latest: dict[str, float] = {}

    def on_mip(event: Any) -> None:  # HiGHS's thread: record, never raise
        latest["incumbent"] = float(event.data_out.mip_primal_bound)
        latest["bound"] = float(event.data_out.mip_dual_bound)

    highs.HandleUserInterrupt = True  # the interrupt callbacks honour cancelSolve()
    highs.cbMipInterrupt += on_mip
    thread = highs.startSolve()
    done = False
    while not done:
        try:
            done = highs.wait(0.1)[0]
            if watch.stop.is_set() and watch.interrupted is None:
                watch.interrupted = "stop"
                highs.cancelSolve()
            watch.report(time.perf_counter() - t0, latest)
        except KeyboardInterrupt:
            watch.interrupted = "ctrl-c"
            highs.cancelSolve()
    thread.join()
    status = highs.getModelStatus().name
    results = {
        "solution": highs.getSolution(),
        "basis": highs.getBasis(),
        "info": highs.getInfo(),
        # cvxpy knows no kInterrupt; a cancelled search has what a timed-out one has.
        "model_status": "kTimeLimit" if status == "kInterrupt" else status,
        "run_time": highs.getRunTime(),
    }
    with warnings.catch_warnings():
        # cvxpy warns "may be inaccurate" on every time limit; solve() reports the gap.
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        problem.unpack_results(results, chain, inverse)


def path_bound(problem: Problem) -> float | None:
    """A lower bound on the objective from node times alone (``comm="tensor"``, contiguous).

    Every node costs at least ``min_d a_d t_d(v)``, its fastest allowed device's weighted
    time, and transfers cost ``>= 0``. Critical semantics: a path's nodes run one after
    another (on the host by the ready-time rule; in calls, which are sequential along a
    path and last at least their nodes' times), so the longest path under those times
    bounds the latency (the ``q`` rows of the model). Sequential semantics: their sum.
    ``None`` under ``comm="message"`` or without contiguity. O(n + m).
    """
    if problem.comm != "tensor" or not problem.contiguous:
        return None
    a_w, _ = linear_weights(problem)
    secs = np.array(problem.seconds, dtype=float) * np.array(a_w, dtype=float)[:, None]
    fastest = np.where(np.isfinite(secs), secs, np.inf).min(axis=0)
    if not np.all(np.isfinite(fastest)):
        return None
    if problem.semantics == "sequential":
        return float(fastest.sum())
    longest = fastest.copy()
    for u, v in sorted(problem.structure.edges, key=lambda e: e[1]):
        longest[v] = max(longest[v], longest[u] + fastest[v])
    return float(longest.max()) if len(longest) else 0.0


def _gap(value: float, bound: float | None) -> float | None:
    """Relative gap ``(value - bound) / value``; 0 for a zero value."""
    if bound is None:
        return None
    return 0.0 if value <= 0 else max(0.0, (value - bound) / value)


def solve(
    problem: Problem,
    *,
    time_limit: float = 60.0,
    threads: int = 1,
    warm: Plan | None = None,
    watch: Watch | None = None,
) -> Plan:
    """Registry entry ``ilp``: the MILP, started from (and never worse than) ``warm`` or
    the heuristic's plan, stopped as soon as a bound proves the incumbent.

    Stop rules, in order: the start is proven by :func:`path_bound` (relative gap <=
    :data:`REL_GAP`; the MILP is not built); HiGHS closes the gap to :data:`REL_GAP`;
    the time limit; Ctrl-C or ``watch.stop``. The last two keep the incumbent (the start
    when HiGHS has none better); Ctrl-C does so only for a caller that passed a ``watch``
    (for others HiGHS is stopped and ``KeyboardInterrupt`` raised, as before).

    ``meta``: ``status`` (optimal / time_limit / interrupted), ``stop_reason`` (a
    sentence), ``bound`` (the larger of HiGHS's dual bound and the path bound), ``gap``,
    ``gap_tolerance``, ``path_bound``, ``start`` (the start's value), ``start_from``
    (heuristic or warm) and ``warm_start_only`` (true when the result is no better than
    the start).
    """
    from edgesplit.plan.heuristic import solve as heuristic_solve

    if time_limit <= 0:
        raise InputError(f"--time-limit must be positive, not {time_limit}")
    caller_watches = watch is not None  # else Ctrl-C is re-raised once HiGHS has stopped
    watch = watch or Watch()
    t0 = time.perf_counter()
    try:
        start: Plan | None = warm or heuristic_solve(problem)
    except InfeasiblePlanError:
        start = None
    start_value = math.inf if start is None else start.predicted["objective_value"]
    quick = path_bound(problem)
    meta: dict[str, Any] = {
        "start": None if start is None else start_value,  # JSON has no Infinity
        "start_from": "heuristic" if warm is None else "warm",
        "path_bound": quick,
        "gap_tolerance": REL_GAP,
    }
    if start is not None and quick is not None and start_value - quick <= REL_GAP * start_value:
        return _finish(problem, start.assignment, quick, meta, "optimal", t0, "heuristic")
    try:
        model = build(problem, upper_bound=start_value)
        watch.offset = model.offset
        left = max(1.0, time_limit - (time.perf_counter() - t0))
        x0 = None if start is None else (model.x, model.start_values(start.assignment))
        solver = run_solver(model.problem, left, threads, start=x0, watch=watch)
    except KeyboardInterrupt:  # while cvxpy compiles: keep the start, if there is one
        if start is None or not caller_watches:
            raise
        watch.interrupted = "ctrl-c"
        meta["solver"] = "none (interrupted while building the MILP)"
        return _finish(problem, start.assignment, quick, meta, "interrupted", t0, "heuristic")
    if watch.interrupted == "ctrl-c" and not caller_watches:
        raise KeyboardInterrupt
    status = model.problem.status
    info = getattr(model.problem.solver_stats, "extra_stats", None)
    has_incumbent = status == cp.OPTIMAL or (
        status == cp.USER_LIMIT and getattr(info, "primal_solution_status", 0) == 2
    )
    meta.update({"solver": solver, "solver_status": status})
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE) and start is None:
        raise InfeasiblePlanError(
            f"no placement of {problem.graph.name!r} satisfies memory, colour and contiguity "
            "limits; raise a device's memory or allow more devices"
        )
    if not has_incumbent and status != cp.USER_LIMIT:
        raise SolverError(
            f"{solver} returned status {status!r} on {problem.graph.name!r}"
            + ("" if start is None else f" although a plan of value {start_value:.6g} exists")
        )
    bound: float | None = None
    assignment = None if start is None else start.assignment
    source = "heuristic"
    shares = model.shares(problem.n_devices, problem.source)
    if has_incumbent and shares is not None and model.problem.value is not None:
        objective = float(model.problem.value)  # type: ignore[arg-type]
        meta["milp_objective"] = objective
        if info is not None and solver == "HIGHS" and math.isfinite(info.mip_dual_bound):
            # HiGHS reports its bound without cvxpy's constant offset; shift it back.
            bound = objective - (info.objective_function_value - info.mip_dual_bound)
        elif status == cp.OPTIMAL:
            bound = objective
        found = round_shares(problem, shares, 0.5)
        if score(problem, found) <= start_value:
            assignment, source = found, "milp"
    elif info is not None and solver == "HIGHS" and math.isfinite(info.mip_dual_bound):
        bound = float(info.mip_dual_bound) + model.offset
    if assignment is None:
        raise InfeasiblePlanError(
            f"no placement of {problem.graph.name!r} found within {time_limit:g} s; "
            "raise --time-limit or relax the limits"
        )
    if quick is not None:
        bound = quick if bound is None else max(bound, quick)
    if watch.interrupted is not None:
        outcome = "interrupted"
    else:
        outcome = "optimal" if status == cp.OPTIMAL else "time_limit"
    return _finish(problem, assignment, bound, meta, outcome, t0, source, watch.interrupted)


def _finish(
    problem: Problem,
    assignment: tuple[int, ...],
    bound: float | None,
    meta: dict[str, Any],
    outcome: str,
    t0: float,
    source: str,
    interrupted: str | None = None,
) -> Plan:
    """The plan with its bound, gap, status and a plain ``stop_reason``."""
    value = score(problem, assignment)
    if bound is not None:
        bound = min(max(0.0, bound), value)
    gap = _gap(value, bound)
    warm_only = meta["start"] is not None and value >= meta["start"] * (1 - REL_GAP)
    start = "its warm start" + (" (the heuristic)" if meta["start_from"] == "heuristic" else "")
    if outcome == "optimal" and "solver" not in meta:
        reason = f"the path bound proves {start} optimal; no MILP needed"
    elif outcome == "optimal":
        what = start if warm_only else "the MILP's incumbent"
        reason = f"the bound proves {what} optimal (gap <= {REL_GAP:g})"
    else:
        why = {
            "time_limit": "time limit reached",
            "interrupted": "stopped by Ctrl-C" if interrupted != "stop" else "stopped",
        }[outcome]
        reason = f"{why}; incumbent kept, gap {'unknown' if gap is None else f'{gap:.2%}'}"
        if warm_only:
            reason += f"; the MILP found nothing better than {start}"
    meta.update(
        {
            "status": outcome,
            "stop_reason": reason,
            "incumbent_from": source,
            "warm_start_only": warm_only,
            "bound": bound,
            "gap": gap,
            "solve_s": time.perf_counter() - t0,
        }
    )
    return plan_from_assignment(problem, "ilp", assignment, meta)
