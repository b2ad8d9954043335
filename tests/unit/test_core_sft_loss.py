import pytest
import torch

from synergy_ray.core.sft_loss import weighted_nll


def test_prefix_tokens_weighted_point_two_normalised_by_token_count():
    logp = torch.tensor([[-1.0, -2.0, -3.0, -4.0]])
    weights = torch.tensor([[0.2, 0.2, 1.0, 1.0]])  # two expert-prefix tokens, then the model's own tokens
    mask = torch.tensor([[1, 1, 1, 0]])  # last token is padding
    loss = weighted_nll(logp, weights, mask)
    assert loss.item() == pytest.approx((0.2 * 1 + 0.2 * 2 + 3) / 3)  # 1.2, not 3.6 / 1.4 = 2.571


def test_uniform_small_weight_scales_the_loss():
    logp = torch.tensor([[-1.0, -3.0]])
    mask = torch.ones(1, 2)
    full = weighted_nll(logp, torch.ones(1, 2), mask)
    assert full.item() == pytest.approx(2.0)
    assert weighted_nll(logp, torch.full((1, 2), 0.2), mask).item() == pytest.approx(0.4)


def test_seq_mean_and_gradient():
    logp = torch.tensor([[-1.0, -1.0], [-4.0, -4.0]], requires_grad=True)
    weights = torch.tensor([[1.0, 1.0], [0.2, 1.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss = weighted_nll(logp, weights, mask, "seq_mean")
    assert loss.item() == pytest.approx((1.0 + 0.8) / 2)
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([-0.25, -0.25, -0.1, 0.0])


def test_shape_mismatch():
    with pytest.raises(ValueError, match="weights"):
        weighted_nll(torch.zeros(1, 2), torch.zeros(1, 3), torch.ones(1, 2))
