"""Per-token log-probabilities of given tokens under a model's logits.

`gather_token_logprobs` computes log_softmax in float32 (bf16 log-probs are too coarse for importance ratios
near 1) over chunks of at most `chunk` positions of one sequence, so the float32 copy is [chunk, V], never
[B, T, V]: with V ~ 150k that copy would be the largest tensor in the learner. It computes
logit[token] - logsumexp(logits) rather than a full log_softmax, so nothing of size V is kept per token.

When the logits are not float32 and need a gradient, each chunk's float32 copy would otherwise be saved for
backward (logsumexp keeps its input), one per chunk: then every chunk is recomputed in backward instead
(`torch.utils.checkpoint`), which keeps only the logits the model returned. A float32 input is its own copy, so
nothing is recomputed there. Left out: vocabulary-parallel (sharded V) logits and temperature scaling (divide
the logits before calling).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

CHUNK = 1024  # positions per float32 copy: 1024 x 150k x 4 bytes = 0.6 GB at Qwen2.5's vocabulary


def _chunk_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    logits = logits.float()
    return logits.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def gather_token_logprobs(logits: Tensor, tokens: Tensor, chunk: int = CHUNK) -> Tensor:
    """log p(tokens[b, t] | logits[b, t]) as float32 [B, T], from logits [B, T, V] and token ids [B, T].

    Every token must be a valid id (no -100): pad with the pad token and mask the result instead.
    """
    if logits.shape[:-1] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match tokens {tuple(tokens.shape)}")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    recompute = torch.is_grad_enabled() and logits.requires_grad and logits.dtype != torch.float32
    rows = []
    for row_logits, row_tokens in zip(logits, tokens):
        parts = []
        for i in range(0, row_tokens.shape[0], chunk):
            args = (row_logits[i:i + chunk], row_tokens[i:i + chunk])
            parts.append(checkpoint(_chunk_logprobs, *args, use_reentrant=False) if recompute
                         else _chunk_logprobs(*args))
        rows.append(torch.cat(parts) if parts else row_logits.new_zeros((0,), dtype=torch.float32))
    return torch.stack(rows) if rows else logits.new_zeros(tokens.shape, dtype=torch.float32)


def shift_for_next_token(logits: Tensor, input_ids: Tensor, mask: Tensor | None = None):
    """Align causal-LM logits with the tokens they predict: position t's logits score token t + 1.

    Returns (logits[:, :-1], input_ids[:, 1:], mask[:, 1:] or None); the mask is the one of the predicted tokens.
    """
    shifted_mask = None if mask is None else mask[:, 1:]
    return logits[:, :-1], input_ids[:, 1:], shifted_mask
