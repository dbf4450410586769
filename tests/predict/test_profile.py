"""Profiling: one timing per node, versioned JSON that round-trips, clear errors."""

from __future__ import annotations

import json

import pytest

from edgesplit.errors import InputError, ProfileError
from edgesplit.graph import trace
from edgesplit.models import build
from edgesplit.predict.profile import PROFILE_VERSION, load_profile, profile_graph


@pytest.fixture(scope="module")
def mnist_profile():
    model, x = build("mnist_cnn")
    return profile_graph(trace(model, x, name="mnist_cnn"), x, repeats=5, warmup=1)


def test_profile_has_one_timing_per_node(mnist_profile):
    assert [n.name for n in mnist_profile.nodes] == [
        n.name for n in trace(*build("mnist_cnn"), name="mnist_cnn")
    ]
    assert all(0 < n.median_s <= n.p90_s for n in mnist_profile.nodes)
    assert mnist_profile.end_to_end.median_s > 0
    assert mnist_profile.fidelity == pytest.approx(
        mnist_profile.sum_of_medians_s / mnist_profile.end_to_end.median_s
    )
    assert mnist_profile.host.threads >= 1 and mnist_profile.host.torch_version


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
        profile_graph(g, x, repeats=0)
    with pytest.raises(InputError, match="--device"):
        profile_graph(g, x, device="tpu")
