"""Coverage table: model -> tracer -> layers -> cuts -> exact at every cut (issue 12, point 5).

Each model is built the way the CLI builds it (:class:`edgesplit.models.ModelRequest`:
``timm:NAME`` full size at its default input, ``hf:ARCH`` from a small config with
random weights, nothing downloaded), traced, and checked with ``torch.equal`` at every
layer cut by :func:`edgesplit.graph.verify.check_every_cut` against the unsplit model.
The nn.TransformerEncoder behind an nn.Embedding is defined here.

``--quick`` shrinks the timm inputs to 64x64 (vision transformers to depth 2 at 32x32)
to prove the script; the lead's figures come from a full run on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
from _common import save
from torch import nn

from edgesplit.graph import Graph, trace
from edgesplit.graph.trace import flat_inputs, traced_call
from edgesplit.graph.verify import check_every_cut
from edgesplit.models import ModelRequest
from edgesplit.models.inputs import InputSpec

TIMM = (
    "vit_tiny_patch16_224",
    "deit_tiny_patch16_224",
    "swin_tiny_patch4_window7_224",
    "efficientnet_b0",
    "convnext_atto",
)
# Small configs: the architecture whole, its width and depth cut down.
HF: dict[str, tuple[tuple[str, ...], tuple[InputSpec, ...]]] = {
    "BertModel": (
        (
            "num_hidden_layers=4",
            "hidden_size=256",
            "num_attention_heads=4",
            "intermediate_size=1024",
        ),
        (InputSpec("input_ids", (1, 32), "int64"), InputSpec("attention_mask", (1, 32), "int64")),
    ),
    "GPT2Model": (
        ("n_layer=4", "n_embd=256", "n_head=4"),
        (InputSpec("input_ids", (1, 32), "int64"),),
    ),
    "LlamaModel": (
        (
            "num_hidden_layers=4",
            "hidden_size=256",
            "intermediate_size=688",
            "num_attention_heads=4",
            "num_key_value_heads=2",
            "vocab_size=4096",
        ),
        (InputSpec("input_ids", (1, 32), "int64"),),
    ),
    "ViTModel": (
        (
            "num_hidden_layers=4",
            "hidden_size=256",
            "num_attention_heads=4",
            "intermediate_size=1024",
        ),
        (InputSpec("pixel_values", (1, 3, 224, 224)),),
    ),
    "WhisperEncoder": (
        ("encoder_layers=4", "d_model=256", "encoder_attention_heads=4", "encoder_ffn_dim=1024"),
        (InputSpec("input_features", (1, 80, 3000)),),
    ),
}


class EmbeddedEncoder(nn.Module):
    """Token ids -> nn.Embedding -> nn.TransformerEncoder (4 layers) -> linear head."""

    def __init__(self, vocab: int = 1000, width: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        layer = nn.TransformerEncoderLayer(width, 4, 4 * width, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
        self.head = nn.Linear(width, 10)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(ids)))


def _row(name: str, model: nn.Module, args: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    graph: Graph = trace(model, args, kwargs, name=name)
    trace_s = time.perf_counter() - t0
    call_args, call_kwargs = traced_call(model, args, kwargs)
    with torch.inference_mode():
        reference = model(*call_args, **call_kwargs)
    t0 = time.perf_counter()
    checks = check_every_cut(graph, flat_inputs(model, graph, call_args, call_kwargs), reference)
    verify_s = time.perf_counter() - t0
    row = {
        "model": name,
        "tracer": graph.tracer,
        "layers": len(graph),
        "cuts": len(checks),
        "exact": all(c.equal for c in checks),
        "inexact_cuts": [c.cut for c in checks if not c.equal],
        "inputs": [
            f"{a}={'x'.join(map(str, graph.tensor(n).shape))}:{graph.tensor(n).dtype}"
            for n, a in zip(graph.input_names, graph.input_args)
        ],
        "params": sum(p.numel() for p in model.parameters()),
        "trace_s": trace_s,
        "verify_s": verify_s,
    }
    print(
        f"{name:36s} {row['tracer']:17s} {row['layers']:5d} layers {row['cuts']:5d} cuts  "
        f"{'exact' if row['exact'] else 'NOT EXACT'}  (trace {trace_s:.1f} s, "
        f"verify {verify_s:.1f} s)",
        flush=True,
    )
    return row


def _timm(name: str, quick: bool) -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
    if not quick:
        module, example = ModelRequest(f"timm:{name}").load()
        return module, example.args, example.kwargs
    import timm

    torch.manual_seed(0)
    small: dict[str, Any] = {"img_size": 32, "depth": 2} if "_tiny_patch16" in name else {}
    size = 32 if small else 64
    if name.startswith("swin"):
        small, size = {"img_size": 64, "window_size": 2}, 64
    module = timm.create_model(name, **small).eval()
    return module, (torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)),), {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small inputs: proves the script")
    parser.add_argument("--only", nargs="*", help="model names to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load_before = os.getloadavg()[0]
    rows = []
    wanted = set(args.only or ())
    for name in TIMM:
        if not wanted or name in wanted:
            module, call_args, call_kwargs = _timm(name, args.quick)
            rows.append(_row(f"timm:{name}", module, call_args, call_kwargs))
    for arch, (config, specs) in HF.items():
        if not wanted or arch in wanted:
            module, example = ModelRequest(f"hf:{arch}", specs, config=config).load()
            rows.append(_row(f"hf:{arch}", module, example.args, example.kwargs))
    if not wanted or "EmbeddedEncoder" in wanted:
        torch.manual_seed(0)
        ids = torch.randint(0, 1000, (1, 32), generator=torch.Generator().manual_seed(0))
        rows.append(
            _row("nn.Embedding+nn.TransformerEncoder", EmbeddedEncoder().eval(), (ids,), {})
        )
    exact = sum(r["exact"] for r in rows)
    print(f"{exact}/{len(rows)} models exact at every cut")
    save(
        "model_coverage",
        {
            "quick": args.quick,
            "hf_configs": {k: list(v[0]) for k, v in HF.items()},
            "models": rows,
            "all_exact": exact == len(rows),
            "load_average_1m_before": load_before,
            "load_average_1m_after": os.getloadavg()[0],
        },
    )


if __name__ == "__main__":
    main()
