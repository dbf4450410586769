"""Problem.from_system (compute sources, scaling, prices) and the plan CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from edgesplit.graph import Graph
from edgesplit.models import build
from edgesplit.plan import Plan, Problem, check_plan
from edgesplit.predict.profile import Profile, profile_graph, saved_seconds
from edgesplit.system import System, load_system


@pytest.fixture(scope="module")
def mnist_profile(tmp_path_factory: pytest.TempPathFactory, mnist_graph: Graph) -> Path:
    _, x = build("mnist_cnn")
    prof: Profile = profile_graph(mnist_graph, x, threads=1, repeats=1, warmup=0)
    path = tmp_path_factory.mktemp("prof") / "mnist_cnn.json"
    prof.save(path)
    return path


def _system(profile: Path) -> dict[str, object]:
    return {
        "devices": [
            {
                "name": "edge",
                "tier": "edge",
                "clock": "1.3GHz",
                "compute": {"profile": str(profile), "reference_clock": "2.6GHz"},
            },
            {
                "name": "cloud",
                "tier": "cloud",
                "compute": {"relative_to": "edge", "speed_factor": 4},
            },
        ],
        "links": [{"a": "edge", "b": "cloud", "bandwidth": "7.2mbit", "rtt": "40ms"}],
    }


def test_from_system_scales_and_prices(mnist_graph: Graph, mnist_profile: Path) -> None:
    system = System.model_validate(_system(mnist_profile))
    problem = Problem.from_system(system, mnist_graph, strategy="own")
    base = torch.tensor(saved_seconds(mnist_profile, mnist_graph), dtype=torch.float64)
    assert problem.seconds[0] == pytest.approx((base * 2.0).tolist())  # 2.6 GHz / 1.3 GHz
    assert problem.seconds[1] == pytest.approx((base * 2.0 / 4).tolist())
    assert problem.price_per_second == (0.0, 0.1664 / 3600)
    assert problem.link(0, 1).rate_bps == 7.2e6  # type: ignore[union-attr]
    rented = Problem.from_system(system, mnist_graph, strategy="rent")
    assert rented.price_per_second[0] == pytest.approx(0.224 / 3600)


def test_from_system_needs_a_source(mnist_graph: Graph) -> None:
    system = System.model_validate(
        {"devices": [{"name": "a", "tier": "edge"}, {"name": "b", "tier": "cloud"}]}
    )
    with pytest.raises(ValueError, match="no compute source"):
        Problem.from_system(system, mnist_graph)
    n = len(mnist_graph.nodes)
    p = Problem.from_system(system, mnist_graph, seconds={"a": [1.0] * n, "b": [0.5] * n})
    assert p.source == 0 and p.link(0, 1) is None


def test_plan_command_json(cli, mnist_profile: Path, tmp_path: Path, mnist_graph: Graph) -> None:
    out = tmp_path / "plan.json"
    doc = cli(
        "plan", "mnist_cnn", "--edge-profile", str(mnist_profile), "--bandwidth", "7.2mbit",
         "--rtt", "40ms", "--clock", "1.2GHz", "--profile-clock", "2.4GHz",
         "--cloud-speedup", "4", "--objective", "weighted", "--weight", "0.55",
         "-o", str(out), "--json",
    ).json()  # fmt: skip
    n = len(mnist_graph.nodes)
    assert len(doc["candidates"]) == n + 1
    assert doc["chosen"]["cut"] == doc["optimal"]["luger_cl"]
    assert set(doc["pareto"]) >= {doc["optimal"]["latency"], doc["optimal"]["cost"]}
    plan = Plan.from_dict(json.loads(out.read_text()))
    assert plan.cut == doc["chosen"]["cut"]
    row = doc["candidates"][plan.cut]
    assert row["latency_s"] == pytest.approx(plan.predicted["latency_s"])


def test_plan_command_with_system_file(cli, mnist_profile: Path, tmp_path: Path) -> None:
    path = tmp_path / "system.yaml"
    path.write_text(yaml.safe_dump(_system(mnist_profile)))
    doc = cli("plan", "mnist_cnn", "--system", path, "--json").json()
    problem = Problem.from_system(load_system(path), _graph(), strategy="rent")
    check_plan(problem, Plan.from_dict(doc["chosen"]))


def _graph() -> Graph:
    from edgesplit.graph import trace

    module, x = build("mnist_cnn")
    return trace(module, x, name="mnist_cnn")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bandwidth", "fast"], "bandwidth 'fast'"),
        (["--bandwidth", "1mbit", "--rtt", "40 parsecs"], "duration"),
        (["--bandwidth", "1mbit", "--weight", "2"], "--weight"),
        (["--bandwidth", "1mbit", "--strategy", "borrow"], "--strategy"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    cli, assert_input_error, mnist_profile: Path, args: list[str], needle: str
) -> None:
    assert_input_error(cli("plan", "mnist_cnn", "--edge-profile", mnist_profile, *args), needle)
