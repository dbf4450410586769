"""Cost model and planner for decoder LLMs split across tiers at block boundaries.

A decoder plan gives each tier (device, edge, cloud, ...) a contiguous run of transformer
blocks; the first tier also holds the embeddings, the last the final norm and LM head
(:mod:`edgesplit.graph.decoder` is the mechanism that runs such a split). Generation has
two phases, costed separately:

- **prefill** of a prompt of ``N`` tokens: every block processes ``N`` tokens, and the
  hidden state of all ``N`` crosses each cut (``batch·N·hidden·dtype`` bytes);
- **decode**, one token at a time: every block processes one token against the cached keys
  and values, and ``batch·hidden·dtype`` bytes cross each cut, whatever the position.

FLOPs per block (multiply-add = 2 FLOPs, after Kaplan et al. 2020, "Scaling laws for neural
language models", Table 1), for ``q`` new tokens after ``p`` cached ones:

- dense: ``2·q·hidden·(2·heads + 2·kv_heads)·head_dim`` (Q, K, V, O projections) plus
  ``2·q·m·hidden·intermediate`` (``m`` = 2 MLP matrices for GPT-2, 3 for LLaMA);
- attention: ``4·heads·head_dim·Σ_{t=1..q}(p + t)`` (QKᵀ and AV over the causal context);
- the LM head: ``2·q·hidden·vocab`` (the model computes logits for every fed position).

The dense terms are exactly what ``torch.utils.flop_counter`` counts for the real parts (the
tests check this). Seconds = FLOPs / the tier's ``flops_per_second``; a cut's transfer time is
Luger eq. 4.3 (``bytes·8/bandwidth + rtt/2``) over the link between consecutive tiers.

KV-cache memory of a tier holding ``L`` blocks at sequence length ``S``:
``2·L·kv_heads·head_dim·S·dtype·batch`` bytes (keys and values; ``kv_heads = heads`` without
grouped-query attention). The deepest sequence of a run is ``N + T - 1``: the last generated
token is never fed back. A tier's memory need is its parameters plus that cache.

:func:`plan_decoder` evaluates given cuts, or searches every placement of ``k-1`` cuts among
the ``L-1`` block boundaries (``C(L-1, k-1)`` candidates, ``O(k)`` each) for the least total
time ``prefill + Σ decode steps`` that fits every tier's memory (Samadi and Mohammadi's
partition-and-assign objective, restricted to a chain of tiers).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from edgesplit.errors import InfeasiblePlanError, InputError
from edgesplit.graph.decoder import DecoderShape, check_cuts, check_length
from edgesplit.io import write_json
from edgesplit.system import Link
from edgesplit.units import Bytes


def dense_flops(shape: DecoderShape, tokens: int) -> int:
    """FLOPs of one block's projections and MLP for ``tokens`` new tokens (batch 1)."""
    proj = (2 * shape.heads + 2 * shape.kv_heads) * shape.head_dim * shape.hidden
    mlp = shape.mlp_matrices * shape.hidden * shape.intermediate
    return 2 * tokens * (proj + mlp)


def attention_flops(shape: DecoderShape, tokens: int, past: int) -> int:
    """FLOPs of one block's QKᵀ and AV for ``tokens`` new tokens after ``past`` cached ones."""
    context = tokens * past + tokens * (tokens + 1) // 2  # Σ_{t=1..q} (past + t)
    return 4 * shape.heads * shape.head_dim * context


def head_flops(shape: DecoderShape, tokens: int) -> int:
    """FLOPs of the LM head for ``tokens`` positions (0 for a model without a head)."""
    return 2 * tokens * shape.hidden * shape.vocab if shape.has_head else 0


def part_flops(
    shape: DecoderShape, lo: int, hi: int, tokens: int, past: int, batch: int = 1
) -> int:
    """FLOPs of blocks ``[lo, hi)`` (plus the head when ``hi`` is the last block)."""
    per_block = dense_flops(shape, tokens) + attention_flops(shape, tokens, past)
    head = head_flops(shape, tokens) if hi == shape.layers else 0
    return batch * ((hi - lo) * per_block + head)


