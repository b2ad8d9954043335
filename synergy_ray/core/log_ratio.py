"""Log-ratios that are safe to exponentiate: positions outside the mask are zeroed first, then the value is clamped.

Padded positions may hold anything (NaN from a missing sampler log-prob, -1e4 from a masked logit). They must be
replaced *before* the first non-linearity: masking after `exp` gives a finite loss but a NaN gradient, because
the backward of `exp` multiplies the zero upstream gradient by exp(x) = inf or NaN. `torch.where` sends exactly 0
to the branch it did not select, and `-` does not look at its inputs' values, so nothing leaks.

MAX_LOG_RATIO = 20 nats: exp(20) = 4.9e8 keeps a ratio, times an advantage, summed over a batch, far inside
float32 (exp overflows at 88.7), while any real token is far inside it: the PPO clip acts at ratio 1 +- 0.3, TIS
caps at a few units, and a log-ratio of 20 means one policy gives the token 5e8 times the probability the other
does, which only a bug or a stale log-prob produces. Beyond the bound the value is held and the gradient is 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

MAX_LOG_RATIO = 20.0


def zero_outside(values: Tensor, mask: Tensor) -> Tensor:
    """`values` where `mask` is non-zero, exactly 0 elsewhere (and no gradient flows to the elsewhere)."""
    return torch.where(mask.bool(), values, torch.zeros((), dtype=values.dtype, device=values.device))


def bounded_log_ratio(numerator: Tensor, denominator: Tensor, mask: Tensor) -> Tensor:
    """numerator - denominator on the mask (0 off it), clamped to +-MAX_LOG_RATIO, ready for `exp`."""
    return zero_outside(numerator - denominator, mask).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
