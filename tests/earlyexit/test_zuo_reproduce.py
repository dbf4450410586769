"""``reproduce zuo2024 --quick``: structure and the invariants Pre-DNNOff implies (issue 15).

The reproduction runs once (module fixture) through the CLI in a real process, which is
also the interface's pure-JSON check (``--json``: stdout is the results.json document and
nothing else). Checked: the shared output contract, the named
``results.json`` fields of every setup and the load average; every figure finite; the exact
optimum never above any GA run (it minimises the same eq. 4.8 over all assignments); and,
in every setup and at every rate of the wireless sweep, Pre-DNNOff <= Edgent. The latter
rests on Edgent's deployment lying in Pre-DNNOff's search space; that is checked here
independently: Edgent's assignment is rebuilt by hand from its reported exit and partition
point, priced by eq. 4.8 on the same problem, and compared with the reported figure.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from edgesplit.earlyexit.problem import EDGE, MOBILE
from tests.conftest import invoke_subprocess
from tests.reproduce_contract import check_outputs

FIELDS = (
    "paper_table42",
    "three_tier_table42",
    "three_tier_fitted",
    "two_tier_fitted",
    "two_tier_pi_measured",
)
LIKE_FOR_LIKE = ("paper_table42", "two_tier_fitted", "two_tier_pi_measured")
REL = 1e-9


@pytest.fixture(scope="module")
def zuo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """One ``--quick --json`` run in a real process, as a user runs it: exit 0, no
    traceback, progress on stderr only and stdout the ``results.json`` document alone."""
    out = tmp_path_factory.mktemp("zuo2024")
    result = invoke_subprocess("reproduce", "zuo2024", "--quick", "--out", out, "--json")
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "reproduce zuo2024: " in result.stderr  # one line per stage
    printed = json.loads(result.stdout)  # pure JSON: any other line would not parse
    assert printed == json.loads((out / "results.json").read_text())
    return out, printed


@pytest.mark.slow
def test_outputs_and_named_fields(zuo_run: tuple[Path, Any]) -> None:
    out, doc = zuo_run
    assert check_outputs(out, "zuo2024") == doc
    assert [Path(p).name for p in doc["figures"]] == ["ga_curve.png"]
    comparison = (out / "comparison.md").read_text()
    assert "188.93 vs 207.11" in comparison
    assert doc["like_for_like"] == list(LIKE_FOR_LIKE)
    assert [s["field"] for s in doc["setups"]] == list(FIELDS)
    for field in FIELDS:
        row = doc[field]
        assert row["setup"] in comparison
        for key in ("prednnoff_ms", "edgent_ms", "improvement_over_edgent", "ga_paper_best_ms"):
            assert math.isfinite(row[key]) and row[key] > -1.0, (field, key)
        assert row["prednnoff_ms"] > 0 and row["edgent_ms"] > 0
        assert row["like_for_like"] == (field in LIKE_FOR_LIKE)
    # like for like: Pre-DNNOff and Edgent over the same two tiers; the others add a cloud
    for field in LIKE_FOR_LIKE:
        assert doc[field]["tiers"] == ["mobile", "edge"]
    assert doc["two_tier_pi_measured"]["predictors"] == "measured"
    assert doc["two_tier_pi_measured"]["mobile_speed_factor"] == doc["pi_clock_scale"] == 0.3


@pytest.mark.slow
def test_exact_never_above_any_ga_run(zuo_run: tuple[Path, Any]) -> None:
    _out, doc = zuo_run
    for s in doc["setups"]:
        optimum = s["exact"]["expected_latency_ms"]
        for variant in ("ga_paper", "ga_improved", "ga_seeded"):
            runs = s[variant]["expected_latency_ms"]
            assert runs and all(math.isfinite(v) for v in runs)
            assert min(runs) >= optimum * (1 - REL), (s["setup"], variant)
        # the exit latencies under the optimum, weighted by eq. 4.8's probabilities
        weighted = sum(p * t for p, t in zip(s["probabilities"], s["exact"]["per_exit_ms"]))
        assert weighted == pytest.approx(optimum, rel=1e-9)


@pytest.mark.slow
def test_prednnoff_never_above_edgent(zuo_run: tuple[Path, Any]) -> None:
    _out, doc = zuo_run
    for field in FIELDS:
        row = doc[field]
        assert row["edgent_in_search_space"], field
        assert row["prednnoff_ms"] <= row["edgent_ms"] * (1 + REL), field
    sweep = doc["two_tier_pi_measured"]["wireless_sweep"]
    assert sweep[0]["wireless_mbps"] == 74.0
    for r in sweep:
        assert r["prednnoff_ms"] <= r["edgent_ms"] * (1 + REL), r
    # a faster link never makes the optimum worse (every hop's time falls with the rate)
    by_rate = sorted(sweep, key=lambda r: r["wireless_mbps"])
    for slow, fast in zip(by_rate, by_rate[1:]):
        assert fast["prednnoff_ms"] <= slow["prednnoff_ms"] * (1 + REL)


@pytest.mark.slow
def test_edgent_deployment_rebuilt_by_hand(zuo_run: tuple[Path, Any]) -> None:
    """Edgent's (exit, partition point) as an assignment over {mobile, edge}, priced again."""
    from edgesplit.earlyexit.exact import solve_exact
    from edgesplit.experiments.zuo2024 import setup_problem

    out, doc = zuo_run
    for field, name in (("two_tier_pi_measured", "pi-measured"), ("paper_table42", "paper")):
        problem, _inst = setup_problem(name, out / "profile_branchy.json")
        row = doc[field]
        chain = problem.chain(row["edgent_exit"])
        genes = [EDGE] * problem.n_layers
        for i in chain[: row["edgent_partition_point"]]:
            genes[i] = MOBILE
        assert set(genes) <= set(problem.tiers)
        edgent_s = problem.expected_latency(genes)
        assert edgent_s * 1000 == pytest.approx(row["edgent_ms"], rel=1e-9)
        exact = solve_exact(problem)
        assert exact.predicted["expected_latency_s"] <= edgent_s * (1 + REL)
        assert exact.predicted["expected_latency_s"] * 1000 == pytest.approx(
            row["prednnoff_ms"], rel=1e-9
        )