def kv_bytes(shape: DecoderShape, blocks: int, seq: int, batch: int = 1) -> int:
    """KV-cache bytes of ``blocks`` blocks at sequence length ``seq``."""
    return 2 * blocks * shape.kv_heads * shape.head_dim * seq * shape.dtype_bytes * batch


def cut_bytes(shape: DecoderShape, tokens: int = 1, batch: int = 1) -> int:
    """Bytes crossing one cut for ``tokens`` new tokens: their hidden state."""
    return batch * tokens * shape.hidden * shape.dtype_bytes


def param_bytes(shape: DecoderShape, lo: int, hi: int) -> int:
    """Parameter bytes a tier holding blocks ``[lo, hi)`` needs (a tied head counts again)."""
    first = shape.embed_param_bytes if lo == 0 else 0
    last = shape.final_param_bytes if hi == shape.layers else 0
    return first + sum(shape.block_param_bytes[lo:hi]) + last


class DecoderTier(BaseModel):
    """A machine that holds a contiguous run of blocks."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1)
    flops_per_second: float = Field(gt=0, description="sustained FLOP/s of this tier")
    memory: Bytes | None = Field(default=None, gt=0, description="memory limit (bytes)")


class TierPlan(BaseModel):
    """One tier of a plan: its blocks and predicted costs."""

    name: str
    flops_per_second: float  # the tier speed the predictions assume
    blocks: tuple[int, int]  # [lo, hi)
    embeddings: bool
    head: bool
    param_bytes: int
    kv_bytes_per_token: int  # KV bytes added per token of sequence
    kv_bytes: int  # at the deepest sequence of the run
    memory_bytes: int  # param_bytes + kv_bytes
    prefill_flops: int
    decode_flops: int  # all decode steps together
    prefill_seconds: float
    decode_seconds: float


class CutPlan(BaseModel):
    """One cut: before block ``block``, from tier ``source`` to tier ``target``."""

    block: int
    source: str
    target: str
    bandwidth_bps: float
    rtt_s: float
    prefill_bytes: int
    bytes_per_token: int  # per decoded token, independent of the position
    prefill_seconds: float
    seconds_per_token: float


class DecoderPlan(BaseModel):
    """A decoder split across named tiers, with its predicted costs; saved as JSON."""

    format: Literal["edgesplit.decoder_plan"] = "edgesplit.decoder_plan"
    model: str
    #: How to rebuild the model (its config, weights): ``ModelRequest.describe``'s record.
    model_options: dict[str, Any] = Field(default_factory=dict)
    family: str
    layers: int
    cuts: tuple[int, ...]
    prompt_len: int = Field(ge=1)
    tokens: int = Field(ge=1)
    batch: int = Field(default=1, ge=1)
    tiers: list[TierPlan]
    links: list[CutPlan]
    prefill_seconds: float
    decode_seconds_per_token: float  # mean over the decode steps
    total_seconds: float

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.model_dump(mode="json"))


def load_decoder_plan(path: str | Path) -> DecoderPlan:
    """Read a plan written by :meth:`DecoderPlan.save`; a bad file raises one-line InputError."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InputError(f"plan file {str(path)!r} cannot be read: {err.strerror}") from None
    try:
        return DecoderPlan.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(
            f"plan file {str(path)!r}: field {loc!r}: {first['msg']}; "
            "write it with `edgesplit generate --save-plan`"
        ) from None


