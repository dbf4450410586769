"""One ModelRequest builds the same model on both sides of a link: a small BERT (token ids and
a mask, integer tensors on the wire) runs as a two-device plan, one part on a server."""

from __future__ import annotations

from edgesplit.graph.partition import assemble_output
from edgesplit.graph.trace import flat_inputs
from edgesplit.graph.verify import outputs_equal
from edgesplit.models import ModelRequest
from edgesplit.models.loader import trace_request
from edgesplit.runtime.loop import cut_stages, two_tier_engine
from edgesplit.runtime.server import ServerConfig, create_app
from edgesplit.runtime.transport import in_process

BERT = ["num_hidden_layers=1", "hidden_size=32", "num_attention_heads=2", "intermediate_size=32"]


def test_a_two_input_hf_model_runs_across_a_served_request():
    request = ModelRequest.from_options(
        "hf:BertModel", ["input_ids=1x8:int64", "attention_mask=1x8:int64"], config=BERT
    )
    graph, module, ex = trace_request(request)
    assert len(graph.input_names) == 2
    remote = in_process(create_app(ServerConfig(models=(request,))))
    engine = two_tier_engine(graph, "http://testserver", model=request.name, client=remote.client)
    try:
        n = len(graph.nodes)
        for cut in (0, 1, n // 2, n):
            engine.switch(cut_stages(graph, cut))
            outs, record = engine.infer(flat_inputs(module, graph, ex.args, ex.kwargs))
            assert not record["failover"], record["failed_device"]
            assert outputs_equal(assemble_output(graph, outs), ex.run(module)), f"cut {cut}"
            assert [h["dst"] for h in record["hops"]] == (["cloud"] if cut < n else [])
    finally:
        remote.close()


def test_weights_travel_with_the_request_into_a_served_store(tmp_path):
    import torch
    from safetensors.torch import save_file

    from edgesplit.runtime.store import ModelStore

    trained, _ = ModelRequest("mnist_cnn").load()
    with torch.no_grad():
        for p in trained.parameters():
            p.mul_(-1.5)
    save_file(trained.state_dict(), tmp_path / "w.safetensors")
    request = ModelRequest.from_options("mnist_cnn", weights=str(tmp_path / "w.safetensors"))
    loaded, _ = request.load()
    assert torch.equal(loaded.conv1.weight, trained.conv1.weight)
    store = ModelStore((request,))
    served = store.model("mnist_cnn")
    with torch.inference_mode():
        assert torch.equal(served.graph.module(served.example), trained(served.example))
