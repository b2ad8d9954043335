"""Reduce per-token values to a scalar over the valid (mask == 1) tokens.

Two variants, both common in GRPO code:
- "token_mean": sum over every valid token in the batch / number of valid tokens (DAPO's token-level loss;
  TRL's "dapo"/"bnpo" for one process). Long sequences weigh more, one weight per token.
- "seq_mean": mean over each sequence's valid tokens, then mean over sequences (the original GRPO objective;
  TRL's "grpo"). Each sequence weighs the same, so tokens of short answers weigh more.
Left out: Dr.GRPO's constant normaliser (divide by B * max_len) and cross-process token counts; callers that
shard a batch across workers must rescale themselves.
"""

from __future__ import annotations

import torch
from torch import Tensor

AGGREGATIONS = ("token_mean", "seq_mean")


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `x` where `mask` is 1, over `dim` (all elements when None).

    An empty slice gives 0, not NaN: the denominator is clamped to 1, so a row with no valid tokens adds nothing
    instead of poisoning the whole loss. Masked-out entries are selected away rather than multiplied by 0, so
    inf/NaN there (padding, missing sampler log-probs) cannot leak into the result.
    """
    valid = mask.bool()
    x = torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))
    count = valid.to(x.dtype)
    if dim is None:
        return x.sum() / count.sum().clamp(min=1.0)
    return x.sum(dim=dim) / count.sum(dim=dim).clamp(min=1.0)


def aggregate_tokens(values: Tensor, mask: Tensor, mode: str = "token_mean") -> Tensor:
    """Scalar from per-token `values` [B, T] over `mask` [B, T]; `mode` is "token_mean" or "seq_mean".

    For "seq_mean", rows without valid tokens still count in the number of sequences (they add 0), as in TRL's
    "grpo" loss: the divisor is the batch size whatever the mask.
    """
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} must have the same shape")
    if mode == "token_mean":
        return masked_mean(values, mask)
    if mode == "seq_mean":
        return masked_mean(values, mask, dim=-1).mean()
    raise ValueError(f"unknown aggregation {mode!r}; expected one of {AGGREGATIONS}")


def aggregate_sharded(values: Tensor, mask: Tensor, mode: str, total_tokens: int, total_sequences: int) -> Tensor:
    """This shard's contribution to a loss aggregated over a whole batch split across micro-batches or ranks.

    `total_tokens` / `total_sequences` count the whole batch, so the shards' contributions add up to exactly
    `aggregate_tokens` of the unsplit batch (for "seq_mean", every row of the batch counts as a sequence).
    """
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} must have the same shape")
    mask = mask.to(values.dtype)
    masked = torch.where(mask > 0, values, torch.zeros_like(values))
    if mode == "token_mean":
        return masked.sum() / max(1, total_tokens)
    if mode == "seq_mean":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / max(1, total_sequences)
    raise ValueError(f"unknown aggregation {mode!r}; expected one of {AGGREGATIONS}")
