"""Decoder-only LLMs split at block boundaries, each part keeping its own blocks' KV cache.

A GPT-2 or LLaMA model from ``transformers`` (``*LMHeadModel`` / ``*ForCausalLM`` or the
bare ``*Model``) is cut between transformer blocks. For cuts ``c_1 < ... < c_{k-1}``:

- part 0 = embeddings + blocks ``[0, c_1)``;
- part i = blocks ``[c_i, c_{i+1})``;
- the last part adds the final norm and the LM head (when the model has one).

Mechanism, not tracing: each part calls the model's own block modules, in the model's own
order, with the same arguments the unsplit ``forward`` passes them (causal mask, position
ids, rotary embeddings, cache). The KV cache is explicit state of each part: a
``DynamicCache`` that only the part's blocks write. Because every part executes exactly
the original ops on the original values, the split model's logits are ``torch.equal`` to
the unsplit model's, token by token (the tests check 32 greedy tokens, GPT-2 and LLaMA,
2 and 3 parts). fx / export tracing is not used here: transformers' cache objects are not
traceable values (issue 12: ``Found DynamicCache in output``), and a traced part would still
have to carry the cache as opaque state.

What crosses a cut: only the hidden state of the new tokens (``batch x q x hidden``; during
decode ``q = 1``, so the bytes per token per cut are ``batch x hidden x dtype size``,
independent of the position). Positions never cross: every part has seen the same tokens,
so the length of its own cache is the position of the next token (``positions = arange(seen,
seen + q)``), and the causal mask is rebuilt from the part's own cache in the same way the
unsplit model builds it from layer 0's.

Supported layouts: GPT-2 (``transformer.wte/wpe/h/ln_f``) and LLaMA (``model.embed_tokens/
layers/norm/rotary_emb``), with full attention in every layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgesplit.errors import InputError


@dataclass(frozen=True)
class DecoderShape:
    """The dimensions of a decoder-only model that its cost and memory depend on."""

    family: str  # "gpt2" or "llama"
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    mlp_matrices: int  # 2 (GPT-2 fc/proj) or 3 (LLaMA gate/up/down)
    vocab: int
    context: int  # n_positions / max_position_embeddings
    dtype_bytes: int
    has_head: bool
    embed_param_bytes: int
    block_param_bytes: tuple[int, ...]
    final_param_bytes: int  # final norm + LM head (a tied head counted again)


class _Layout:
    """Where a model family keeps its embeddings, blocks, final norm and head."""

    family = ""

    def __init__(self, model: nn.Module, base: nn.Module, head: nn.Module | None) -> None:
        self.model, self.base, self.head = model, base, head
        self.config: Any = base.config

    def blocks(self) -> nn.ModuleList:
        raise NotImplementedError

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def block_kwargs(self, hidden: torch.Tensor, positions: torch.Tensor) -> dict[str, Any]:
        return {}

    def norm(self) -> nn.Module:
        raise NotImplementedError

    def embed_modules(self) -> list[nn.Module]:
        raise NotImplementedError


class _Gpt2(_Layout):
    """GPT2Model.forward: ``wte(ids) + wpe(positions)``, dropout, blocks ``h``, ``ln_f``."""

    family = "gpt2"

    def blocks(self) -> nn.ModuleList:
        return self.base.h  # type: ignore[return-value]

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        b: Any = self.base
        inputs_embeds = b.wte(ids)
        hidden = inputs_embeds + b.wpe(positions).to(inputs_embeds.device)
        return b.drop(hidden)  # type: ignore[no-any-return]

    def norm(self) -> nn.Module:
        return self.base.ln_f  # type: ignore[return-value]

    def embed_modules(self) -> list[nn.Module]:
        return [self.base.wte, self.base.wpe]  # type: ignore[list-item]


class _Llama(_Layout):
    """LlamaModel.forward: ``embed_tokens(ids)``, rotary cos/sin from positions, ``layers``, ``norm``."""

    family = "llama"

    def blocks(self) -> nn.ModuleList:
        return self.base.layers  # type: ignore[return-value]

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.base.embed_tokens(ids)  # type: ignore[operator, no-any-return]

    def block_kwargs(self, hidden: torch.Tensor, positions: torch.Tensor) -> dict[str, Any]:
        # Rotary tables are a pure function of the positions: each part recomputes them.
        return {"position_embeddings": self.base.rotary_emb(hidden, position_ids=positions)}  # type: ignore[operator]

    def norm(self) -> nn.Module:
        return self.base.norm  # type: ignore[return-value]

    def embed_modules(self) -> list[nn.Module]:
        return [self.base.embed_tokens]  # type: ignore[list-item]


def _layout(model: nn.Module) -> _Layout:
    name = type(model).__name__
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        raise InputError(
            f"model {name} is not a decoder-only transformers model; "
            "use a GPT-2 or LLaMA model (e.g. hf:GPT2LMHeadModel, hf:LlamaForCausalLM)"
        )
    head = getattr(model, "lm_head", None)
    for outer, inner in (("transformer", "h"), ("model", "layers")):
        base = getattr(model, outer, None)
        if base is not None and hasattr(base, inner):
            break
    else:
        base, head = model, None
    layout: _Layout
    if hasattr(base, "h") and hasattr(base, "wte") and hasattr(base, "wpe"):
        layout = _Gpt2(model, base, head)
    elif all(hasattr(base, a) for a in ("layers", "embed_tokens", "norm", "rotary_emb")):
        layout = _Llama(model, base, head)
    else:
        raise InputError(
            f"model {name} has neither the GPT-2 nor the LLaMA decoder layout; "
            "use a GPT-2 or LLaMA model (e.g. hf:GPT2LMHeadModel, hf:LlamaForCausalLM)"
        )
    if getattr(config, "add_cross_attention", False):
        raise InputError(
            f"model {name} has cross-attention; build it with add_cross_attention=False"
        )
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"}:
        raise InputError(
            f"model {name} has layer types {sorted(kinds)}; only full attention is supported"
        )
    return layout


def _param_bytes(modules: Sequence[nn.Module], seen: set[int]) -> int:
    total = 0
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel() * p.element_size()
    return total


def describe(model: nn.Module) -> DecoderShape:
    """The :class:`DecoderShape` of a GPT-2 or LLaMA model (raises InputError for others)."""
    lay = _layout(model)
    c = lay.config
    hidden = int(c.hidden_size)
    heads = int(c.num_attention_heads)
    head_dim = int(getattr(c, "head_dim", None) or hidden // heads)
    kv_heads = int(getattr(c, "num_key_value_heads", None) or heads)
    if lay.family == "gpt2":
        intermediate, matrices, context = int(c.n_inner or 4 * hidden), 2, int(c.n_positions)
    else:
        intermediate, matrices = int(c.intermediate_size), 3
        context = int(c.max_position_embeddings)
    seen: set[int] = set()
    embed = _param_bytes(lay.embed_modules(), seen)
    blocks = tuple(_param_bytes([b], seen) for b in lay.blocks())
    # The tier holding the head needs its weights even when they are tied to the embeddings.
    final = _param_bytes([lay.norm(), *([lay.head] if lay.head is not None else [])], set())
    dtype = next(model.parameters()).dtype
    return DecoderShape(
        family=lay.family,
        layers=len(blocks),
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=intermediate,
        mlp_matrices=matrices,
        vocab=int(c.vocab_size),
        context=context,
        dtype_bytes=torch.empty((), dtype=dtype).element_size(),
        has_head=lay.head is not None,
        embed_param_bytes=embed,
        block_param_bytes=blocks,
        final_param_bytes=final,
    )


def check_cuts(cuts: Sequence[float], layers: int) -> tuple[int, ...]:
    """Validate block-boundary cuts: strictly increasing integers in ``1 .. layers-1``."""
    out = []
    for c in cuts:
        if isinstance(c, bool) or not float(c).is_integer():
            raise InputError(
                f"cut {c!r} falls inside a block; cuts are block boundaries, integers 1..{layers - 1}"
            )
        out.append(int(c))
    for c in out:
        if not 1 <= c <= layers - 1:
            raise InputError(
                f"cut {c} is out of range: the model has {layers} blocks, so cuts are 1..{layers - 1}"
            )
    if any(b <= a for a, b in zip(out, out[1:])):
        raise InputError(f"cuts {out} must be strictly increasing block indices")
    return tuple(out)


def _new_cache(config: Any) -> Any:
    from transformers import DynamicCache

    return DynamicCache(config=config)


class DecoderPart:
    """Blocks ``[lo, hi)`` of a decoder, with the embeddings (first part) and the final norm and
    head (last part), and the KV cache of its own blocks as explicit state.

    ``part(x)`` takes token ids (first part) or the hidden state of the new tokens, appends
    their keys and values to the part's cache, and returns the hidden state of the new tokens
    (logits from the last part of a model with a head, the final-normed hidden state without).
    """

    def __init__(self, layout: _Layout, index: int, lo: int, hi: int, first: bool, last: bool):
        self.index, self.lo, self.hi, self.first, self.last = index, lo, hi, first, last
        self._lay = layout
        self._blocks = list(layout.blocks())[lo:hi]
        self.cache = _new_cache(layout.config)

    @property
    def seen(self) -> int:
        """Tokens this part has processed: the position of the next token."""
        return int(self.cache.get_seq_length(self.lo))

    def reset(self) -> None:
        """Forget the sequence: an empty cache."""
        self.cache = _new_cache(self._lay.config)

    def kv_bytes(self) -> int:
        """Bytes held in this part's KV cache now."""
        total = 0
        for layer in self.cache.layers[self.lo : self.hi]:
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if isinstance(t, torch.Tensor):
                    total += t.numel() * t.element_size()
        return total

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_causal_mask

        lay = self._lay
        q = x.shape[1]
        past = self.seen
        positions = torch.arange(past, past + q, device=x.device).unsqueeze(0)
        hidden = lay.embed(x, positions) if self.first else x
        # Built from this part's own cache (its first block), as the unsplit model builds it
        # from layer 0's: both have seen the same tokens.
        mask = create_causal_mask(
            config=lay.config,
            inputs_embeds=hidden,
            attention_mask=None,
            past_key_values=self.cache,
            position_ids=positions,
            layer_idx=self.lo,
        )
        extra = lay.block_kwargs(hidden, positions)
        for block in self._blocks:
            hidden = block(
                hidden,
                attention_mask=mask,
                past_key_values=self.cache,
                use_cache=True,
                position_ids=positions,
                **extra,
            )
        if self.last:
            hidden = lay.norm()(hidden)
            if lay.head is not None:
                hidden = lay.head(hidden)
        return hidden


