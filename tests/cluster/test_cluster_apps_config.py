"""Fragments from real traced graphs, accuracy table, config validation, mobility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from edgesplit.cluster.apps import (
    balanced_cuts,
    build_profile,
    build_variant,
    class_groups,
    load_accuracy_table,
    trace_variant,
)
from edgesplit.cluster.config import AppSpec, ClusterConfig, HostSpec, WorkloadSpec, load_cluster
from edgesplit.cluster.mobility import Mobility
from edgesplit.errors import InputError
from edgesplit.graph.partition import split_at
from edgesplit.system.link import Link

W = WorkloadSpec()
MNIST = AppSpec(name="mnist", model="splitnet", width=32, depth=4)  # ray-run's family


def test_layer_fragments_are_exact_parts_of_the_traced_model() -> None:
    (g,) = trace_variant(MNIST, "layer", 4)
    cuts = balanced_cuts(g, 4)
    split = split_at(g, cuts)
    x = torch.randn(2, *MNIST.input_shape)
    model = build_variant(MNIST, "layer", 4)[0].eval()
    assert torch.equal(split(x), model(x))
    prof = build_profile(MNIST, W)
    frags = prof.fragments["layer"]
    assert len(frags) == 4
    assert sum(f.instructions for f in frags) == pytest.approx(g.flops * W.instructions_per_flop)
    # successive fragments hand over exactly the cut tensors
    for a, b, k in zip(frags, frags[1:], cuts):
        assert a.out_bytes == b.in_bytes == g.cut(k).bytes


def test_semantic_fragments_are_narrower_and_cover_all_classes() -> None:
    prof = build_profile(MNIST, W)
    sem, layer = prof.fragments["semantic"], prof.fragments["layer"]
    assert len(sem) == W.fragments
    assert sum(f.instructions for f in sem) < sum(f.instructions for f in layer)
    groups = class_groups(MNIST.num_classes, W.fragments)
    assert sorted(c for g in groups for c in g) == list(range(MNIST.num_classes))
    assert sum(f.out_bytes for f in sem) == MNIST.num_classes * 4
    assert prof.fragments["compressed"][0].instructions < sum(f.instructions for f in layer)


def test_default_apps_are_the_papers_model_families() -> None:
    assert [(a.name, a.model) for a in W.apps] == [
        ("mnist", "mobilenet_v2"),
        ("fashionmnist", "resnet50"),
        ("cifar100", "inception_v3"),
    ]
    assert W.apps[1].shape == (3, 224, 224) and W.apps[2].shape == (3, 299, 299)
    with pytest.raises(ValidationError, match="unknown"):
        AppSpec(name="x", model="nope")


def test_zoo_semantic_fragment_cost_follows_the_splitnet_rule() -> None:
    """An independent recount of apps.py's rule on a small-input resnet50 (k = 4, s = 0.5)."""
    from edgesplit.graph import trace
    from edgesplit.models.zoo import resolve

    app = AppSpec(name="mnist", model="resnet50", input_shape=(3, 64, 64))
    prof = build_profile(app, W)
    model, _ = resolve("resnet50")
    g = trace(model, torch.zeros(1, 3, 64, 64), name="r")
    acc, trunk_flops, split_flops = 0.0, 0.0, 0.0
    for nd in g.nodes:
        if acc < 0.5 * g.flops:
            trunk_flops += nd.flops
        elif nd.kind in ("conv", "linear") and nd.attrs.get("groups", 1) == 1:
            split_flops += nd.flops / 16
        else:
            split_flops += nd.flops / 4
        acc += nd.flops
    sem = prof.fragments["semantic"]
    assert len(sem) == 4
    assert sem[0].instructions == pytest.approx(trunk_flops + split_flops)
    # every layer:m covers the whole model once; a semantic fragment is cheaper than the
    # chain, the semantic split as a whole costs more: neither dominates by construction
    for m in range(1, 5):
        name = "layer" if m == 4 else f"layer:{m}"
        assert len(prof.fragments[name]) == m
        assert prof.total_instructions(name) == pytest.approx(g.flops)
    assert sem[0].instructions < g.flops < prof.total_instructions("semantic")
    assert prof.accuracy_of("layer:2") == prof.accuracy["layer"] > prof.accuracy["semantic"]


