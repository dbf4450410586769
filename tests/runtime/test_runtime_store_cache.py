"""One server app for edge and cloud: the byte-bounded LRU of built parts, and CUDA copies.

Oracles: the bytes an entry weighs against the parameters and buffers counted straight
from the model's own ``state_dict``-free module walk; eviction order against the LRU rule
worked out by hand; every part, built fresh after an eviction or not, ``torch.equal`` to
the unsplit model. The CUDA test runs only on a GPU ("no CUDA GPU" otherwise).
"""

from __future__ import annotations

import httpx
import pytest
import torch

from edgesplit.cli import main
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.store import ModelStore, PartCache, weight_bytes

MODEL = "mnist_cnn"


def _exact(store: ModelStore, seg, x: torch.Tensor) -> None:  # type: ignore[no-untyped-def]
    """Run the model head here, ``seg`` through the store, and compare with the whole model."""
    graph = store.model(MODEL).graph
    head = store.segment(MODEL, 0, seg.start)
    cut, _ = store.run(head, {graph.input_names[0]: x})
    out, _ = store.run(seg, cut)
    with torch.inference_mode():
        ref = graph.module(x)
    assert torch.equal(out[graph.output_names[0]], ref)


def test_entries_weigh_their_parameters_and_buffers_once() -> None:
    store = ModelStore((MODEL,))
    graph = store.model(MODEL).graph
    n = len(graph.nodes)
    whole = store.segment(MODEL, 0, n)
    module = graph.module
    expect = sum(p.numel() * p.element_size() for p in module.parameters()) + sum(
        b.numel() * b.element_size() for b in module.buffers()
    )
    assert weight_bytes([whole.part.module]) == expect > 0
    # Parts that share a tensor count it once.
    assert weight_bytes([whole.part.module, whole.part.module]) == expect
    stages = store.plan_stages(MODEL, ("a", "b"), tuple(0 if i < 3 else 1 for i in range(n)))
    assert store.parts.info()["bytes"] == 2 * expect  # the whole segment + the plan's stages
    assert weight_bytes(s.part.module for s in stages.stages) == expect


def test_lru_evicts_least_recently_used_down_to_the_byte_bound() -> None:
    probe = ModelStore((MODEL,))
    n = len(probe.model(MODEL).graph.nodes)
    cuts = [(c, n) for c in range(1, n)]
    sizes = {c: weight_bytes([probe.segment(MODEL, *c).part.module]) for c in cuts}
    heavy = [c for c in cuts if sizes[c] > 0][:3]
    assert len(heavy) == 3
    a, b, c = heavy
    # Room for a and b together but not for all three.
    store = ModelStore((MODEL,), cache_bytes=sizes[a] + sizes[b])
    x = torch.randn(1, 1, 28, 28)
    for cut in (a, b):
        store.segment(MODEL, *cut)
    store.segment(MODEL, *a)  # a is now the most recently used
    seg_c = store.segment(MODEL, *c)
    keys = [k for k in store.parts.lru_order() if k[0] == "segment"]
    info = store.parts.info()
    assert ("segment", MODEL, *b) not in keys  # b was least recently used
    assert info["bytes"] <= info["limit_bytes"] or info["entries"] == 1
    assert info["evictions"] >= 1 and info["hits"] >= 1
    _exact(store, seg_c, x)
    # b comes back rebuilt (a miss) and is still exact.
    misses = store.parts.info()["misses"]
    _exact(store, store.segment(MODEL, *b), x)
    assert store.parts.info()["misses"] > misses


def test_an_entry_over_the_bound_is_kept_alone_and_runs() -> None:
    store = ModelStore((MODEL,), cache_bytes=0)
    n = len(store.model(MODEL).graph.nodes)
    x = torch.randn(1, 1, 28, 28)
    _exact(store, store.segment(MODEL, 2, n), x)
    assert store.parts.info()["entries"] == 1
    cache = PartCache(10)
    assert cache.get("k", lambda: "v", lambda _: 100) == "v"
    assert cache.get("k", lambda: "other", lambda _: 100) == "v"  # a hit, not rebuilt
    assert cache.info() == {
        "entries": 1,
        "bytes": 100,
        "limit_bytes": 10,
        "hits": 1,
        "misses": 1,
        "evictions": 0,
    }


def test_server_reports_its_cache_and_serve_checks_the_option(capsys) -> None:
    config = ServerConfig(models=(MODEL,), part_cache_bytes=12345)
    with BackgroundServer(create_app(config)) as server:
        doc = httpx.get(server.url + "/v1/models", timeout=30).json()
    assert doc["part_cache"]["limit_bytes"] == 12345
    with pytest.raises(SystemExit) as done:
        main(["serve", "--model", MODEL, "--part-cache", "lots", "--port", "1"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --part-cache") and "\n" not in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_store_uses_pinned_buffers_and_matches_the_model_on_the_gpu() -> None:
    store = ModelStore((MODEL,), device="cuda")
    graph = store.model(MODEL).graph
    n = len(graph.nodes)
    x = torch.randn(1, 1, 28, 28)
    head, _ = store.run(store.segment(MODEL, 0, 3), {graph.input_names[0]: x})
    assert all(t.device.type == "cpu" and t.is_pinned() for t in head.values())
    out, _ = store.run(store.segment(MODEL, 3, n), head)
    (y,) = out.values()
    assert y.device.type == "cpu" and y.is_pinned()
    with torch.inference_mode():
        ref = graph.module(x.cuda()).cpu()
    assert torch.equal(y, ref)
    stages = store.plan_stages(MODEL, ("a", "b"), tuple(0 if i < 3 else 1 for i in range(n)))
    values = {graph.input_names[0]: x}
    for i in range(len(stages)):
        values.update(store.run_stage(stages, i, values))
    assert torch.equal(values[graph.output_names[0]], ref)
