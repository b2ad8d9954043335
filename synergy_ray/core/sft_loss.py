"""Token-weighted negative log-likelihood for SFT terms inside RL (interleaved, progressive, CHORD-like mixing).

loss = aggregate(-weight * logp) over the mask (assistant tokens), e.g. weight 0.2 on expert-prefix tokens in the
progressive strategy. The normaliser is the number of masked tokens, not the sum of weights: dividing by the
sum of weights would undo the weighting (a batch of only 0.2-weight tokens would get the same loss as a batch of
1.0-weight tokens), and the weight would no longer trade SFT off against the RL loss it is added to.
Left out: label smoothing, and per-token weights that depend on the model (CHORD's p(1 - p)); compute those
outside and pass them in as `weights`.
"""

from __future__ import annotations

from torch import Tensor

from synergy_ray.core.aggregation import aggregate_tokens


def weighted_nll(
    token_logprobs: Tensor, weights: Tensor, mask: Tensor, aggregation: str = "token_mean"
) -> Tensor:
    """Weighted NLL of [B, T] token log-probs; `weights` [B, T] scale tokens, `mask` [B, T] selects them."""
    if weights.shape != token_logprobs.shape:
        raise ValueError(f"weights {tuple(weights.shape)} must match logprobs {tuple(token_logprobs.shape)}")
    per_token = -weights.to(token_logprobs.dtype) * token_logprobs
    return aggregate_tokens(per_token, mask, aggregation)
