"""Profiling: one timing per node, versioned JSON that round-trips, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from edgesplit.errors import InputError, ProfileError
from edgesplit.graph import trace
from edgesplit.models import build
from edgesplit.predict.profile import PROFILE_VERSION, load_profile, profile_graph, saved_seconds


@pytest.fixture(scope="module")
def mnist_profile():
    model, x = build("mnist_cnn")
    return profile_graph(trace(model, x, name="mnist_cnn"), x, threads=1, repeats=5, warmup=1)


def test_profile_has_one_timing_per_node(mnist_profile):
    assert [n.name for n in mnist_profile.nodes] == [
        n.name for n in trace(*build("mnist_cnn"), name="mnist_cnn")
    ]
    assert all(0 < n.median_s <= n.p90_s for n in mnist_profile.nodes)
    assert mnist_profile.end_to_end.median_s > 0
    assert mnist_profile.fidelity == pytest.approx(
        mnist_profile.sum_of_medians_s / mnist_profile.end_to_end.median_s
    )
    assert mnist_profile.host.threads == 1 and mnist_profile.host.torch_version


def test_profile_runs_on_the_stated_thread_count_and_restores_it():
    model, x = build("mnist_cnn")
    g = trace(model, x, name="mnist_cnn")
    before = torch.get_num_threads()
    stated = 2 if before != 2 else 1
    seen: list[int] = []
    handle = g.module.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        prof = profile_graph(g, x, threads=stated, repeats=1, warmup=0)
    finally:
        handle.remove()
    assert prof.host.threads == stated
    assert seen == [stated]  # the unsplit forward ran on the stated count
    assert torch.get_num_threads() == before


def test_seconds_follow_the_graph_and_calibrate_to_end_to_end(tmp_path, mnist_profile):
    g = trace(*build("mnist_cnn"), name="mnist_cnn")
    raw = mnist_profile.seconds(g)
    assert raw == [n.median_s for n in mnist_profile.nodes]
    cal = mnist_profile.seconds(g, calibrate=True)
    assert sum(cal) == pytest.approx(mnist_profile.end_to_end.median_s)
    path = mnist_profile.save(tmp_path / "p.json")
    assert saved_seconds(path, g) == raw


def test_a_profile_of_another_graph_is_refused(tmp_path, mnist_profile):
    path = mnist_profile.save(tmp_path / "p.json")
    lenet = trace(*build("lenet"), name="lenet")
    with pytest.raises(InputError, match=r"p\.json.*'lenet'.*edgesplit profile"):
        saved_seconds(path, lenet)
    fewer = trace(*build("mnist_cnn"), name="mnist_cnn")
    doc = mnist_profile.model_dump(mode="json")
    doc["nodes"].append({**doc["nodes"][-1], "name": "extra"})
    bigger = type(mnist_profile).model_validate(doc)
    expected = f"has {len(doc['nodes'])} nodes where the graph has {len(fewer.nodes)}"
    with pytest.raises(InputError, match=expected):
        bigger.seconds(fewer)


def test_profile_round_trips(tmp_path, mnist_profile):
    path = mnist_profile.save(tmp_path / "p.json")
    assert load_profile(path) == mnist_profile
    doc = json.loads(path.read_text())
    assert doc["version"] == PROFILE_VERSION and "fidelity" in doc


def test_missing_corrupt_and_old_profiles_are_rejected(tmp_path, mnist_profile):
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        load_profile(bad)
    doc = mnist_profile.model_dump(mode="json")
    doc["version"] = 99
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match="version 99"):
        load_profile(old)
    doc["version"] = PROFILE_VERSION
    doc["nodes"][0]["median_s"] = -1
    neg = tmp_path / "neg.json"
    neg.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match="nodes.0.median_s"):
        load_profile(neg)


def test_bad_profiling_arguments():
    model, x = build("mnist_cnn")
    g = trace(model, x)
    with pytest.raises(InputError, match="--repeats"):
        profile_graph(g, x, threads=1, repeats=0)
    with pytest.raises(InputError, match="--device"):
        profile_graph(g, x, threads=1, device="tpu")
    with pytest.raises(InputError, match="--threads"):
        profile_graph(g, x, threads=0)