@dataclass(frozen=True)
class StepRecord:
    """One forward through all parts: the prefill (step 0) or one decoded token."""

    step: int
    position: int  # position of the first token fed in this step
    tokens: tuple[int, ...]  # the greedy token chosen, per batch row
    part_seconds: tuple[float, ...]
    cut_bytes: tuple[int, ...]  # bytes of the hidden state crossing each cut
    seconds: float  # wall time of the whole step, parts and hand-overs included


@dataclass(frozen=True)
class Generation:
    """Greedy generation: new token ids ``(batch, tokens)``, per-step logits, per-step records."""

    tokens: torch.Tensor
    logits: tuple[torch.Tensor, ...]  # last-position logits of each step, (batch, vocab)
    records: tuple[StepRecord, ...]


class DecoderSplit:
    """A decoder cut at block boundaries into parts; see the module docstring."""

    def __init__(self, model: nn.Module, cuts: Sequence[float]) -> None:
        self.model = model.eval()
        self.shape = describe(model)
        self.cuts = check_cuts(cuts, self.shape.layers)
        lay = _layout(model)
        bounds = (0, *self.cuts, self.shape.layers)
        n = len(bounds) - 1
        self.parts = tuple(
            DecoderPart(lay, i, bounds[i], bounds[i + 1], first=i == 0, last=i == n - 1)
            for i in range(n)
        )

    def reset(self) -> None:
        for p in self.parts:
            p.reset()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[float], list[int]]:
        """Feed tokens ``(batch, q)`` through every part: (last output, per-part seconds, cut bytes)."""
        seconds: list[float] = []
        crossing: list[int] = []
        for i, part in enumerate(self.parts):
            if i:
                crossing.append(x.numel() * x.element_size())
            t0 = time.perf_counter()
            x = part(x)
            seconds.append(time.perf_counter() - t0)
        return x, seconds, crossing

    def generate(
        self,
        input_ids: torch.Tensor,
        tokens: int,
        on_step: Callable[[StepRecord], None] | None = None,
    ) -> Generation:
        """Prefill ``input_ids`` then decode ``tokens`` greedy tokens, one step per token."""
        if not self.shape.has_head:
            raise InputError(
                f"model {type(self.model).__name__} has no LM head; use its *LMHeadModel / "
                "*ForCausalLM class to generate"
            )
        check_length(self.shape, input_ids.shape[1], tokens)
        self.reset()
        return _greedy(self.forward, input_ids, tokens, on_step)


