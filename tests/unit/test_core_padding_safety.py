"""Non-finite or huge values at padded positions never reach the loss or its gradient, and huge log-ratios at
real positions give finite numbers (core.log_ratio's 20-nat clamp), through the production objective."""

import math

import pytest
import torch

from synergy_ray.core.kl import kl_estimate
from synergy_ray.core.log_ratio import MAX_LOG_RATIO
from synergy_ray.core.objective import grpo_sft_loss

# Two sequences of four tokens. Row 0: three sampled tokens, one pad. Row 1: one given (SFT) token, one sampled,
# two pads. The values are arbitrary but on-grid: the clean loss is the reference the poisoned ones must equal.
POLICY = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
SFT = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
PAD = (POLICY + SFT) == 0
LOGP = torch.tensor([[-1.0, -0.5, -2.0, -0.3], [-0.7, -1.2, -0.4, -0.9]])
OLD = LOGP + torch.tensor([[0.3, -0.4, 0.1, 0.0], [0.0, 0.2, 0.0, 0.0]])  # ratios both sides of the clip
REF = LOGP + torch.tensor([[0.5, -0.2, 1.0, 0.0], [0.0, -0.6, 0.0, 0.0]])
SAMPLER = OLD + torch.tensor([[0.2, -0.1, 0.9, 0.0], [0.0, 0.3, 0.0, 0.0]])


def _loss(logp, old, ref, sampler, aggregation="token_mean", kl_estimator="k3", advantages=(1.5, -0.8)):
    logp = logp.clone().requires_grad_(True)
    loss, stats = grpo_sft_loss(
        logp, old, ref, torch.tensor(advantages), POLICY, SFT, torch.full((2, 4), 0.5),
        clip_low=0.2, clip_high=0.28, kl_coef=0.05, kl_estimator=kl_estimator, aggregation=aggregation,
        total_tokens=5, total_sequences=2, sampler_logprobs=sampler, tis_cap=2.0)
    loss.backward()
    return loss.detach(), logp.grad, stats


def _poison(x, value):
    return torch.where(PAD, torch.full_like(x, value), x)


@pytest.mark.parametrize("aggregation, kl_estimator", [("token_mean", "k3"), ("seq_mean", "k3"), ("token_mean", "k1")])
@pytest.mark.parametrize("which", ["logp", "old", "ref", "sampler", "all"])
@pytest.mark.parametrize("value", [math.nan, 1e4, -1e4, math.inf, -math.inf])
def test_padded_values_cannot_reach_loss_or_gradient(which, value, aggregation, kl_estimator):
    clean_loss, clean_grad, clean_stats = _loss(LOGP, OLD, REF, SAMPLER, aggregation, kl_estimator)
    inputs = {"logp": LOGP, "old": OLD, "ref": REF, "sampler": SAMPLER}
    poisoned = {k: _poison(v, value) if which in (k, "all") else v for k, v in inputs.items()}
    loss, grad, stats = _loss(*poisoned.values(), aggregation=aggregation, kl_estimator=kl_estimator)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert loss == clean_loss  # padding changes nothing, bit for bit
    assert torch.equal(grad, clean_grad)
    assert grad[PAD].abs().max() == 0
    assert stats == clean_stats  # the stats (KL sum, clip count) ignore padding too


@pytest.mark.parametrize("advantage", [1.5, -0.8])
@pytest.mark.parametrize("gap", [100.0, -100.0, 1e4, -1e4])
def test_huge_log_ratio_on_a_real_token_stays_finite(gap, advantage):
    # In float32 exp(88.8) = inf: without the clamp a 100-nat log-ratio gives an infinite loss (A < 0) or a NaN
    # gradient (A > 0: min() picks the clipped term, and exp's backward computes 0 * inf).
    old = OLD.clone()
    old[0, 1] = LOGP[0, 1] - gap
    ref = REF.clone()
    ref[0, 2] = LOGP[0, 2] + gap
    sampler = SAMPLER.clone()
    sampler[0, 0] = old[0, 0] - gap
    loss, grad, _ = _loss(LOGP, old, ref, sampler, advantages=(advantage, -0.8))
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_the_clamp_is_twenty_nats_and_holds_beyond():
    # k3 at d = 30 is held at d = 20: exp(20) - 20 - 1, with no gradient (the clamp is saturated)
    logp = torch.tensor([-31.0], requires_grad=True)
    kl = kl_estimate(logp, torch.tensor([-1.0]), "k3")
    assert MAX_LOG_RATIO == 20.0
    assert kl.item() == pytest.approx(math.exp(20.0) - 21.0, rel=1e-6)
    kl.sum().backward()
    assert logp.grad.item() == 0.0
    # below the bound nothing changes: d = 1 gives e - 2 and gradient 1 - e
    logp = torch.tensor([-2.0], requires_grad=True)
    kl = kl_estimate(logp, torch.tensor([-1.0]), "k3")
    kl.sum().backward()
    assert kl.item() == pytest.approx(math.e - 2.0) and logp.grad.item() == pytest.approx(1.0 - math.e)
