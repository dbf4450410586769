"""``reproduce gao2019 --quick`` and the Gao delay model as a saved or built-in predictor.

The reproduction is run once (module fixture) through the CLI; its outputs are checked for
the named fields (``fit.r2``, ``fit.mae_s``, the load average, the speed-factor sweep) and
for what the paper implies: Case 1 never slower than local-only (Case 3), and local-only
delays proportional to the mobile speed factor. The built-in eq. 1-2 set is checked
against the paper's formula computed here from the torch layers themselves.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from tests.conftest import CliResult, assert_input_error
from tests.reproduce_contract import check_outputs

REL = 1e-9


@pytest.fixture(scope="module")
def gao_run(tmp_path_factory: pytest.TempPathFactory, cli_uncaptured: Any) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("gao2019")
    result = cli_uncaptured(
        "reproduce", "gao2019", "--quick", "--out", out, "--json", "--time-limit", "2"
    )
    assert result.code == 0
    return out, json.loads((out / "results.json").read_text())


def _rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [r for key in ("fig1_fig3", "fig2", "fig4", "fig5") for r in doc[key]]
    return rows + [r for s in doc["speed_sweep"] for r in (*s["fig2"], *s["fig5"])]


@pytest.mark.slow
def test_outputs_hold_the_named_fields(gao_run: tuple[Path, Any]) -> None:
    out, doc = gao_run
    assert check_outputs(out, "gao2019") == doc
    names = {Path(p).name for p in doc["figures"]}
    assert {f"fig{k}.png" for k in range(1, 6)} <= names
    assert {"fig2_speed_sweep.png", "fig5_speed_sweep.png"} <= names
    assert (out / "table.md").stat().st_size > 0
    fit = doc["fit"]
    assert math.isfinite(fit["r2"]) and fit["r2"] <= 1.0
    assert fit["mae_s"] >= 0.0
    assert fit["n_train"] + fit["n_test"] == fit["layers"]
    assert fit["paper"]["r2"] == pytest.approx(0.9958)
    assert fit["paper"]["mae_s"] == pytest.approx(2.78e-3)
    assert fit["timer"].startswith("wall clock") and fit["torch_threads"] == 1
    assert [s["speed_factor"] for s in doc["speed_sweep"]] == [3.0, 10.0, 30.0]
    text = (out / "comparison.md").read_text()
    assert "99.58%" in text and f"{fit['r2']:.2%}" in text


@pytest.mark.slow
def test_case1_never_slower_than_local_only(gao_run: tuple[Path, Any]) -> None:
    _, doc = gao_run
    for row in _rows(doc):
        c1, c3 = row["case1"]["average_s"], row["case3"]["average_s"]
        assert c1 <= c3 * (1 + REL), row
        if row["case1"]["status"] == "optimal":
            assert c1 <= row["case2"]["average_s"] * (1 + REL), row
        if "departs" in row:
            assert row["departs"] == (c1 < 0.99 * c3)


@pytest.mark.slow
def test_local_only_scales_with_the_speed_factor(gao_run: tuple[Path, Any]) -> None:
    """Case 3 runs every layer on the device, so its delay is the factor times the profile."""
    _, doc = gao_run
    by_factor = {s["speed_factor"]: s for s in doc["speed_sweep"]}
    for f in (3.0, 30.0):
        for key in ("fig2", "fig5"):
            for mine, ref in zip(by_factor[f][key], by_factor[10.0][key], strict=True):
                want = ref["case3"]["average_s"] * f / 10.0
                assert mine["case3"]["average_s"] == pytest.approx(want, rel=1e-9)


def _paper_seconds(module: nn.Module, x: Any, side: str) -> list[float]:
    """Eq. 1 (local) / eq. 2 (server) of every conv module, in call order, from its own
    attributes and the output shape a forward hook sees."""
    import torch

    a, b, c = (0.3e-5, 2.6e-5, 4.8e-5) if side == "local" else (3e-7, 7.4e-7, 25.8e-7)
    out: list[float] = []

    def hook(layer: nn.Conv2d, _inp: Any, y: torch.Tensor) -> None:
        g2 = y.shape[2] * y.shape[3]
        k2 = layer.kernel_size[0] * layer.kernel_size[1]
        i, o = layer.in_channels, layer.out_channels
        out.append((a * g2 * k2 * o * i + b * g2 * k2 * i + c * g2 * o) * 1e-3)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        module(x)
    for h in handles:
        h.remove()
    return out


def test_builtin_paper_set_is_eq_1_and_2(tmp_path: Path) -> None:
    from edgesplit.models import build
    from edgesplit.multidevice.instance import build_problem, load_instance
    from edgesplit.predict.gao import delay_models

    inst = tmp_path / "inst.yaml"
    inst.write_text(
        "devices:\n  - {name: d, model: lenet, uplink_mbps: 1,"
        " local: {source: gao}, server: {source: gao, factor: 2}}\n"
    )
    problem = build_problem(load_instance(inst), delay_models("paper"))
    dev = problem.devices[0]
    module, x = build("lenet")
    convs = [j for j, s in enumerate(dev.local_s) if s > 0]
    local, server = _paper_seconds(module, x, "local"), _paper_seconds(module, x, "server")
    assert len(convs) == len(local) > 0
    for j, want in zip(convs, local, strict=True):
        assert dev.local_s[j] == pytest.approx(want, rel=1e-12)
    for j, want in zip(convs, server, strict=True):
        assert dev.server_s[j] == pytest.approx(2 * want, rel=1e-12)
    # The paper gives conv only: every other layer is predicted 0 s (convs holds the rest).
    assert problem.meta["delay_model"].startswith("paper")


def test_saved_fit_loads_as_a_predictor_and_drives_solve(
    tmp_path: Path, cli: Any, cli_subprocess: Any
) -> None:
    from edgesplit.graph import trace
    from edgesplit.models import build
    from edgesplit.predict.gao import GaoDelayModel
    from edgesplit.predict.store import load_predictor

    saved = tmp_path / "gao.json"
    doc = cli(
        "multidevice", "fit-delay", "lenet", "--samples", "4", "--repeats", "1",
        "-o", saved, "--json",
    ).json()  # fmt: skip
    assert doc["timer"].startswith("wall clock") and doc["threads"] == 1
    assert "load_average" in doc and doc["output"] == str(saved)
    model = load_predictor(saved)
    assert isinstance(model, GaoDelayModel)
    graph = trace(*build("lenet"), name="lenet")
    want = [sum(c * f for c, f in zip(doc["coefficients"][fam], feat, strict=True)) for fam, feat in
            (_family(n) for n in graph.nodes)]  # fmt: skip
    assert model.predict_graph(graph).tolist() == pytest.approx([max(w, 0.0) for w in want])

    inst = tmp_path / "inst.yaml"
    inst.write_text(
        "devices:\n  - {name: d, model: lenet, uplink_mbps: 1, count: 2,"
        " local: {source: gao, factor: 10}, server: {source: gao}}\n"
    )
    exact = cli("multidevice", "solve", inst, "--delay-model", saved, "--json").json()
    heur = cli(
        "multidevice", "solve", inst, "--delay-model", saved, "--solver", "heuristic", "--json"
    ).json()
    assert exact["problem"]["delay_model"] == f"predictor file {saved}"
    assert exact["average_s"] <= heur["average_s"] * (1 + REL)

    bad: CliResult = cli_subprocess("multidevice", "solve", inst, "--delay-model", inst)
    assert_input_error(bad, str(inst))
    none = tmp_path / "profile-only.yaml"
    none.write_text("devices:\n  - {name: d, model: lenet, uplink_mbps: 1}\n")
    assert_input_error(cli("multidevice", "solve", none, "--delay-model", "paper"), "gao")


def _family(node: Any) -> tuple[str, list[float]]:
    from edgesplit.predict.gao import features

    fam, f = features(node)
    return fam, f.tolist()