def check_length(shape: DecoderShape, prompt_len: int, tokens: int) -> None:
    """The prompt plus the generated tokens must fit the context window."""
    if prompt_len < 1 or tokens < 1:
        raise InputError(f"--prompt-len ({prompt_len}) and --tokens ({tokens}) must be at least 1")
    # The last generated token is never fed back, so the deepest position is prompt+tokens-2.
    if prompt_len + tokens - 1 > shape.context:
        raise InputError(
            f"--prompt-len {prompt_len} + --tokens {tokens} exceeds the context window of "
            f"{shape.context} positions; ask for at most {shape.context - prompt_len + 1} tokens"
        )


DecodeStep = Callable[[torch.Tensor], tuple[torch.Tensor, list[float], list[int]]]


def _greedy(
    step: DecodeStep,
    input_ids: torch.Tensor,
    tokens: int,
    on_step: Callable[[StepRecord], None] | None,
) -> Generation:
    out: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    records: list[StepRecord] = []
    x, position = input_ids, 0
    for i in range(tokens):
        t0 = time.perf_counter()
        y, seconds, crossing = step(x)
        wall = time.perf_counter() - t0
        last = y[:, -1, :]
        nxt = last.argmax(dim=-1)
        logits.append(last)
        out.append(nxt)
        rec = StepRecord(i, position, tuple(nxt.tolist()), tuple(seconds), tuple(crossing), wall)
        records.append(rec)
        if on_step is not None:
            on_step(rec)
        position += x.shape[1]
        x = nxt.unsqueeze(1)
    return Generation(torch.stack(out, dim=1), tuple(logits), tuple(records))