def _evaluate(
    shape: DecoderShape,
    cuts: tuple[int, ...],
    tiers: Sequence[DecoderTier],
    links: Sequence[Link],
    prompt_len: int,
    tokens: int,
    batch: int,
    model: str,
) -> DecoderPlan:
    bounds = (0, *cuts, shape.layers)
    steps = range(prompt_len, prompt_len + tokens - 1)  # past length of each decode step
    seq = prompt_len + tokens - 1
    tier_plans = []
    for tier, lo, hi in zip(tiers, bounds, bounds[1:]):
        pre = part_flops(shape, lo, hi, prompt_len, 0, batch)
        dec = sum(part_flops(shape, lo, hi, 1, p, batch) for p in steps)
        params, kv = param_bytes(shape, lo, hi), kv_bytes(shape, hi - lo, seq, batch)
        tier_plans.append(
            TierPlan(
                name=tier.name,
                flops_per_second=tier.flops_per_second,
                blocks=(lo, hi),
                embeddings=lo == 0,
                head=hi == shape.layers and shape.has_head,
                param_bytes=params,
                kv_bytes_per_token=kv_bytes(shape, hi - lo, 1, batch),
                kv_bytes=kv,
                memory_bytes=params + kv,
                prefill_flops=pre,
                decode_flops=dec,
                prefill_seconds=pre / tier.flops_per_second,
                decode_seconds=dec / tier.flops_per_second,
            )
        )
    cut_plans = []
    for i, (block, link) in enumerate(zip(cuts, links)):
        pre_b, tok_b = cut_bytes(shape, prompt_len, batch), cut_bytes(shape, 1, batch)
        cut_plans.append(
            CutPlan(
                block=block,
                source=tiers[i].name,
                target=tiers[i + 1].name,
                bandwidth_bps=link.rate_bps,
                rtt_s=link.rtt,
                prefill_bytes=pre_b,
                bytes_per_token=tok_b,
                prefill_seconds=link.seconds(pre_b),
                seconds_per_token=link.seconds(tok_b),
            )
        )
    prefill = sum(t.prefill_seconds for t in tier_plans) + sum(c.prefill_seconds for c in cut_plans)
    decode = sum(t.decode_seconds for t in tier_plans) + len(steps) * sum(
        c.seconds_per_token for c in cut_plans
    )
    return DecoderPlan(
        model=model,
        family=shape.family,
        layers=shape.layers,
        cuts=cuts,
        prompt_len=prompt_len,
        tokens=tokens,
        batch=batch,
        tiers=tier_plans,
        links=cut_plans,
        prefill_seconds=prefill,
        decode_seconds_per_token=decode / len(steps) if steps else 0.0,
        total_seconds=prefill + decode,
    )


def _fits(plan: DecoderPlan, tiers: Sequence[DecoderTier]) -> bool:
    return all(t.memory is None or p.memory_bytes <= t.memory for p, t in zip(plan.tiers, tiers))


def plan_decoder(
    shape: DecoderShape,
    tiers: Sequence[DecoderTier],
    links: Sequence[Link],
    prompt_len: int,
    tokens: int,
    *,
    batch: int = 1,
    cuts: Sequence[int] | None = None,
    model: str = "",
) -> DecoderPlan:
    """Evaluate ``cuts`` on ``tiers``, or find the fastest cuts that fit every tier's memory.

    ``links[i]`` joins ``tiers[i]`` and ``tiers[i+1]``. Exhaustive over ``C(L-1, k-1)`` cut
    placements for ``k`` tiers and ``L`` blocks; ties go to the earliest cuts.
    """
    if not tiers:
        raise InputError("a decoder plan needs at least one tier")
    if len(links) != len(tiers) - 1:
        raise InputError(
            f"{len(tiers)} tiers need {len(tiers) - 1} links (one between consecutive tiers), "
            f"got {len(links)}"
        )
    if len({t.name for t in tiers}) != len(tiers):
        raise InputError(f"tier names must be unique: {[t.name for t in tiers]}")
    if len(tiers) > shape.layers:
        raise InputError(f"{len(tiers)} tiers but only {shape.layers} blocks; use fewer tiers")
    check_length(shape, prompt_len, tokens)

    def make(c: tuple[int, ...]) -> DecoderPlan:
        return _evaluate(shape, c, tiers, links, prompt_len, tokens, batch, model)

    if cuts is not None:
        fixed = check_cuts(cuts, shape.layers)
        if len(fixed) != len(tiers) - 1:
            raise InputError(
                f"{len(fixed)} cuts make {len(fixed) + 1} parts, but {len(tiers)} tiers were named"
            )
        return make(fixed)
    best: DecoderPlan | None = None
    for c in itertools.combinations(range(1, shape.layers), len(tiers) - 1):
        plan = make(c)
        if _fits(plan, tiers) and (best is None or plan.total_seconds < best.total_seconds):
            best = plan
    if best is None:
        limits = ", ".join(f"{t.name} {t.memory:.0f} B" for t in tiers if t.memory is not None)
        raise InfeasiblePlanError(
            f"no placement of {shape.layers} blocks on {len(tiers)} tiers fits their memory "
            f"({limits}); raise a tier's 'memory', add a tier, or shorten --prompt-len/--tokens"
        )
    return best
