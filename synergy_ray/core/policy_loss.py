"""PPO/GRPO clipped surrogate loss with asymmetric clipping and optional truncated importance sampling.

Per token, with r = exp(logp - old_logp):  loss = -min(r * A, clip(r, 1 - clip_low, 1 + clip_high) * A).
clip_high > clip_low is DAPO's "clip-higher". Aggregation is token_mean or seq_mean (see core.aggregation).

Truncated importance sampling (TIS): vLLM samples with slightly different numerics than the learner, so the
"old" policy that generated the tokens is really the sampler's. When `sampler_logprobs` and `tis_cap` are given,
each token's loss is multiplied by min(exp(old_logp - sampler_logp), tis_cap), detached (a fixed weight, as in
Yao et al. 2025 "Your efficient RL framework secretly brings you off-policy RL training").
Both log-ratios are zeroed outside `mask` and clamped to +-MAX_LOG_RATIO (20 nats) before `exp`
(core.log_ratio), so a NaN or +-1e4 at a padded position cannot reach the loss or its gradient.
Left out: the KL term (core.kl, added by the caller), dual-clip PPO, sequence-level (GSPO) ratios, entropy bonus.
"""

from __future__ import annotations

import torch
from torch import Tensor

from synergy_ray.core.aggregation import aggregate_tokens, masked_mean
from synergy_ray.core.log_ratio import bounded_log_ratio


def _per_token_advantages(advantages: Tensor, like: Tensor) -> Tensor:
    if advantages.dim() == 1:  # one advantage per sequence, shared by its tokens
        advantages = advantages.unsqueeze(-1)
    return advantages.to(like.dtype).expand_as(like)


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    aggregation: str = "token_mean",
    sampler_logprobs: Tensor | None = None,
    tis_cap: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Clipped surrogate over completion tokens (mask == 1). Shapes [B, T]; advantages [B] or [B, T].

    Returns (scalar loss with grad through `logprobs`, stats of plain floats).
    """
    per_token, stats = clipped_surrogate(logprobs, old_logprobs, advantages, mask, clip_low, clip_high,
                                         sampler_logprobs, tis_cap)
    return aggregate_tokens(per_token, mask, aggregation), stats


def clipped_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    sampler_logprobs: Tensor | None = None,
    tis_cap: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The per-token loss [B, T] before aggregation, and its stats; callers that shard a batch aggregate it."""
    adv = _per_token_advantages(advantages, logprobs)
    log_ratio = bounded_log_ratio(logprobs, old_logprobs.detach(), mask)
    ratio = torch.exp(log_ratio)
    clipped_ratio = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = -torch.min(ratio * adv, clipped_ratio * adv)

    stats: dict[str, float] = {}
    if sampler_logprobs is not None and tis_cap is not None:
        # A token vLLM returned no log-prob for (NaN) gets weight 1, i.e. no correction, as in TRL.
        log_weight = torch.nan_to_num(bounded_log_ratio(old_logprobs.detach(), sampler_logprobs, mask), nan=0.0)
        tis_weight = torch.exp(log_weight).clamp(max=tis_cap).detach()
        per_token = per_token * tis_weight
        stats["tis_weight_mean"] = masked_mean(tis_weight, mask).item()
    stats.update(_ratio_stats(ratio.detach(), log_ratio.detach(), adv, mask, clip_low, clip_high))
    return per_token, stats


def _ratio_stats(ratio, log_ratio, adv, mask, clip_low, clip_high) -> dict[str, float]:
    # A token is "clipped" only where the clip changes the gradient: below the range with A < 0, above with A > 0.
    low = ((ratio < 1.0 - clip_low) & (adv < 0)).float()
    high = ((ratio > 1.0 + clip_high) & (adv > 0)).float()
    approx_kl = (ratio - 1.0) - log_ratio  # k3 estimate of KL(old || new), >= 0
    names = ("clip_frac_low", "clip_frac_high", "ratio_mean", "approx_kl")
    values = torch.stack([masked_mean(x, mask) for x in (low, high, ratio, approx_kl)]).tolist()  # one device sync
    return dict(zip(names, values))
