"""One small real run on Ray: simulated decisions replayed with real fragment networks."""

from __future__ import annotations

import pytest


def _parts(decision: str) -> int:
    """Fragments of a decision: ``layer:m`` is m, a full layer or semantic split 4."""
    kind, _, m = decision.partition(":")
    return int(m) if m else {"layer": 4, "semantic": 4, "compressed": 1}[kind]


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["random", "gillis"])
def test_ray_replay_runs_real_fragments_and_matches_local_networks(policy: str) -> None:
    from edgesplit.cluster.ray_backend import run_on_ray

    doc = run_on_ray(
        policy,
        hosts=2,
        intervals=3,
        interval_s=0.5,
        arrival_rate=2.0,
        seed=1,
        epochs=1,
        num_cpus=2,
    )
    assert doc["tasks"] >= 1
    # every fragment ran where the simulator placed it, and the split/parallel results equal
    # the unsplit networks' predictions on the same inputs
    assert doc["all_match_local"]
    for t in doc["per_task"]:
        assert len(t["hosts"]) == _parts(t["decision"])
        assert t["measured_s"] > 0 and t["simulated_s"] > 0
        assert t["answer_bytes"] > 0  # every answer came back as a codec body
    assert doc["codec"] == "none"
    assert 0.0 <= doc["measured_accuracy"] <= 100.0


def test_layer_fragments_are_engine_stages_handing_on_codec_bodies() -> None:
    """Without Ray: the fragments chained as the tasks chain them (a codec body in, a codec
    body out, only what later fragments read handed on) equal the unsplit network."""
    import torch
    from torch import nn

    from edgesplit.cluster.ray_backend import handed_on, layer_stages
    from edgesplit.graph import trace
    from edgesplit.runtime import codecs

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 1), nn.ReLU()
            self.head = nn.Linear(4 * 64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            return self.head((self.c(self.b(h)) + h).flatten(1))

    torch.manual_seed(0)
    model = Residual().eval()
    graph = trace(model, torch.zeros(1, 1, 8, 8), name="residual")
    stages = layer_stages(graph, 4)
    assert [st.device for st in stages.stages] == [f"fragment{i}" for i in range(4)]
    keeps = handed_on(stages)
    assert keeps[-1] == tuple(graph.output_names)
    x = torch.randn(1, 1, 8, 8)
    for codec in ("none", "zstd"):
        body = codecs.encode({graph.input_names[0]: x}, codec)[0]
        for st, keep in zip(stages.stages, keeps):
            values = codecs.decode(body)
            # Each body holds exactly what this fragment or a later one reads.
            assert set(values) == set(stages.needed_from(st.index, values))
            with torch.inference_mode():
                values.update(st.part({n: values[n] for n in st.inputs}))
            body = codecs.encode({n: values[n] for n in keep}, codec)[0]
        with torch.inference_mode():
            assert torch.equal(codecs.decode(body)[graph.output_names[0]], model(x))
