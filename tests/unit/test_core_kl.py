import math

import pytest
import torch

from synergy_ray.core.kl import kl_estimate, kl_penalty

LOGP = torch.tensor([[-1.0, -2.0]])
REF = torch.tensor([[-1.5, -1.0]])  # ref - logp = [-0.5, 1.0]


def test_k1_is_logp_minus_ref():
    assert kl_estimate(LOGP, REF, "k1").tolist()[0] == pytest.approx([0.5, -1.0])


def test_k3_by_hand():
    expected = [math.exp(-0.5) + 0.5 - 1.0, math.exp(1.0) - 1.0 - 1.0]  # [0.1065307, 0.7182818]
    assert kl_estimate(LOGP, REF, "k3").tolist()[0] == pytest.approx(expected)


def test_k3_is_non_negative_and_zero_at_equality():
    torch.manual_seed(0)
    a, b = torch.randn(50), torch.randn(50)
    assert (kl_estimate(a, b, "k3") >= 0).all()
    assert kl_estimate(a, a, "k3").abs().max() == 0


def test_penalty_is_coef_times_aggregated_kl_and_ref_gets_no_grad():
    logp = LOGP.clone().requires_grad_(True)
    ref = REF.clone().requires_grad_(True)
    mask = torch.tensor([[1.0, 0.0]])
    penalty = kl_penalty(logp, ref, mask, coef=0.005, kind="k3")
    assert penalty.item() == pytest.approx(0.005 * (math.exp(-0.5) - 0.5))
    penalty.backward()
    assert ref.grad is None
    assert logp.grad.tolist()[0] == pytest.approx([0.005 * (1 - math.exp(-0.5)), 0.0])  # d k3/d logp = 1 - e^d


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown KL estimator 'k2'"):
        kl_estimate(LOGP, REF, "k2")
