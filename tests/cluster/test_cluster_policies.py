"""MAB convergence on a scripted bandit, DASO's ascent on the surrogate, placer feasibility."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from edgesplit.cluster.daso import Encoding, Surrogate, SurrogatePlacer, optimise_placement
from edgesplit.cluster.heuristics import BestFitPlacer, EFTPlacer, RandomPlacer
from edgesplit.cluster.interface import ClusterView, NewTask, PendingContainer, greedy_feasible
from edgesplit.cluster.mab import MABSplitter
from edgesplit.cluster.metrics import TaskRecord, context_rewards, jain, o_mab, reward
from edgesplit.errors import InputError, NotFittedError

# scripted bandit: P(met) per (context, arm); accuracy per arm
MET = {("h", "layer"): 0.95, ("h", "semantic"): 0.95, ("l", "layer"): 0.1, ("l", "semantic"): 0.9}
ACC = {"layer": 0.95, "semantic": 0.8}


def play(mab: MABSplitter, rounds: int, rng: np.random.Generator) -> None:
    tid = itertools.count()
    for t in range(rounds):
        left = []
        for _ in range(12):
            cx = "h" if rng.random() < 0.5 else "l"
            task = NewTask(next(tid), "a", 1, 10.0 if cx == "h" else 1.0, 5.0, t)
            d = mab.decide(task)
            met = rng.random() < MET[(cx, d)]
            left.append(
                TaskRecord(task.tid, "a", d, cx, 0.0, 0.0, 1.0 if met else 99.0, 50.0, ACC[d])
            )
        mab.observe(t, left)


def test_mab_converges_on_scripted_bandit(tmp_path) -> None:
    rng = np.random.default_rng(0)
    mab = MABSplitter(mode="train", k=0.1, gamma=0.2, seed=0)
    play(mab, 300, rng)
    # expected rewards (met + acc) / 2: h: L .95 > S .875; l: S .85 > L .525
    assert mab.q[("h", "layer")] > mab.q[("h", "semantic")]
    assert mab.q[("l", "semantic")] > mab.q[("l", "layer")]
    assert mab.q[("l", "semantic")] == pytest.approx(0.85, abs=0.08)
    assert mab.epsilon < 0.2  # decayed through the reward threshold
    path = mab.save(tmp_path / "mab.json")
    test = MABSplitter.load(path, mode="test")
    assert test.q == mab.q and test.n == mab.n
    picks = [test.decide(NewTask(i, "a", 1, 1.0, 5.0, 400 + i)) for i in range(50)]
    assert picks.count("semantic") > 40  # UCB exploits the better arm in context l


def test_mab_rejects_bad_mode_and_state(tmp_path) -> None:
    with pytest.raises(InputError, match="mode"):
        MABSplitter(mode="eval")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match="unreadable"):
        MABSplitter.load(bad)


def test_reward_terms_by_hand() -> None:
    ts = [
        TaskRecord(0, "a", "layer", "h", 0, 0, 10, 20, 0.9),  # met: (1 + .9)/2 = .95
        TaskRecord(1, "a", "layer", "h", 0, 0, 30, 20, 0.9),  # late: .45
        TaskRecord(2, "a", "semantic", "l", 0, 0, 10, 20, 0.8),  # .9
    ]
    assert context_rewards(ts) == {
        ("h", "layer"): pytest.approx(0.7),
        ("l", "semantic"): pytest.approx(0.9),
    }
    assert o_mab(ts) == pytest.approx(0.8)
    om, art, r = reward(ts, aec=0.2, interval_s=10.0, sla_max=4.0)
    assert om == pytest.approx(0.8)
    # mean response 50/3 s = 1.667 intervals / 4 = 0.4167
    assert art == pytest.approx(50 / 3 / 10 / 4)
    assert r == pytest.approx(0.8 - 0.5 * 0.2 - 0.5 * art)
    assert jain([1, 1, 1]) == 1.0 and jain([1, 0, 0, 0]) == pytest.approx(0.25)


def view(h: int = 3, ram: float = 1000.0) -> ClusterView:
    return ClusterView(
        interval=1,
        interval_s=100.0,
        mips=np.full(h, 1000.0),
        cores=np.full(h, 4.0),
        ram_mb=np.full(h, ram),
        ram_used_mb=np.array([0.0, 500.0, 900.0][:h]),
        jobs=np.array([0.0, 2.0, 4.0][:h]),
        queued_work=np.array([0.0, 1e11, 4e11][:h]),
        bandwidth_mbps=np.full(h, 100.0),
        latency_s=np.zeros(h),
        power_max_w=np.full(h, 5.0),
    )


def pending(n: int, ram: float = 300.0) -> list[PendingContainer]:
    return [PendingContainer(i, i, "a", "layer", 0, 1e10, ram, 0.0, None, 100.0) for i in range(n)]


@pytest.mark.parametrize("placer", [RandomPlacer(0), BestFitPlacer(), EFTPlacer()])
def test_placers_respect_ram(placer) -> None:
    v, cs = view(), pending(6)
    out = placer.place(v, cs)
    used = v.ram_used_mb.copy()
    for c, h in zip(cs, out):
        if h is not None:
            used[h] += c.ram_mb
    assert (used <= v.ram_mb).all()
    # capacity: host0 fits 3, host1 fits 1, host2 none -> at most 4 placed, all greedy-able
    assert sum(h is not None for h in out) == 4


def test_bestfit_and_eft_prefer_the_idle_host() -> None:
    assert BestFitPlacer().place(view(), pending(1)) == [0]
    assert EFTPlacer().place(view(), pending(1)) == [0]


def test_greedy_feasible_matches_brute_force_on_small_instance() -> None:
    rng = np.random.default_rng(3)
    v, cs = view(), pending(3, ram=250.0)
    scores = rng.random((3, 3))
    out = greedy_feasible(v, cs, scores)
    free = v.ram_free_mb
    feasible = [
        a
        for a in itertools.product(range(3), repeat=3)
        if all(sum(250.0 for x in a if x == h) <= free[h] for h in range(3))
    ]
    assert feasible and tuple(out) in feasible  # greedy always returns a feasible one here


def test_daso_improves_surrogate_score_over_start() -> None:
    torch.manual_seed(0)
    v, cs = view(), pending(4, ram=50.0)
    enc = Encoding(hosts=3, slots=8, decision_aware=True)
    model = Surrogate(enc, hidden=32)
    state = enc.state(v, cs)
    start = torch.zeros(8, 3)
    start[:4] = 1.0 / 3
    p, steps = optimise_placement(model, state, start, eta=0.5, max_steps=100)
    with torch.no_grad():
        assert float(model(state, p)) > float(model(state, start))
    assert torch.allclose(p[:4].sum(1), torch.ones(4)) and (p[4:] == 0).all()
    assert steps >= 1
    placer = SurrogatePlacer(model)
    out = placer.place(v, cs)
    assert placer.name == "daso" and all(h is not None for h in out)


def test_surrogate_placer_needs_a_model() -> None:
    with pytest.raises(NotFittedError):
        SurrogatePlacer().place(view(), pending(1))


def test_daso_finetunes_only_on_a_placement_of_the_same_interval() -> None:
    from edgesplit.cluster.metrics import IntervalMetrics

    enc = Encoding(hosts=3, slots=4, decision_aware=True)
    placer = SurrogatePlacer(Surrogate(enc), max_steps=2)
    placer.place(view(), pending(2))

    def metrics(i: int) -> IntervalMetrics:
        return IntervalMetrics(i, 0.0, 0.0, 0.0, 1.0, (0.0,) * 3, (), 0.5, 0.1, 0.4)

    before = [p.detach().clone() for p in placer.model.parameters()]  # type: ignore[union-attr]
    placer.observe(metrics(1))  # the placement of interval 1 against interval 1's reward
    after = [p.detach().clone() for p in placer.model.parameters()]  # type: ignore[union-attr]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    placer.observe(metrics(2))  # nothing was pending in interval 2: no fine-tuning
    again = list(placer.model.parameters())  # type: ignore[union-attr]
    assert all(torch.equal(a, b) for a, b in zip(after, again))


def test_gillis_picks_per_task_against_the_deadline() -> None:
    from edgesplit.cluster.apps import AppProfile, Fragment
    from edgesplit.cluster.heuristics import GillisSplitter, estimate_option_s

    # one idle 1000-MIPS 4-core host per fragment; fragment_cores 4 -> 1 G takes 1 s
    v = ClusterView(
        interval=0,
        interval_s=100.0,
        mips=np.full(4, 1000.0),
        cores=np.full(4, 4.0),
        ram_mb=np.full(4, 1000.0),
        ram_used_mb=np.zeros(4),
        jobs=np.zeros(4),
        queued_work=np.zeros(4),
        bandwidth_mbps=np.full(4, 1e6),
        latency_s=np.zeros(4),
        power_max_w=np.full(4, 5.0),
        fragment_cores=4.0,
    )
    g = 1e9
    prof = AppProfile(
        "a",
        (1, 1, 1),
        (1, 1),
        {
            "layer:1": (Fragment(0, 4 * g, 900, 0, 0),),
            "layer": (Fragment(0, 2 * g, 300, 0, 0), Fragment(1, 2 * g, 300, 0, 0)),
            "semantic": (Fragment(0, 2.5 * g, 300, 0, 0), Fragment(1, 2.5 * g, 300, 0, 0)),
            "compressed": (Fragment(0, g, 300, 0, 0),),
        },
        {"layer": 0.9, "semantic": 0.8, "compressed": 0.7},
    )
    assert estimate_option_s(v, prof, "layer", 1) == pytest.approx(4.0)
    assert estimate_option_s(v, prof, "semantic", 1) == pytest.approx(2.5)
    gillis = GillisSplitter({"a": prof})

    def pick(sla: float, ram_used: float = 0.0) -> str:
        vv = ClusterView(**{**v.__dict__, "ram_used_mb": np.full(4, ram_used)})
        return gillis.decide(NewTask(0, "a", 1, sla, 0.0, 0, vv))

    assert pick(10.0) == "layer:1"  # meets it: most accurate, then fewest fragments
    assert pick(10.0, ram_used=200.0) == "layer"  # the whole model no longer fits a host
    assert pick(3.0) == "semantic"  # only the parallel partition meets 3 s
    assert pick(1.0) == "semantic"  # none meets 1 s: the earliest estimate
    with pytest.raises(InputError, match="view"):
        gillis.decide(NewTask(0, "a", 1, 1.0, 0.0, 0))
