"""Exact Pre-DNNOff solver: dynamic programming over the BranchyNet tree (Zuo 2024, eq. 4.9).

The GA of §4.4 searches ``|tiers|^L`` assignments. The objective, though, is separable
along the tree the exits' chains form: a trunk layer is shared by all exits at or after
its segment, and side branch ``k`` is read only by exit ``k``. Expected latency
(eq. 4.8) is therefore

    sum over trunk layers   W(l) * (T_a(l) + comm(a(prev), a(l), Output(prev)))
  + sum over branch layers  p_k  * (T_a(l) + comm(...))
  + sum_k p_k * (comm(a(last_k), mobile, Output(last_k)) + sum_{t used by chain k} load_t
                 + parse_k)

with ``W(l) = sum of p_k over exits whose chain contains l``. Every term depends only on a
layer, its predecessor and, through the loading intercepts, on the set of tiers the chain
used so far. A DP whose state is (tier of the last layer, set of tiers used on the path
from the input) walks the trunk once; at the end of segment ``k`` it prices side branch
``k`` by an inner chain DP from the same state (branches are disjoint, so each one's best
completion is independent of the others given the junction state). Shared-prefix
consistency holds by construction: a trunk layer has one tier in every chain.

Complexity O(L * T^2 * 2^T) for ``L`` layers and ``T`` tiers: 52 layers, 3 tiers is
~3,700 transitions. Optimality: the recursion enumerates every (tier, used-set) state, and
the objective decomposes exactly as above, so the minimum is global (tests compare it
with brute-force enumeration).
"""

from __future__ import annotations

from edgesplit.earlyexit.problem import MOBILE, EarlyExitProblem, to_plan
from edgesplit.plan.types import Plan

State = tuple[int, int]  # (tier of the last layer, bitmask of tiers used so far)
# state -> (cost so far, trunk genes, genes of the side branches already priced)
Table = dict[State, tuple[float, tuple[int, ...], tuple[tuple[int, ...], ...]]]


def _step(
    problem: EarlyExitProblem, table: Table, layer: int, weight: float, prev_bytes: float
) -> Table:
    """Place ``layer`` on every allowed tier after every state; keep the cheapest per state."""
    out: Table = {}
    secs = problem.layers[layer].seconds
    for (tier, used), (cost, genes, branches) in table.items():
        for t in problem.tiers:
            c = cost + weight * (secs[t] + problem.comm_seconds(tier, t, prev_bytes))
            key = (t, used | (1 << t))
            if key not in out or c < out[key][0]:
                out[key] = (c, (*genes, t), branches)
    return out


def _finish(
    problem: EarlyExitProblem, k: int, tier: int, used: int, last_bytes: float, weight: float
) -> float:
    """Exit ``k``'s terms that need the whole chain: return to mobile, loading, parsing."""
    fixed = sum(problem.loading[t] for t in range(3) if used >> t & 1) + problem.parsing[k - 1]
    return weight * (problem.comm_seconds(tier, MOBILE, last_bytes) + fixed)


def _branch(
    problem: EarlyExitProblem, k: int, state: State, junction_bytes: float
) -> tuple[float, tuple[int, ...]]:
    """Cheapest completion of side branch ``k`` from the junction ``state``.

    An exit no requirement selects (``p_k = 0``) adds nothing to eq. 4.8 whatever its
    branch does; its branch is still placed for the lowest Latency(k), at no cost.
    """
    table: Table = {state: (0.0, (), ())}
    prev = junction_bytes
    p_k = problem.probabilities[k - 1]
    weight = p_k if p_k > 0 else 1.0
    for layer in problem.branches[k - 1]:
        table = _step(problem, table, layer, weight, prev)
        prev = float(problem.layers[layer].output_bytes)
    cost, genes = min(
        ((c + _finish(problem, k, t, u, prev, weight), g) for (t, u), (c, g, _b) in table.items()),
        key=lambda cg: cg[0],
    )
    return (cost if p_k > 0 else 0.0), genes


def solve_exact(problem: EarlyExitProblem) -> Plan:
    """Minimum expected latency (eq. 4.8) over all assignments, by tree DP."""
    p = problem.probabilities
    table: Table = {(MOBILE, 0): (0.0, (), ())}
    prev = float(problem.input_bytes)
    for k, segment in enumerate(problem.trunk, start=1):
        weight = sum(p[k - 1 :])
        for layer in segment:
            table = _step(problem, table, layer, weight, prev)
            prev = float(problem.layers[layer].output_bytes)
        if k < problem.n_exits:
            for key, (cost, genes, branches) in list(table.items()):
                bcost, bgenes = _branch(problem, k, key, prev)
                table[key] = (cost + bcost, genes, (*branches, bgenes))
    best_cost, trunk_genes, branch_genes = min(
        (
            (c + _finish(problem, problem.n_exits, t, u, prev, p[-1]), g, b)
            for (t, u), (c, g, b) in table.items()
        ),
        key=lambda x: x[0],
    )
    assignment = list(trunk_genes) + [t for genes in branch_genes for t in genes]
    return to_plan(
        problem,
        assignment,
        "pre-dnnoff-exact",
        {"dp_objective_s": best_cost, "states": len(table)},
    )
