"""Wire codecs chosen by the planner (issue 13, point 3).

Oracles: an evaluator written here from the cost formula of
:mod:`edgesplit.plan.codec_choice`'s docstring (per message: eq. 4.3 on the bytes after
the codec plus raw bytes times the encode and decode seconds per byte), sharing no code
with the planner; brute force over every (codec, cut) pair; and, through the engine and a
real server, ``torch.equal`` against the unsplit model for a lossless codec.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
import zstandard

from edgesplit.errors import InputError
from edgesplit.graph import Graph
from edgesplit.models import build
from edgesplit.plan import codec_choice as cc
from edgesplit.plan.problem import Problem
from edgesplit.plan.registry import solve
from edgesplit.predict.codec_costs import INT8_CHANNEL_BYTES, CodecRate, CodecRecord
from edgesplit.predict.profile import load_profile, profile_graph
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.system.link import CODECS, Link

from .conftest import message_problem

# Per byte, encode and decode (s): zstd slow, the casts fast, int8 in between.
RATES = {"none": (0.0, 0.0), "zstd": (4e-9, 2e-9), "fp16": (4e-10, 2e-10),
         "bf16": (4e-10, 2e-10), "int8": (2e-9, 1e-9)}  # fmt: skip
ZSTD = 0.6


def record(compute_s: float, graph: Graph) -> CodecRecord:
    return CodecRecord(
        rates={
            c: CodecRate(encode_s_per_byte=e, decode_s_per_byte=d, bytes_ratio=0.5)
            for c, (e, d) in RATES.items()
        },
        zstd_ratio={t.name: ZSTD for t in graph.tensors},
        compute_s=compute_s,
        threads=1,
    )


def all_codecs(problem: Problem) -> Problem:
    links = {k: v.model_copy(update={"codecs": CODECS}) for k, v in problem.links.items()}
    return replace(problem, links=links)


def edge_cloud(graph: Graph, bandwidth_bps: float) -> Problem:
    """A slow edge (holding the input) and a cloud 20 times faster, every codec allowed."""
    rng = np.random.default_rng(1)
    edge = rng.uniform(5e-3, 1.5e-2, len(graph.nodes))
    return all_codecs(Problem.two_tier(graph, edge, edge / 20, bandwidth_bps=bandwidth_bps,
                                       rtt_s=0.01))  # fmt: skip


# -- the oracle ----------------------------------------------------------------------------


def wire(t: object, codec: str) -> float:
    """Bytes after ``codec`` from the definitions (fp16 halves float32, int8 quarters it)."""
    shape, dtype, nbytes = t.shape, t.dtype, t.nbytes  # type: ignore[attr-defined]
    numel = math.prod(shape)
    if codec == "none" or nbytes == 0:
        return float(nbytes)
    if codec == "zstd":
        return nbytes * ZSTD
    if codec in ("fp16", "bf16"):
        return 2.0 * numel if dtype == "float32" else float(nbytes)
    channels = shape[1] if len(shape) >= 3 else (shape[0] if len(shape) == 2 else 1)
    return numel + channels * INT8_CHANNEL_BYTES


def oracle(
    problem: Problem, assignment: Sequence[int], codecs: Mapping[frozenset[int], str]
) -> float:
    """Sequential latency: busy seconds plus, per (sender, receiver), one message."""
    g, src, a = problem.graph, problem.source, problem.devices
    where = {n.name: assignment[n.index] for n in g.nodes}
    speed = [float(problem.seconds[d].sum()) / record_compute(problem) for d in range(len(a))]
    raw: dict[tuple[int, int], float] = {}
    sent: dict[tuple[int, int], float] = {}
    for t in g.tensors:
        p = src if t.producer is None else where[t.producer]
        readers = {where[c] for c in t.consumers} | ({src} if t.is_output else set())
        for r in readers - {p}:
            c = codecs.get(frozenset((p, r)), "none")
            raw[(p, r)] = raw.get((p, r), 0.0) + t.nbytes
            sent[(p, r)] = sent.get((p, r), 0.0) + wire(t, c)
    total = sum(problem.seconds[d, i] for i, d in enumerate(assignment))
    for (s, r), nbytes in raw.items():
        if nbytes <= 0:
            continue
        link = problem.links[frozenset((s, r))]
        c = codecs.get(frozenset((s, r)), "none")
        total += sent[(s, r)] * 8 / link.rate_bps + link.rtt / 2
        total += nbytes * (RATES[c][0] * speed[s] + RATES[c][1] * speed[r])
    return total


def record_compute(problem: Problem) -> float:
    return float(problem.seconds[problem.source].sum())


def model_of(problem: Problem) -> cc.CodecModel:
    return cc.CodecModel.from_record(record(record_compute(problem), problem.graph), problem)


# -- two tiers -----------------------------------------------------------------------------


@pytest.mark.parametrize("bandwidth", [1e6, 5e6, 2e7, 1e12])
def test_joint_choice_is_the_brute_force_optimum(alexnet_graph: Graph, bandwidth: float) -> None:
    problem = edge_cloud(alexnet_graph, bandwidth)
    codec, cut, tables = cc.choose_two_tier(problem, model_of(problem), "auto")
    n = problem.n_nodes
    rows = {
        (c, k): oracle(problem, [0 if i < k else 1 for i in range(n)],
                       {frozenset((0, 1)): c})
        for c in CODECS for k in range(n + 1)
    }  # fmt: skip
    for (c, k), latency in rows.items():
        assert tables[c].latency_s[k] == pytest.approx(latency, rel=1e-9), (c, k)
    assert rows[(codec, cut)] == pytest.approx(min(rows.values()), rel=1e-12)


def test_auto_picks_none_at_high_bandwidth_and_compresses_at_low(alexnet_graph: Graph) -> None:
    fast = edge_cloud(alexnet_graph, 1e12)
    assert cc.choose_two_tier(fast, model_of(fast), "auto")[0] == "none"
    slow = edge_cloud(alexnet_graph, 5e6)
    codec, cut, tables = cc.choose_two_tier(slow, model_of(slow), "auto")
    assert codec != "none" and 0 <= cut < slow.n_nodes
    assert tables[codec].bytes[cut] < tables["none"].bytes[cut]  # it sends fewer bytes
    assert tables[codec].latency_s[cut] < tables["none"].latency_s.min()
    lossless, _, _ = cc.choose_two_tier(slow, model_of(slow), "auto-lossless")
    assert lossless in ("none", "zstd")


def test_a_link_allows_only_its_codecs(alexnet_graph: Graph) -> None:
    problem = edge_cloud(alexnet_graph, 5e6)
    only = {k: v.model_copy(update={"codecs": ("none", "zstd")}) for k, v in problem.links.items()}
    narrow = replace(problem, links=only)
    assert cc.choose_two_tier(narrow, model_of(narrow), "auto")[0] in ("none", "zstd")
    with pytest.raises(InputError, match=r"link edge–cloud does not allow it \(allowed: none, zs"):
        cc.allowed(narrow, "int8")
    with pytest.raises(InputError, match="--codec must be one of"):
        cc.allowed(narrow, "lz4")


# -- more devices --------------------------------------------------------------------------


def test_placement_with_codecs_is_priced_exactly_and_beats_none(dag_graph: Graph) -> None:
    base = message_problem(dag_graph, seed=3, k=3)
    slow = {k: Link.of(2e5, 1e-3, CODECS) for k in base.links}
    problem = replace(base, links=slow)
    model = model_of(problem)
    plan, codecs = cc.solve_with_codecs(problem, "exhaustive", model, "auto")
    mine = oracle(problem, plan.assignment, codecs)
    assert plan.predicted["latency_s"] == pytest.approx(mine, rel=1e-9)
    ev = cc.evaluate_codecs(problem, plan.assignment, codecs, model)
    assert ev.latency_s == pytest.approx(mine, rel=1e-9)
    plain = solve(problem, "exhaustive")
    assert plan.predicted["latency_s"] <= plain.predicted["latency_s"] * (1 + 1e-9)
    assert set(plan.meta["codecs"].values()) <= set(CODECS) - {"none"}
    for key in plan.meta["codecs"]:
        a, b = key.split("|")
        assert frozenset((problem.device_index(a), problem.device_index(b))) in codecs


# -- the CLI and the engine ----------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_codec_profile(tmp_path_factory: pytest.TempPathFactory, mnist_graph: Graph) -> Path:
    _, x = build("mnist_cnn")
    prof = profile_graph(mnist_graph, x, threads=1, repeats=1, warmup=0, codecs=True)
    assert prof.codecs is not None and set(prof.codecs.rates) == set(CODECS)
    path = tmp_path_factory.mktemp("prof") / "mnist_cnn.json"
    prof.save(path)
    return path


def test_bad_codec_is_one_line(cli, assert_input_error, mnist_codec_profile: Path) -> None:  # type: ignore[no-untyped-def]
    args = ("plan", "mnist_cnn", "--edge-profile", mnist_codec_profile, "--bandwidth", "1mbit")
    assert_input_error(cli(*args, "--codec", "lz4"), "--codec", "auto-lossless")


def test_codec_not_on_the_system_link_is_one_line(  # type: ignore[no-untyped-def]
    cli, assert_input_error, mnist_codec_profile: Path, tmp_path: Path
) -> None:
    system = {
        "devices": [
            {"name": "edge", "tier": "edge", "compute": {"profile": str(mnist_codec_profile)}},
            {
                "name": "cloud",
                "tier": "cloud",
                "compute": {"relative_to": "edge", "speed_factor": 50},
            },
        ],
        "links": [{"a": "edge", "b": "cloud", "bandwidth": "1mbit", "codecs": ["none", "zstd"]}],
    }
    path = tmp_path / "system.yaml"
    path.write_text(yaml.safe_dump(system))
    out = tmp_path / "plan.json"
    result = cli("plan", "mnist_cnn", "--system", path, "--codec", "int8", "-o", out)
    assert_input_error(result, "edge–cloud", "int8")
    assert not out.exists()


def test_lossless_codec_runs_torch_equal_through_the_engine(  # type: ignore[no-untyped-def]
    cli, mnist_codec_profile: Path, tmp_path: Path
) -> None:
    plan_path = tmp_path / "plan.json"
    doc = cli(
        "plan", "mnist_cnn", "--edge-profile", mnist_codec_profile, "--bandwidth", "100mbit",
        "--cloud-speedup", "1000", "--codec", "zstd", "-o", plan_path, "--json",
    ).json()  # fmt: skip
    saved = json.loads(plan_path.read_text())
    assert saved["cut"] < len(saved["assignment"])  # something crosses the link
    assert saved["meta"]["codecs"] == {"cloud|edge": "zstd"} and doc["codec"] == "zstd"
    assert saved["predicted"]["codec_s"] > 0
    app = create_app(ServerConfig(models=("mnist_cnn",)))
    # The plan records the model's fingerprint: the served model's, so the server accepts it.
    assert saved["meta"]["fingerprint"] == app.state.store.fingerprint("mnist_cnn")
    with BackgroundServer(app) as server:
        topology = {
            "devices": [{"name": "edge", "url": "local"}, {"name": "cloud", "url": server.url}],
            "links": [{"a": "edge", "b": "cloud", "bandwidth": "1gbit",
                       "codecs": ["none", "zstd"]}],
        }  # fmt: skip
        topo = tmp_path / "topology.yaml"
        topo.write_text(yaml.safe_dump(topology))
        run = cli("run-plan", plan_path, "--topology", topo, "-n", "2", "--check", "--json")
    assert run.code == 0, run.stderr
    out = run.json()
    assert out["codecs"] == {"cloud|edge": "zstd"}
    assert out["bitwise_expected"] and out["equal_to_local"]
    hops = [h for r in out["records"] for h in r["hops"]]
    assert hops and all(h["codec"] == "zstd" for h in hops)


def test_profile_record_loads_back(mnist_codec_profile: Path) -> None:
    prof = load_profile(mnist_codec_profile)
    assert prof.codecs is not None
    assert prof.codecs.compute_s == pytest.approx(prof.sum_of_medians_s)
    # The recorded zstd ratio is what zstd itself makes of that tensor's raw bytes.
    _, x = build("mnist_cnn")
    frame = zstandard.ZstdCompressor(level=1).compress(x.numpy().tobytes())
    assert prof.codecs.zstd_ratio["x"] == pytest.approx(len(frame) / (x.numel() * 4), rel=1e-12)


def test_codec_solver_is_the_replanning_hook(alexnet_graph: Graph) -> None:
    """The callable the re-planner takes: the joint plan, its codec in meta, priced exactly."""
    problem = edge_cloud(alexnet_graph, 5e6)
    solver = cc.codec_solver(record(record_compute(problem), problem.graph), "auto")
    plan = solver(problem)
    (codec,) = plan.meta["codecs"].values()
    assert plan.meta["codecs"] == {"cloud|edge": codec} and codec != "none"
    mine = oracle(problem, plan.assignment, {frozenset((0, 1)): codec})
    assert plan.predicted["latency_s"] == pytest.approx(mine, rel=1e-9)
    with pytest.raises(InputError, match="--codec must be one of"):
        cc.codec_solver(record(1.0, problem.graph), "gzip")