def test_shipped_accuracy_table_is_measured_for_mnist() -> None:
    table = load_accuracy_table()
    assert set(table["mnist"]) == {"layer", "semantic", "compressed"}
    assert all(0.5 < v <= 1.0 for v in table["mnist"].values())


def test_app_without_accuracy_is_rejected() -> None:
    app = MNIST.model_copy(update={"name": "unknown-app"})
    with pytest.raises(InputError, match="accuracy"):
        build_profile(app, W)


def test_default_cluster_is_the_papers() -> None:
    cfg = ClusterConfig()
    assert len(cfg.hosts) == 16 and cfg.interval_s == 300.0 and cfg.intervals == 100
    assert sorted(h.ram_mb for h in cfg.hosts) == [4096.0] * 8 + [8192.0] * 8
    assert {h.mips for h in cfg.hosts} == {4029.0} and cfg.workload.arrival_rate == 6.0
    assert any(h.mobile for h in cfg.hosts) and not all(h.mobile for h in cfg.hosts)


def test_host_power_is_a_power_model() -> None:
    curve = [2.0 + i / 10 for i in range(11)]
    listed = HostSpec(name="a", ram_mb=1.0, power_w=curve)
    assert listed.power == HostSpec(name="a", ram_mb=1.0, power={"curve_w": curve}).power
    assert listed.power.watts(0.55) == pytest.approx(2.55) and listed.power.peak_w == 3.0
    assert HostSpec(name="b", ram_mb=1.0, power_w={"constant_w": 3.0}).power.watts(0.2) == 3.0
    with pytest.raises(ValidationError, match="must not decrease"):
        HostSpec(name="c", ram_mb=1.0, power_w=curve[::-1])


def test_bad_config_names_the_field(tmp_path) -> None:
    with pytest.raises(ValidationError, match="power_w"):
        HostSpec(name="x", ram_mb=1.0, power_w=(1.0, 2.0))
    f = tmp_path / "c.yaml"
    f.write_text("hosts: [{name: a, ram_mb: -1, power_w: [1,1,1,1,1,1,1,1,1,1,1]}]\n")
    with pytest.raises(InputError, match=r"c\.yaml.*'hosts\.0\.ram_mb'"):
        load_cluster(f)
    with pytest.raises(InputError, match="does not exist"):
        load_cluster(tmp_path / "missing.yaml")
    f.write_text("- a\n")
    with pytest.raises(InputError, match="mapping"):
        load_cluster(f)


def test_random_waypoint_stays_on_streets_and_links_degrade() -> None:
    cfg = ClusterConfig()
    mob = Mobility(cfg.hosts, cfg.mobility, np.random.default_rng(0))
    mobile = [i for i, h in enumerate(cfg.hosts) if h.mobile]
    for _ in range(20):
        mob.advance(300.0)
        for i in mobile:
            x, y = mob.positions[i]
            b = cfg.mobility.block_km
            # one coordinate is always on a street line of the grid
            on_street = min(abs(x / b - round(x / b)), abs(y / b - round(y / b))) < 1e-6
            assert on_street and 0 <= x <= cfg.mobility.grid_km and 0 <= y <= cfg.mobility.grid_km
    near, far = sorted(mobile, key=mob.distance)[0], sorted(mobile, key=mob.distance)[-1]
    assert mob.link(far).rate_bps <= mob.link(near).rate_bps
    assert mob.link(far).rtt >= mob.link(near).rtt
    static = next(i for i, h in enumerate(cfg.hosts) if not h.mobile)
    spec = cfg.hosts[static]
    assert mob.link(static) == Link.of(spec.bandwidth_mbps * 1e6, rtt_s=2 * spec.latency_s)
