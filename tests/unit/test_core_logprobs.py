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


def test_chunks_and_recomputation_change_neither_values_nor_gradients():
    """bf16 logits with a gradient: chunks of 3 positions, recomputed in backward, give the one-chunk values and
    gradients exactly; a chunk must hold a position."""
    torch.manual_seed(1)
    base = (torch.randn(2, 7, 13) * 3).to(torch.bfloat16)
    tokens = torch.randint(0, 13, (2, 7))
    weights = torch.randn(2, 7)
    grads, values = [], []
    for chunk in (3, 64):
        logits = base.clone().requires_grad_(True)
        out = gather_token_logprobs(logits, tokens, chunk=chunk)
        (out * weights).sum().backward()
        values.append(out.detach())
        grads.append(logits.grad.float())
    assert torch.equal(values[0], values[1])
    assert torch.equal(grads[0], grads[1])
    with pytest.raises(ValueError, match="chunk"):
        gather_token_logprobs(base, tokens, chunk=0)


def test_the_float32_copy_of_bf16_logits_is_not_kept_for_backward():
    """What autograd saves for a bf16 [1, 512, 4096] input: with recomputation, no float32 tensor of that size."""
    logits = torch.zeros(1, 512, 4096, dtype=torch.bfloat16, requires_grad=True)
    tokens = torch.zeros(1, 512, dtype=torch.long)
    saved = []

    def pack(t):
        saved.append((t.dtype, t.numel()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        gather_token_logprobs(logits, tokens, chunk=128)
    assert not [s for s in saved if s[0] == torch.float32 and s[1] >= 128 * 4096], saved
