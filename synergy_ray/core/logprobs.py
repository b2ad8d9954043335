"""Per-token log-probabilities of given tokens under a model's logits.

`gather_token_logprobs` computes log_softmax in float32 (bf16 log-probs are too coarse for importance ratios
near 1) one sequence at a time, so the float32 copy is [T, V], never [B, T, V]: with V ~ 150k that copy is
the largest tensor in the learner. It computes logit[token] - logsumexp(logits) rather than a full
log_softmax, so nothing of size V is kept per token. Left out: vocabulary-parallel (sharded V) logits and
temperature scaling (divide the logits before calling).
"""

from __future__ import annotations

import torch
from torch import Tensor


def gather_token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """log p(tokens[b, t] | logits[b, t]) as float32 [B, T], from logits [B, T, V] and token ids [B, T].

    Every token must be a valid id (no -100): pad with the pad token and mask the result instead.
    """
    if logits.shape[:-1] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match tokens {tuple(tokens.shape)}")
    rows = []
    for row_logits, row_tokens in zip(logits, tokens):
        row_logits = row_logits.float()
        picked = row_logits.gather(-1, row_tokens.long().unsqueeze(-1)).squeeze(-1)
        rows.append(picked - torch.logsumexp(row_logits, dim=-1))
    return torch.stack(rows) if rows else logits.new_zeros(tokens.shape, dtype=torch.float32)


def shift_for_next_token(logits: Tensor, input_ids: Tensor, mask: Tensor | None = None):
    """Align causal-LM logits with the tokens they predict: position t's logits score token t + 1.

    Returns (logits[:, :-1], input_ids[:, 1:], mask[:, 1:] or None); the mask is the one of the predicted tokens.
    """
    shifted_mask = None if mask is None else mask[:, 1:]
    return logits[:, :-1], input_ids[:, 1:], shifted_mask
