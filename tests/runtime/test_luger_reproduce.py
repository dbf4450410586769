"""``reproduce luger2023`` end to end on a small setting (real engine, uvicorn, shaper).

mnist_cnn, 2 settings, 2 repeats, a 3-clock grid: the structure of results.json (Pi-class
edge, interior_share, the §7.1 figures, the clock fit, the Table 7.1 spread, the load
average), every figure written, comparison.md's Table 7.1 and §7.1 rows, the shared output contract
(:func:`tests.reproduce_contract.check_outputs`), a loadable clock model, and the invariants the thesis
implies: CL's cost lies between OC's and OL's per setting (Algorithm 1 picks between the
two optima of the same predicted table: checked on the predictions, exact), regret >= 0,
the gap vs the worst split in [0, 1], interior_share in [0, 1].
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from edgesplit.experiments.luger2023 import EDGE_CLOCK_SCALE, fmt_pct, pct, reproduce
from edgesplit.graph import trace
from edgesplit.models import build
from edgesplit.predict.clock import LugerEdgeModel
from edgesplit.predict.profile import profile_graph
from edgesplit.predict.store import load_predictor
from edgesplit.runtime.conditions import ConditionSchedule
from edgesplit.runtime.loop import RunOptions, build_run
from edgesplit.runtime.rescheduler import Observation
from tests.conftest import assert_input_error
from tests.reproduce_contract import check_outputs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("luger")
    doc = reproduce(
        out=out, models=("mnist_cnn",), settings_n=2, repeats=2, grid=(0.24, 0.48, 0.78)
    )
    return doc, out


@pytest.mark.slow
def test_results_json_structure(run: tuple[dict, Path]) -> None:
    doc, out = run
    on_disk = check_outputs(out, "luger2023", quick=False)
    assert on_disk == json.loads(json.dumps(doc))  # the document returned is the one written
    rows = (out / "comparison.md").read_text().splitlines()
    assert sum(r.startswith("| Table 7.1 mnist_cnn/") for r in rows) == 2 * 6
    assert sum(r.startswith("| §7.1 mnist_cnn") for r in rows) == 1
    assert doc["edge_clock_scale"] == EDGE_CLOCK_SCALE == 0.3
    assert all(s["clock_ghz"] < 1.0 for s in doc["settings"])  # Pi-class: 0.3 × ~1.5 GHz
    assert 0.0 <= doc["interior_share"] <= 1.0
    sec = doc["section_7_1"]["mnist_cnn"]
    assert 0.0 <= sec["interior_share"] <= 1.0
    assert sec["thesis"] == {"gap_vs_worst_pct": 30.34, "top5_pct": 76.47}
    for who in ("OL", "OL_eq41"):
        assert 0.0 <= sec[who]["gap_vs_worst_pct"] <= 100.0
        assert 0.0 <= sec[who]["top3_pct"] <= sec[who]["top5_pct"] <= 100.0
        assert sec[who]["median_regret_pct"] >= 0.0
    for split in doc["splits"]:
        for who in ("OL", "OL_eq41"):
            r = split[who]
            assert r["regret"] >= 0.0 and 0.0 <= r["gap_vs_worst"] <= 1.0 and r["rank"] >= 1
            assert str(r["cut"]) in split["measured"]
        best = split["best"]
        assert split["interior"] == (0 < best < split["n"])
        assert split["measured"][str(best)]["latency"] == min(
            v["latency"] for v in split["measured"].values()
        )
    fit = doc["clock_fit"]
    assert set(fit["power_law"]) == {"a", "b", "clock_unit"}
    acc = fit["accuracy_held_out_clocks"]["mnist_cnn"]
    assert acc["eq41_mape_pct"] >= 0 and acc["inverse_clock_mape_pct"] >= 0
    assert "by construction" in fit["note"]
    assert len(doc["clock_grid"]) == 3
    for key, entries in doc["table_7_1_spread"].items():
        for name, rng in entries.items():
            if rng is not None:
                assert rng[0] <= rng[1]
            # an entry whose median is defined has a defined spread only if every repeat is
            if doc["table_7_1"][key][name] is None:
                assert rng is None


@pytest.mark.slow
def test_cost_of_cl_between_oc_and_ol(run: tuple[dict, Path]) -> None:
    _, out = run
    rows: dict[tuple[str, str], dict[str, float]] = {}
    with (out / "measurements.csv").open() as fh:
        for r in csv.DictReader(fh):
            rows.setdefault((r["strategy"], r["setting"]), {})[r["choice"]] = float(
                r["predicted_cost"]
            )
    assert len(rows) == 4  # 2 strategies x 2 settings
    for picks in rows.values():
        assert picks["OC"] <= picks["CL"] <= picks["OL"]


@pytest.mark.slow
def test_figures_and_clock_model(run: tuple[dict, Path]) -> None:
    doc, out = run
    names = {Path(p).name for p in doc["figures"]}
    expected = {
        "weights_mnist_cnn.png", "pareto_mnist_cnn.png", "clock_fit.png",
        "clock_grid_mnist_cnn.png", "latency_mnist_cnn_own.png", "cost_mnist_cnn_rent.png",
    }  # fmt: skip
    assert expected <= names
    for p in doc["figures"]:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = load_predictor(out / "clock_model_mnist_cnn.json")
    assert isinstance(model, LugerEdgeModel)
    a, b = doc["clock_fit"]["power_law"]["a"], doc["clock_fit"]["power_law"]["b"]
    assert (model.power_law.a_, model.power_law.b_) == (a, b)
    table = (out / "table_7_1.md").read_text()
    assert "## mnist_cnn" in table and "Pi-class" in table


def test_undefined_ratio_is_na() -> None:
    assert pct(1.0, 0.0) is None and fmt_pct(None) == "n/a"
    assert pct(1.0, 2.0) == 50.0 and fmt_pct(50.0) == "+50.00"


@pytest.mark.slow
def test_plan_and_run_use_the_saved_clock_model(
    run: tuple[dict, Path], tmp_path: Path, cli: Any
) -> None:
    _, out = run
    saved = out / "clock_model_mnist_cnn.json"
    model = load_predictor(saved)
    assert isinstance(model, LugerEdgeModel)
    module, x = build("mnist_cnn")
    graph = trace(module, x, name="mnist_cnn")
    profile = tmp_path / "mnist_cnn.json"
    profile_graph(graph, x, threads=1, repeats=1, warmup=0).save(profile)
    args = ("plan", "mnist_cnn", "--edge-profile", profile, "--bandwidth", "7.2mbit")
    res = cli(*args, "--clock", "0.5GHz", "--edge-model", saved, "--json")
    assert res.code == 0, res.stderr
    rows = json.loads(res.stdout)["candidates"]
    slope = model.slope(0.5e9)  # eq. 4.1: edge(SP) = slope(CS) * SP
    assert [r["edge_s"] for r in rows] == pytest.approx([slope * r["cut"] for r in rows])
    assert_input_error(cli(*args, "--edge-model", saved), "--clock")
    # run: the planner's edge seconds are the same eq. 4.1 line at the observed clock.
    opts = RunOptions(
        model="mnist_cnn",
        schedule=ConditionSchedule.constant(7.2, 20, 0.5),
        edge_model=str(saved),
        profile_repeats=1,
    )
    parts = build_run(opts, graph=graph)
    try:
        table = parts.planner.table(Observation(7.2, 0.02, 0.5))
    finally:
        parts.close()
    assert list(table.edge_s) == pytest.approx([slope * k for k in range(len(table))])
