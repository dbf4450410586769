"""The placement MILP over a planner :class:`~edgesplit.plan.problem.Problem`.

The Problem's semantics (sequential: compute plus communication; each tensor sent once
per reading device, one message per ordered device pair priced by Luger eq. 4.3
``bytes*8/bandwidth + rtt/2``; outputs return to the source) in linear form:

* ``x[v, d]`` binary, one device per node, 0 where ``seconds[d, v]`` is ``inf``;
* ``send[t, (e, f)] >= x[p, e] + x[c, f] - 1`` for tensor ``t`` produced by ``p`` (the
  source device for a model input) and read by ``c``; outputs: ``send[t, (e, src)] >=
  x[p, e]``; pairs without a link carry nothing;
* ``msg[(e, f)]`` binary, ``>= bytes(e, f) / total_bytes``, pays the ``rtt/2`` once;
* objective ``sum_d a_d busy_d + b comm`` (:func:`~edgesplit.plan.placement_problem.linear_weights`,
  exact for every objective), memory ``<=`` capacity;
* contiguity of every device's set (so the parts run in one pass, see
  :mod:`edgesplit.plan.placement_problem`) by the ``y`` rows of :mod:`edgesplit.plan.milp`.

Size: O(nk) binaries, O(k^2 (tensors + reads)) rows.
"""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np

from edgesplit.plan.placement_problem import linear_weights, node_edges
from edgesplit.plan.problem import Problem


def build_problem_model(
    problem: Problem, contiguous: bool = True, relaxed: bool = False
) -> tuple[cp.Problem, cp.Variable]:
    g = problem.graph
    n, k, src = problem.n_nodes, problem.n_devices, problem.source
    a, b = linear_weights(problem)
    secs = np.array(problem.seconds, dtype=float)
    allowed = np.isfinite(secs).T
    secs = np.where(np.isfinite(secs), secs, 0.0)
    x = cp.Variable((n, k), boolean=not relaxed, name="x")
    cons: list[cp.Constraint] = [x >= 0, x <= allowed.astype(float), cp.sum(x, axis=1) == 1]
    onehot = np.zeros((1, k))
    onehot[0, src] = 1.0
    xp = cp.vstack([x, onehot])  # row n: the source, producer of the model inputs
    reads_t, reads_p, reads_c, out_t, out_p, nbytes = [], [], [], [], [], []
    for j, t in enumerate(g.tensors):
        nbytes.append(float(t.nbytes))
        p = n if t.producer is None else g.index(t.producer)
        for c in t.consumers:
            reads_t.append(j)
            reads_p.append(p)
            reads_c.append(g.index(c))
        if t.is_output:
            out_t.append(j)
            out_p.append(p)
    size = np.array(nbytes)
    total = max(float(size.sum()), 1.0)
    send = cp.Variable((len(nbytes), k * k), nonneg=True, name="send")
    comm = 0
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
            comm = comm + 8.0 / link.bandwidth_bps * volume
            if link.rtt_s > 0:
                msg = cp.Variable(nonneg=True, boolean=not relaxed, name=f"msg{e}_{f}")
                cons += [msg >= volume / total, msg <= 1]
                comm = comm + link.rtt_s / 2.0 * msg
    busy = cp.hstack([secs[d] @ x[:, d] for d in range(k)])
    objective = np.array(a) @ busy + b * comm
    caps = problem.memory_bytes
    mem = problem.node_memory_bytes
    for d in range(k):
        if caps[d] is not None and math.isfinite(float(caps[d])):  # type: ignore[arg-type]
            cons.append(mem @ x[:, d] <= float(caps[d]))  # type: ignore[arg-type]
    edges = node_edges(g)
    if contiguous and edges:
        U = np.array([u for u, _ in edges])
        V = np.array([v for _, v in edges])
        y = cp.Variable((n, k), nonneg=True, name="y")
        cons += [y[V] >= y[U], y[V] >= x[U] - x[V], x + y <= 1]
    return cp.Problem(cp.Minimize(objective), cons), x
