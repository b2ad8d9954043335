import math

import pytest
import torch

from synergy_ray.core.policy_loss import policy_loss

# Two sequences, two tokens each. Ratios r = exp(logp - old):
#   seq 0, A = +1: r = [1.5, 1.1]      seq 1, A = -1: r = [0.5, 1.5]
OLD = torch.zeros(2, 2)
RATIOS = torch.tensor([[1.5, 1.1], [0.5, 1.5]])
ADV = torch.tensor([1.0, -1.0])
MASK = torch.ones(2, 2)


def _logprobs():
    return torch.log(RATIOS).clone().requires_grad_(True)


def test_clipped_surrogate_with_clip_higher_by_hand():
    # per-token -min(rA, clip(r, .8, 1.28) A):
    #   seq 0: -min(1.5, 1.28) = -1.28 (clipped high), -1.1
    #   seq 1: -min(-.5, -.8) = .8 (clipped low), -min(-1.5, -1.28) = 1.5 (negative A is not clipped above)
    logp = _logprobs()
    loss, stats = policy_loss(logp, OLD, ADV, MASK, clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx((-1.28 - 1.1 + 0.8 + 1.5) / 4, abs=1e-6)  # -0.02
    assert stats["clip_frac_high"] == pytest.approx(0.25)
    assert stats["clip_frac_low"] == pytest.approx(0.25)
    assert stats["ratio_mean"] == pytest.approx((1.5 + 1.1 + 0.5 + 1.5) / 4)
    loss.backward()
    # clipped tokens get no gradient; unclipped: d/dlogp of -r A / 4 = -r A / 4
    assert logp.grad.tolist()[0] == pytest.approx([0.0, -1.1 / 4])
    assert logp.grad.tolist()[1] == pytest.approx([0.0, 1.5 / 4])


def test_symmetric_clip_differs_from_clip_higher():
    loss, stats = policy_loss(_logprobs(), OLD, ADV, MASK, clip_low=0.2, clip_high=0.2)
    assert loss.item() == pytest.approx((-1.2 - 1.1 + 0.8 + 1.5) / 4, abs=1e-7)  # 0.0, not -0.02
    assert stats["clip_frac_high"] == pytest.approx(0.25)


def test_per_token_advantages_equal_broadcast_sequence_advantages():
    per_seq, _ = policy_loss(_logprobs(), OLD, ADV, MASK, clip_high=0.28)
    per_token, _ = policy_loss(_logprobs(), OLD, ADV.unsqueeze(-1).expand(2, 2), MASK, clip_high=0.28)
    assert per_seq.item() == per_token.item()


def test_seq_mean_aggregation_and_mask():
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss, _ = policy_loss(_logprobs(), OLD, ADV, mask, clip_high=0.28, aggregation="seq_mean")
    assert loss.item() == pytest.approx(((-1.28 - 1.1) / 2 + 0.8) / 2)


def test_truncated_importance_sampling_caps_and_detaches_the_weight():
    logp = torch.zeros(1, 2, requires_grad=True)  # ratio 1 against old
    old = torch.zeros(1, 2)
    sampler = torch.tensor([[-math.log(3.0), math.log(2.0)]])  # old/sampler = 3 -> capped to 2, and 0.5
    loss, stats = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 2), sampler_logprobs=sampler, tis_cap=2.0)
    assert loss.item() == pytest.approx(-(2.0 + 0.5) / 2)
    assert stats["tis_weight_mean"] == pytest.approx(1.25)
    loss.backward()
    assert logp.grad.tolist()[0] == pytest.approx([-1.0, -0.25])  # -A r w / N, the weight is a constant
    missing = torch.tensor([[float("nan"), math.log(2.0)]])  # no sampler log-prob for token 0: weight 1
    partial, _ = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 2), sampler_logprobs=missing, tis_cap=2.0)
    assert partial.item() == pytest.approx(-(1.0 + 0.5) / 2)
    untouched, _ = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 2), sampler_logprobs=sampler)
    assert untouched.item() == pytest.approx(-1.0)  # no cap given: no TIS


def test_approx_kl_is_k3_of_the_ratio():
    _, stats = policy_loss(_logprobs(), OLD, ADV, MASK)
    expected = sum(r - 1 - math.log(r) for r in (1.5, 1.1, 0.5, 1.5)) / 4
    assert stats["approx_kl"] == pytest.approx(expected, rel=1e-6)
