"""How many rollouts each drawn question gets, at a fixed total per step.

A group of G samples from a question with pass rate p shows a success with probability 1 - (1 - p)^G: at
p = 0.02 that is 15% for G = 8 and 48% for G = 32. A reliably solved question gives little signal however many
samples it gets. So every question starts at `n_min` samples and the rest of the step's budget is shared in
proportion to each question's need, 1 - p (its estimated failure rate), with no question above `n_max`.
Integer shares by largest remainder (ties: the earlier question), so the sizes always sum to the budget.

Equal needs (or `pass_rates=None`) split the budget evenly: that is plain GRPO's fixed group size when the
budget is a multiple of the number of questions.
"""

from __future__ import annotations

import math
from typing import Sequence


def allocate_group_sizes(pass_rates: Sequence[float] | None, total: int, n_min: int, n_max: int,
                         count: int | None = None) -> list[int]:
    """Group sizes summing to `total`, each in [n_min, n_max]; see the module docstring.

    `count` questions when `pass_rates` is None (an even split)."""
    n = len(pass_rates) if pass_rates is not None else count
    if not n:
        raise ValueError("allocate at least one question")
    if not 1 <= n_min <= n_max:
        raise ValueError(f"need 1 <= n_min <= n_max, got {n_min}, {n_max}")
    if not n * n_min <= total <= n * n_max:
        raise ValueError(f"{total} rollouts cannot go to {n} questions at {n_min}-{n_max} each")
    need = [1.0] * n if pass_rates is None else [1.0 - min(max(float(p), 0.0), 1.0) for p in pass_rates]
    if sum(need) <= 0:
        need = [1.0] * n  # every question always solved: nothing to favour
    sizes = [float(n_min)] * n
    open_ = set(range(n))
    left = float(total - n * n_min)
    while left > 1e-9 and open_:  # water-filling: share by need, cap at n_max, re-share what the caps refused
        weight = sum(need[i] for i in open_)
        share = {i: left * (need[i] / weight if weight > 0 else 1.0 / len(open_)) for i in open_}
        left = 0.0
        for i, extra in share.items():
            room = n_max - sizes[i]
            if extra >= room:
                sizes[i] = float(n_max)
                left += extra - room
                open_.discard(i)
            else:
                sizes[i] += extra
    whole = [math.floor(s + 1e-9) for s in sizes]
    order = sorted(range(n), key=lambda i: (-(sizes[i] - whole[i]), i))
    for i in order[:total - sum(whole)]:
        whole[i] += 1
    return whole
