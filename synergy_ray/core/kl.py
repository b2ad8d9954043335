"""Per-token KL estimates between the policy and a frozen reference, from sampled tokens' log-probs.

With d = ref_logp - logp at tokens sampled from the policy:
- "k1": logp - ref_logp = -d. Unbiased for KL(policy || ref) but high variance and can be negative per token.
- "k3": exp(d) - d - 1. Schulman's low-variance estimator ("Approximating KL divergence", 2020), always >= 0;
  the one GRPO (DeepSeekMath) and TRL use as a loss term.
Padded positions (outside `mask`) are zeroed before the estimate and k3 clamps d at MAX_LOG_RATIO (20 nats)
before `exp` (core.log_ratio); its low side stays open, where exp(d) -> 0 is harmless.
Left out: k2 (0.5 * d^2) and KL-in-reward shaping (PPO-style); the penalty here is a loss term.
"""

from __future__ import annotations

import torch
from torch import Tensor

from synergy_ray.core.aggregation import aggregate_tokens
from synergy_ray.core.log_ratio import MAX_LOG_RATIO, zero_outside

KL_KINDS = ("k1", "k3")


def kl_estimate(logprobs: Tensor, ref_logprobs: Tensor, kind: str = "k3", mask: Tensor | None = None) -> Tensor:
    """Per-token KL(policy || ref) estimate, same shape as the inputs, exactly 0 outside `mask` (None: no
    padding); the reference gets no gradient."""
    mask = torch.ones_like(logprobs) if mask is None else mask
    delta = zero_outside(ref_logprobs.detach() - logprobs, mask)
    if kind == "k1":
        return -delta
    if kind == "k3":
        delta = delta.clamp(max=MAX_LOG_RATIO)
        return torch.exp(delta) - delta - 1.0
    raise ValueError(f"unknown KL estimator {kind!r}; expected one of {KL_KINDS}")


def kl_penalty(
    logprobs: Tensor,
    ref_logprobs: Tensor,
    mask: Tensor,
    coef: float,
    kind: str = "k3",
    aggregation: str = "token_mean",
) -> Tensor:
    """coef * aggregated per-token KL over `mask`, ready to add to the policy loss (0.005 in the paper)."""
    return coef * aggregate_tokens(kl_estimate(logprobs, ref_logprobs, kind, mask), mask, aggregation)
