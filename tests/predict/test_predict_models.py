"""Predictors: recovery of known laws, the paper's coefficient sets, and the contracts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from edgesplit.errors import InputError, NotFittedError
from edgesplit.graph import Graph, trace
from edgesplit.models import build
from edgesplit.predict.accuracy import Dataset, holdout_report, metrics
from edgesplit.predict.clock import (
    ClockPowerLaw,
    LugerCloudModel,
    LugerEdgeModel,
    normalised_slopes,
)
from edgesplit.predict.coefficients import PreDNNOffModel
from edgesplit.predict.features import input_bytes, kernel_term
from edgesplit.predict.layer_regression import LayerTypeRegressor
from edgesplit.predict.profile import profile_graph
from edgesplit.predict.profile_predictor import ProfilePredictor
from edgesplit.predict.store import load_predictor, save_predictor


@pytest.fixture(scope="module")
def graphs() -> list[Graph]:
    out = []
    for name in ("alexnet", "mnist_cnn", "lenet"):
        module, x = build(name)
        out.append(trace(module, x, name=name))
    return out


def _nodes(graphs: list[Graph]) -> list:
    return [n for g in graphs for n in g.nodes]


def test_linear_law_is_recovered_exactly(graphs: list[Graph]) -> None:
    nodes = _nodes(graphs)
    # a known linear law in the Table 4.1 features of each kind
    y = np.array([1e-4 + 2e-9 * input_bytes(n) + 1e-12 * kernel_term(n) for n in nodes])
    est = LayerTypeRegressor(form="linear", features="table4.1").fit(nodes, y)
    fitted = {k for k, m in est.models_.items()}
    mask = np.array([n.kind in fitted for n in nodes])
    assert np.allclose(est.predict(nodes)[mask], y[mask], rtol=1e-6)


def test_power_law_is_recovered_by_loglog(graphs: list[Graph]) -> None:
    nodes = [n for n in _nodes(graphs) if n.kind == "conv"]
    y = np.array([3e-9 * (1 + n.flops) ** 0.8 for n in nodes])
    est = LayerTypeRegressor(form="auto", features="extended").fit(nodes, y)
    assert est.models_["conv"].form == "loglog"
    assert np.allclose(est.predict(nodes), y, rtol=1e-6)


def test_contract_and_round_trip(graphs: list[Graph], tmp_path: Path) -> None:
    nodes = _nodes(graphs)
    y = np.array([1e-5 * (1 + math.log1p(n.flops)) for n in nodes])
    est = LayerTypeRegressor()
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        est.predict(nodes)
    assert est.fit(nodes, y) is est
    path = save_predictor(est, tmp_path / "p.json")
    again = load_predictor(path)
    assert np.array_equal(again.predict_graph(graphs[0]), est.predict_graph(graphs[0]))
    (tmp_path / "bad.json").write_text('{"format": "nope"}')
    with pytest.raises(InputError, match="format"):
        load_predictor(tmp_path / "bad.json")


def test_holdout_report_on_an_exact_law(graphs: list[Graph]) -> None:
    nodes = _nodes(graphs) * 3
    y = np.array([2e-6 + 1e-9 * input_bytes(n) for n in nodes])
    rep = holdout_report(
        lambda: LayerTypeRegressor(form="linear", features="table4.1", min_samples=1),
        Dataset(tuple(nodes), y, ("x",) * len(nodes)),
    )
    assert rep["test_samples"] > 0
    assert rep["overall"]["within_10pct"] == 1.0
    assert rep["overall"]["r2"] == pytest.approx(1.0)
    m = metrics(np.array([1.0, 2.1, 3.0]), np.array([1.0, 2.0, 2.0]))
    assert m["within_10pct"] == pytest.approx(2 / 3) and m["mae_s"] == pytest.approx(1.1 / 3)


def test_prednnoff_table_42_by_hand(graphs: list[Graph]) -> None:
    conv = graphs[0].nodes[0]  # alexnet conv1: 3x224x224 fp32 in, 11x11/4, 64 filters
    x1 = 3 * 224 * 224 * 4
    x2 = (11 / 4) ** 2 * 64 * 3
    edge = PreDNNOffModel("edge").predict([conv])[0]
    assert edge == pytest.approx((6.03e-5 * x1 + 1.24e-4 * x2 + 1.89e-1) / 1000)
    mobile = PreDNNOffModel("mobile").predict([conv])[0]
    assert mobile == pytest.approx((6.13e-3 * x1 + 2.67e-2 * x2 - 9.909) / 1000)
    assert PreDNNOffModel("mobile").loading_seconds(1e6) == pytest.approx((4.49 + 82.136) / 1000)
    assert PreDNNOffModel("mobile").parsing_seconds(1e6) == pytest.approx((3.48 + 4.253) / 1000)
    with pytest.raises(InputError, match="mobile"):
        PreDNNOffModel("edge").parsing_seconds(1.0)
    assert "features_0" not in PreDNNOffModel("edge").uncovered(graphs[0])


def test_luger_clock_model() -> None:
    clocks = np.array([0.6e9, 0.9e9, 1.2e9, 1.5e9])
    pooled_x, pooled_y = [], []
    for n_layers, work in ((9, 0.02), (21, 0.5), (38, 4.0)):  # three DNNs, time ∝ 1/clock
        lat = work / (clocks / 1e9)
        pooled_x += list(clocks)
        pooled_y += list(normalised_slopes(clocks, lat, n_layers))
    law = ClockPowerLaw().fit(pooled_x, pooled_y)
    assert law.b_ < 0  # slower clock, larger slope
    # a new DNN, de-normalised with its all-in-edge latency at the lowest and highest clock
    n = 21
    edge = LugerEdgeModel(power_law=law, n_layers=n).fit([0.6e9, 1.5e9], [1.0, 0.4])
    cs = 1.0e9
    expected = (law.a_ * (cs / 1e9) ** law.b_) * (1.0 / n - 0.4 / n) + 0.4 / n  # eq. 4.2
    assert edge.slope(cs) == pytest.approx(expected)
    assert edge.predict([[cs, 7]])[0] == pytest.approx(7 * expected)  # eq. 4.1
    cloud = LugerCloudModel(n_layers=n).fit(None, [0.21])
    assert cloud.predict([0, n])[0] == pytest.approx(0.21) and cloud.predict([n])[0] == 0
    assert cloud.node_seconds().sum() == pytest.approx(0.21)
    with pytest.raises(NotFittedError):
        LugerEdgeModel(power_law=ClockPowerLaw(), n_layers=3).fit([1, 2], [1, 2])


def test_profile_predictor(graphs: list[Graph]) -> None:
    g = graphs[1]
    _, x = build("mnist_cnn")
    prof = profile_graph(g, x, threads=1, repeats=1, warmup=0)
    base = np.array([prof.node_seconds()[n.name] for n in g.nodes])
    est = ProfilePredictor(speed_factor=2.0, reference_clock=2.4e9, clock=1.2e9).fit(prof)
    assert np.allclose(est.predict_graph(g), base / 2.0 * 2.0)
    with pytest.raises(InputError, match="no node"):
        est.predict(list(graphs[2].nodes))


def test_calibrated_profile_predictor_sums_to_end_to_end(graphs: list[Graph]) -> None:
    g = graphs[1]
    _, x = build("mnist_cnn")
    prof = profile_graph(g, x, threads=1, repeats=1, warmup=0)
    est = ProfilePredictor(calibrate=True).fit(prof)
    assert est.predict_graph(g).sum() == pytest.approx(prof.end_to_end.median_s)


def test_forest_arrays_predict_like_sklearn() -> None:
    from sklearn.ensemble import ExtraTreesRegressor

    from edgesplit.predict.forest import LogForest

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1e6, (80, 3))
    y = 1e-9 * (1 + x[:, 0]) ** 0.9 + 1e-6
    forest = LogForest.fit(x, y, n_trees=10, seed=3)
    ref = ExtraTreesRegressor(n_estimators=10, min_samples_leaf=2, random_state=3).fit(
        np.log1p(x), np.log(y)
    )
    probe = rng.uniform(0, 1e6, (30, 3))
    assert np.allclose(forest.predict(probe), np.exp(ref.predict(np.log1p(probe))), rtol=1e-12)
    again = LogForest.from_dict(forest.to_dict())
    assert np.array_equal(again.predict(probe), forest.predict(probe))
