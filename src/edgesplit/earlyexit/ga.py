"""Pre-DNNOff's genetic algorithm (Zuo 2024, §4.4), built on DEAP.

* Encoding (Fig. 4.2): one *layer group* per layer, main branch first, then side branches
  1..P-1. A group is the one-hot vector ``(Sel_0, Sel_1, Sel_2)``; DEAP stores the index
  of its 1, which is the same chromosome (complete, non-redundant, always viable).
  :func:`chromosome_bits` gives the paper's 0/1 string.
* Fitness: expected latency (eq. 4.8), to be minimised. Roulette selection (eq. 4.10)
  needs larger-is-better and positive values, so the raw fitness is ``1 / E[latency]``,
  then linearly scaled (Goldberg 1989, §3: ``f' = a f + b`` keeps the mean, maps the
  best to ``c_mult`` times the mean, and is clipped so no scaled value is negative).
* Selection: roulette wheel (``deap.tools.selRoulette``) on the scaled fitness.
* Crossover: single point, points only between layer groups (``cxOnePoint`` on group
  indices), with probability ``cxpb`` per pair.
* Mutation: with probability ``mutpb`` an individual has one random group mutated: one of
  its zero bits becomes 1 and the rest 0, i.e. the layer moves to another tier.
* 50 generations by default (§5.2). The paper gives no population size, crossover or
  mutation rate, nor elitism: the defaults (population 60, crossover 0.8, mutation 0.3,
  no elitism) and ``c_mult`` 2 are ours, not the paper's, and so are the options beyond
  §4.4 (``selection="tournament"``, ``elitism``, ``gene_mutpb``, ``seed_uniform``).
  The best individual ever evaluated is returned, with best and mean expected latency per
  generation (Fig. 5.2).

Complexity O(generations * population * sum_k N_k) evaluations of eq. 4.6.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from deap import base, tools

from edgesplit.earlyexit.problem import EarlyExitProblem, to_plan
from edgesplit.errors import InputError
from edgesplit.plan.types import Plan


class _Fitness(base.Fitness):
    weights = (1.0,)


class _Individual(list):  # type: ignore[type-arg]
    """A chromosome: one tier index per layer group."""

    def __init__(self, genes: Sequence[int]) -> None:
        super().__init__(genes)
        self.fitness = _Fitness()


def chromosome_bits(genes: Sequence[int], n_tiers: int = 3) -> str:
    """The paper's 0/1 chromosome: ``Sel_0 Sel_1 Sel_2`` per layer group, concatenated."""
    return "".join("".join("1" if t == s else "0" for s in range(n_tiers)) for t in genes)


def linear_scaling(raw: Sequence[float], c_mult: float = 2.0) -> list[float]:
    """Goldberg's linear fitness scaling of positive, larger-is-better values."""
    fmax, fmin = max(raw), min(raw)
    favg = sum(raw) / len(raw)
    if fmax - favg <= 1e-15 * max(1.0, abs(favg)):
        return [1.0] * len(raw)
    if fmin > (c_mult * favg - fmax) / (c_mult - 1.0):
        a = (c_mult - 1.0) * favg / (fmax - favg)
        b = favg * (fmax - c_mult * favg) / (fmax - favg)
    else:
        a = favg / (favg - fmin)
        b = -fmin * favg / (favg - fmin)
    return [max(0.0, a * f + b) for f in raw]


def _mutate_group(ind: _Individual, tiers: Sequence[int], rng: random.Random) -> None:
    i = rng.randrange(len(ind))
    others = [t for t in tiers if t != ind[i]]
    if others:
        ind[i] = rng.choice(others)


def solve_ga(
    problem: EarlyExitProblem,
    *,
    generations: int = 50,
    population: int = 60,
    cxpb: float = 0.8,
    mutpb: float = 0.3,
    elitism: int = 0,
    c_mult: float = 2.0,
    selection: str = "roulette",
    gene_mutpb: float = 0.0,
    seed_uniform: bool = False,
    seed: int = 0,
) -> Plan:
    """Run §4.4's GA; the Plan's meta holds ``history`` (best/mean per generation).

    ``population``, ``cxpb``, ``mutpb`` and ``c_mult`` defaults are ours (the paper gives
    none); ``generations`` 50 is the paper's.
    """
    if selection not in ("roulette", "tournament"):
        raise InputError(f"GA selection must be roulette or tournament, not {selection!r}")
    if generations < 1 or population < 2:
        raise InputError("GA needs generations >= 1 and population >= 2")
    if not (0 <= cxpb <= 1 and 0 <= mutpb <= 1) or not 0 <= elitism < population:
        raise InputError("GA needs cxpb, mutpb in [0, 1] and 0 <= elitism < population")
    rng = random.Random(seed)
    # DEAP's operators draw from the module-level random; seed it for reproducible runs.
    random.seed(seed)
    tiers = list(problem.tiers)
    cache: dict[tuple[int, ...], float] = {}

    def expected(ind: Sequence[int]) -> float:
        key = tuple(ind)
        if key not in cache:
            cache[key] = problem.expected_latency(key)
        return cache[key]

    pop = [
        _Individual([rng.choice(tiers) for _ in range(problem.n_layers)]) for _ in range(population)
    ]
    if seed_uniform:
        # Heuristic seeding: the all-on-one-tier chromosomes join the random start.
        for j, t in enumerate(tiers[: population // 2]):
            pop[j] = _Individual([t] * problem.n_layers)
    best: tuple[float, tuple[int, ...]] = (float("inf"), ())
    history: list[dict[str, float]] = []
    found_at = 0
    for gen in range(generations + 1):
        values = [expected(ind) for ind in pop]
        for ind, scaled in zip(pop, linear_scaling([1.0 / v for v in values], c_mult)):
            ind.fitness.values = (scaled,)
        gbest = min(range(len(pop)), key=values.__getitem__)
        if values[gbest] < best[0] - 1e-15:
            best, found_at = (values[gbest], tuple(pop[gbest])), gen
        history.append({"generation": gen, "best_s": best[0], "mean_s": sum(values) / len(values)})
        if gen == generations:
            break
        elite = sorted(range(len(pop)), key=values.__getitem__)[:elitism]
        if selection == "roulette":
            chosen = tools.selRoulette(pop, population - elitism)
        else:
            chosen = tools.selTournament(pop, population - elitism, tournsize=3)
        offspring = [_Individual(list(ind)) for ind in chosen]
        for i in range(1, len(offspring), 2):
            if rng.random() < cxpb:
                tools.cxOnePoint(offspring[i - 1], offspring[i])
        for ind in offspring:
            if rng.random() < mutpb:
                _mutate_group(ind, tiers, rng)
            for i in range(len(ind)) if gene_mutpb > 0 else ():
                if rng.random() < gene_mutpb:
                    ind[i] = rng.choice([t for t in tiers if t != ind[i]] or [ind[i]])
        pop = [_Individual(list(pop[i])) for i in elite] + offspring
    meta: dict[str, Any] = {
        "history": history,
        "found_at_generation": found_at,
        "evaluations": len(cache),
        "seed": seed,
        "settings": {
            "generations": generations, "population": population, "cxpb": cxpb,
            "mutpb": mutpb, "elitism": elitism, "c_mult": c_mult,
            "selection": selection, "gene_mutpb": gene_mutpb, "seed_uniform": seed_uniform,
        },
        "chromosome": chromosome_bits(best[1]),
    }  # fmt: skip
    return to_plan(problem, best[1], "pre-dnnoff-ga", meta)
