"""Group-relative advantages: one scalar per completion, from the rewards of its group.

Variants:
- GRPO: (r - group mean) / (group std + 1e-6), std the unbiased (n - 1) sample std, as in DeepSeekMath and TRL.
  The 1e-6 keeps groups with identical rewards at advantage 0 instead of 0/0.
- Dr.GRPO: the same without the std division (scale=False), which removes the bias towards low-variance groups.
- RLOO: r minus the mean of the other G - 1 rewards of the group (leave-one-out baseline).
Groups are consecutive blocks of `group_size` rows. Left out: batch-level normalisation and reward whitening
across groups; per-token advantages (these are sequence-level and broadcast in policy_loss).

Precision: the math runs in float64 on rewards shifted by their group's first member. Every variant is
shift-invariant, and a group whose rewards are all equal becomes exactly zeros, so it gets advantage exactly 0
(in float32 the mean of eight 0.1s is one ulp off, and dividing by std + 1e-6 blew that up to -0.0074).
The result is rounded once, to the rewards' dtype (float32 for integer rewards).
"""

from __future__ import annotations

import torch
from torch import Tensor

ESTIMATORS = ("grpo", "dr_grpo", "rloo")


def _grouped(rewards: Tensor, group_size: int) -> Tensor:
    """Rewards as [groups, group_size] float64, each row minus its first element (a tied row is exactly 0)."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D, got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"number of rewards ({rewards.numel()}) is not divisible by group_size ({group_size})"
        )
    r = rewards.to(torch.float64).view(-1, group_size)
    return r - r[:, :1]


def _out_dtype(rewards: Tensor) -> torch.dtype:
    return rewards.dtype if rewards.is_floating_point() else torch.float32


def group_advantages(rewards: Tensor, group_size: int, scale: bool = True) -> Tensor:
    """GRPO advantages: reward minus its group mean, divided by the group std (+1e-6) when `scale`.

    Dr.GRPO sets scale=False. A group of one has std NaN in torch; we treat it as 0 (advantage 0).
    """
    r = _grouped(rewards, group_size)
    adv = r - r.mean(dim=1, keepdim=True)
    if scale:
        std = r.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(r[:, :1])
        adv = adv / (std + 1e-6)
    return adv.reshape(-1).to(_out_dtype(rewards))


def rloo_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """RLOO advantages: each reward minus the mean of the other G - 1 rewards in its group.

    Equals G / (G - 1) times the Dr.GRPO advantage. Needs G >= 2 (no "others" otherwise).
    """
    if group_size < 2:
        raise ValueError(f"RLOO needs group_size >= 2, got {group_size}")
    r = _grouped(rewards, group_size)
    others_mean = (r.sum(dim=1, keepdim=True) - r) / (group_size - 1)
    return (r - others_mean).reshape(-1).to(_out_dtype(rewards))


def compute_advantages(rewards: Tensor, group_size: int, estimator: str = "grpo") -> Tensor:
    """Advantages by name: "grpo", "dr_grpo" (no std scaling) or "rloo"."""
    if estimator == "grpo":
        return group_advantages(rewards, group_size, scale=True)
    if estimator == "dr_grpo":
        return group_advantages(rewards, group_size, scale=False)
    if estimator == "rloo":
        return rloo_advantages(rewards, group_size)
    raise ValueError(f"unknown advantage estimator {estimator!r}; expected one of {ESTIMATORS}")
