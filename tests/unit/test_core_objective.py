"""The learner's combined objective against hand-derived numbers: SFT tokens, policy tokens and KL together."""

import math

import torch

from synergy_ray.core.objective import grpo_sft_loss


def test_combined_objective_by_hand():
    # One sequence of three tokens: token 0 given (SFT weight 0.2), tokens 1-2 sampled (advantage 2).
    logp = torch.tensor([[-1.0, -0.5, -2.0]], requires_grad=True)
    ref = torch.tensor([[-9.0, -0.4, -2.0]])  # the reference matters only on policy tokens
    policy = torch.tensor([[0.0, 1.0, 1.0]])
    sft = torch.tensor([[1.0, 0.0, 0.0]])
    loss, stats = grpo_sft_loss(
        logp, logp.detach(), ref, torch.tensor([2.0]), policy, sft, torch.full((1, 3), 0.2),
        clip_low=0.2, clip_high=0.28, kl_coef=0.1, kl_estimator="k3", aggregation="token_mean",
        total_tokens=3, total_sequences=1)
    k3 = math.exp(0.1) - 0.1 - 1  # d = ref - logp = 0.1 on token 1, 0 on token 2
    # ratio 1 (old = current): surrogate -A per policy token; SFT token -0.2 * logp = 0.2; mean over 3 tokens.
    assert math.isclose(float(loss), (0.2 - 2.0 + 0.1 * k3 - 2.0) / 3, rel_tol=1e-6)
    loss.backward()
    expected = [-0.2 / 3, (-2.0 + 0.1 * (1 - math.exp(0.1))) / 3, -2.0 / 3]
    assert torch.allclose(logp.grad, torch.tensor([expected]), atol=1e-6)
    assert stats["sft_tokens"] == 1 and stats["policy_tokens"] == 2
    assert math.isclose(stats["kl_sum"], k3, rel_tol=1e-5)


def test_given_tokens_stay_out_of_the_ratio_even_when_stale():
    # A far-off "old" log-prob on an SFT token would clip or explode the ratio; it must not matter there.
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    old = torch.tensor([[-50.0, -1.0]])
    loss, _ = grpo_sft_loss(
        logp, old, None, torch.tensor([1.0]), torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]),
        torch.ones(1, 2), clip_low=0.2, clip_high=0.2, kl_coef=0.0, kl_estimator="k3",
        aggregation="token_mean", total_tokens=2, total_sequences=1)
    assert math.isclose(float(loss), (1.0 - 1.0) / 2, abs_tol=1e-7)