def unsplit_generate(
    model: nn.Module,
    input_ids: torch.Tensor,
    tokens: int,
    on_step: Callable[[StepRecord], None] | None = None,
) -> Generation:
    """The oracle: the unsplit model's own ``forward`` with one DynamicCache, greedy."""
    shape = describe(model)
    if not shape.has_head:
        raise InputError(
            f"model {type(model).__name__} has no LM head; use its *LMHeadModel / *ForCausalLM class"
        )
    check_length(shape, input_ids.shape[1], tokens)
    model.eval()
    cache = _new_cache(_layout(model).config)

    @torch.no_grad()
    def step(x: torch.Tensor) -> tuple[torch.Tensor, list[float], list[int]]:
        t0 = time.perf_counter()
        y = model(input_ids=x, past_key_values=cache, use_cache=True).logits
        return y, [time.perf_counter() - t0], []

    return _greedy(step, input_ids, tokens, on_step)


def decoder_part(model: nn.Module, cuts: Sequence[float], index: int) -> DecoderPart:
    """Part ``index`` alone of ``model`` cut at ``cuts``, with an empty cache of its own.

    A tier of a decode session (:mod:`edgesplit.runtime.decode_sessions`) builds only its
    part; parts of one model share its weights, never their caches.
    """
    layers = describe(model).layers
    bounds = (0, *check_cuts(cuts, layers), layers)
    n = len(bounds) - 1
    if not 0 <= index < n:
        raise InputError(f"part {index} is not in a {n}-part split; parts are 0..{n - 1}")
    lo, hi = bounds[index], bounds[index + 1]
    return DecoderPart(_layout(model.eval()), index, lo, hi, first=index == 0, last=index == n - 1)


def split_decoder(model: nn.Module, cuts: Sequence[float]) -> DecoderSplit:
    """Cut a GPT-2 or LLaMA model before blocks ``cuts`` (e.g. ``[4, 8]``: three parts)."""
    return DecoderSplit(model, cuts)
