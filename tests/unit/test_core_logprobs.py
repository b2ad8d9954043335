import math

import pytest
import torch

from synergy_ray.core.logprobs import gather_token_logprobs, shift_for_next_token


def test_logprob_by_hand():
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])  # softmax = [1/4, 3/4]
    out = gather_token_logprobs(logits, torch.tensor([[1, 0]]))
    assert out.tolist()[0] == pytest.approx([math.log(0.75), math.log(0.25)])


def test_matches_log_softmax_and_is_float32_for_bf16_logits():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, dtype=torch.float64) * 4
    tokens = torch.randint(0, 11, (3, 5))
    reference = torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(gather_token_logprobs(logits.float(), tokens).double(), reference, atol=1e-6)
    low = logits.to(torch.bfloat16)
    out = gather_token_logprobs(low, tokens)
    assert out.dtype == torch.float32
    exact_from_bf16 = torch.log_softmax(low.double(), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(out.double(), exact_from_bf16, atol=1e-5)  # no bf16 rounding of the log-probs


def test_gradient_flows_to_logits():
    logits = torch.zeros(1, 1, 4, requires_grad=True)
    gather_token_logprobs(logits, torch.tensor([[2]])).sum().backward()
    assert logits.grad[0, 0].tolist() == pytest.approx([-0.25, -0.25, 0.75, -0.25])  # onehot - softmax


def test_shift_aligns_logits_with_next_tokens():
    logits = torch.arange(4.0).view(1, 4, 1)
    ids = torch.tensor([[10, 11, 12, 13]])
    mask = torch.tensor([[0, 0, 1, 1]])
    shifted_logits, targets, shifted_mask = shift_for_next_token(logits, ids, mask)
    assert shifted_logits[0, :, 0].tolist() == [0.0, 1.0, 2.0]  # position t predicts token t + 1
    assert targets.tolist() == [[11, 12, 13]]
    assert shifted_mask.tolist() == [[0, 1, 1]]
