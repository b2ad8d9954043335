"""Schedules for how much of an expert trace a hint reveals, as a fraction in [0, 1].

`prefix_fraction(step, total, kind)`: 1 at step 0 (the whole trace), 0 from `total` on (nothing left).
- linear: 1 - step/total
- cosine: (1 + cos(pi * step/total)) / 2, slow at both ends
- step:   drops by 1/num_stages at equal intervals: 1, (n-1)/n, ..., 1/n, then 0 at `total`
`trace_hint_fraction(pass_rate, hint_below)`: per question, 1 when it is never solved, shrinking linearly to
0 as its pass rate reaches `hint_below`.
"""

from __future__ import annotations

import math

SCHEDULES = ("linear", "cosine", "step")


def prefix_fraction(step: int, total: int, kind: str = "linear", num_stages: int = 4) -> float:
    if total <= 0:
        raise ValueError(f"total must be positive, got {total}")
    if step >= total:
        return 0.0
    x = max(0, step) / total
    if kind == "linear":
        return 1.0 - x
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * x))
    if kind == "step":
        return 1.0 - math.floor(x * num_stages) / num_stages
    raise ValueError(f"unknown schedule {kind!r}; expected one of {SCHEDULES}")


def trace_hint_fraction(pass_rate: float, hint_below: float) -> float:
    if hint_below <= 0 or pass_rate >= hint_below:
        return 0.0
    return 1.0 - pass_rate / hint_below


def prefix_tokens(num_tokens: int, fraction: float) -> int:
    """How many leading tokens of a trace a fraction reveals (rounded down; a full trace keeps its last token
    out, so the model always writes at least the end itself)."""
    return max(0, min(num_tokens - 1, int(num_tokens * fraction)))
