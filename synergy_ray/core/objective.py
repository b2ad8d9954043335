"""The learner's whole per-token objective in one place: GRPO on sampled tokens, SFT on given tokens.

Per token t of a sequence, with `policy_mask` (tokens the policy sampled) and `sft_mask` (tokens given to it:
an expert trace, a hint prefix):
    policy tokens:  clipped surrogate (core.policy_loss) + kl_coef * KL(policy || ref) (core.kl)
    given tokens:   -sft_weight * log p(t)                          (the weighted NLL of core.sft_loss)
and the two kinds are reduced together by `core.aggregation.aggregate_sharded`, so one optimiser step trains
both. Given tokens never enter the policy ratio or the KL term. The learner (DeepSpeed, CPU or GPU) and the GPU
benchmark call this same function; it only needs tensors already laid on the [B, T] token grid.
Positions outside both masks (padding) may hold any value, NaN included: every input is zeroed there before the
first non-linearity (core.log_ratio), so neither the loss nor its gradient can see them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from synergy_ray.core.aggregation import aggregate_sharded
from synergy_ray.core.kl import kl_estimate
from synergy_ray.core.log_ratio import zero_outside
from synergy_ray.core.policy_loss import clipped_surrogate


def grpo_sft_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    ref_logprobs: Tensor | None,
    advantages: Tensor,
    policy_mask: Tensor,
    sft_mask: Tensor,
    sft_weight: Tensor,
    *,
    clip_low: float,
    clip_high: float,
    kl_coef: float,
    kl_estimator: str,
    aggregation: str,
    total_tokens: int,
    total_sequences: int,
    sampler_logprobs: Tensor | None = None,
    tis_cap: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """This shard's loss (scalar with grad through `logprobs`) and its summed stats.

    Shapes are [B, T] except `advantages` [B]. `old_logprobs` may equal `logprobs.detach()` (one update per
    batch: ratio 1). `ref_logprobs=None` means no KL term. `total_tokens`/`total_sequences` count the whole
    mini-batch over all shards (see aggregate_sharded).
    """
    per_token, pstats = clipped_surrogate(logprobs, old_logprobs, advantages, policy_mask, clip_low, clip_high,
                                          sampler_logprobs, tis_cap)
    kl = torch.zeros_like(logprobs)
    if ref_logprobs is not None:
        kl = kl_estimate(logprobs, ref_logprobs, kl_estimator, policy_mask)
        per_token = per_token + kl_coef * kl
    # The weight is masked too: d(w * logp)/d logp = w, so a NaN weight on padding would poison the gradient.
    per_token = torch.where(sft_mask > 0, -zero_outside(sft_weight, sft_mask) * logprobs, per_token)
    loss = aggregate_sharded(per_token, policy_mask + sft_mask, aggregation, total_tokens, total_sequences)
    n_policy = float(policy_mask.sum())
    stats = {
        "loss": float(loss.detach()), "policy_tokens": n_policy, "sft_tokens": float(sft_mask.sum()),
        "kl_sum": float((kl.detach() * policy_mask).sum()),
        "clipped_sum": (pstats["clip_frac_low"] + pstats["clip_frac_high"]) * n_policy,
    }
    return loss, stats
