"""``reproduce samadi --quick``: layer and operation granularity, and what the paper implies.

The run goes through the CLI once (module fixture). Checked: the shared output contract
(:func:`tests.reproduce_contract.check_outputs`), the files and fields, the
exact MILP never worse than the heuristic it starts from nor than the user device alone,
and, since the op graph refines the layer graph, the layer optimum lifted onto the op
graph scores exactly the same and the op-level optimum is never worse than the layer one.
The refinement itself is checked on the per-node seconds: a layer's seconds on every
device are the sum of its member ops' seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.reproduce_contract import check_outputs

REL = 1e-9


@pytest.fixture(scope="module")
def samadi_run(tmp_path_factory: pytest.TempPathFactory, cli_uncaptured: Any) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("samadi")
    assert cli_uncaptured("reproduce", "samadi", "--quick", "--out", out, "--json").code == 0
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_outputs_have_both_granularities(samadi_run: tuple[Path, Any]) -> None:
    out, doc = samadi_run
    assert check_outputs(out, "samadi") == doc
    names = {Path(p).name for p in doc["figures"]}
    assert names == {"samadi_by_processors.png", "samadi_by_bandwidth.png"}
    assert (out / "table.md").stat().st_size > 0
    comparison = (out / "comparison.md").read_text()
    assert "operation granularity (resnet50)" in comparison and "| resnet50 | op |" in comparison
    assert set(doc["models"]) == set(doc["op_models"]) == set(doc["graphs"]) == {"resnet50"}
    sizes = doc["graphs"]["resnet50"]
    assert sizes["op_nodes"] >= sizes["layer_nodes"] > 0
    layer, op = doc["models"]["resnet50"], doc["op_models"]["resnet50"]
    assert [(p["processors"], p["mbps"]) for p in layer] == [
        (p["processors"], p["mbps"]) for p in op
    ]
    assert {p["processors"] for p in layer} >= {1, 2, 3}
    table = (out / "table.md").read_text()
    assert "| resnet50 | op |" in table and "| resnet50 | layer |" in table


@pytest.mark.slow
def test_exact_solver_never_worse_than_heuristic_or_user_only(
    samadi_run: tuple[Path, Any],
) -> None:
    _, doc = samadi_run
    for key in ("models", "op_models"):
        for p in doc[key]["resnet50"]:
            milp = p["milp"]["latency"]
            assert milp <= p["heuristic"]["latency"] * (1 + REL), p
            assert milp <= p["user_only"] * (1 + REL), p


@pytest.mark.slow
def test_op_level_optimum_at_most_layer_level(samadi_run: tuple[Path, Any]) -> None:
    _, doc = samadi_run
    for lp, op in zip(doc["models"]["resnet50"], doc["op_models"]["resnet50"], strict=True):
        assert op["lifted_layer"] == pytest.approx(lp["milp"]["latency"], rel=REL)
        assert op["milp"]["latency"] <= lp["milp"]["latency"] * (1 + REL)
        assert op["user_only"] == pytest.approx(lp["user_only"], rel=REL)


def test_op_seconds_refine_layer_seconds() -> None:
    from edgesplit.experiments.samadi import OpRefinement, make_problem
    from edgesplit.graph import trace
    from edgesplit.models import build

    module, x = build("alexnet")
    layer = trace(module, x, name="alexnet")
    op = trace(module, x, name="alexnet", granularity="op")
    refine = OpRefinement(layer, op)
    assert len(op.nodes) > len(layer.nodes)  # flatten is its own op
    coarse = np.asarray(make_problem(layer, 3, 100.0).seconds)
    fine = np.asarray(make_problem(op, 3, 100.0, overhead=refine.overhead).seconds)
    summed = np.zeros_like(coarse)
    for i, j in enumerate(refine.layer_of):
        summed[:, j] += fine[:, i]
    np.testing.assert_allclose(summed, coarse, rtol=1e-12)
    assert refine.lift(list(range(len(layer.nodes)))) == refine.layer_of
