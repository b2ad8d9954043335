"""How many rollouts each drawn question gets, at a fixed total per step.

A group of G samples from a question with pass rate p shows a success with probability 1 - (1 - p)^G: at
p = 0.02 that is 15% for G = 8 and 48% for G = 32. A reliably solved question gives little signal however many
samples it gets. So every question starts at `n_min` samples and the rest of the step's budget is shared in
proportion to each question's need, 1 - p (its estimated failure rate), with no question above `n_max`.
Integer shares by largest remainder (ties: the earlier question), so the sizes always sum to the budget.

Equal needs (or `pass_rates=None`) split the budget evenly: that is plain GRPO's fixed group size when the
budget is a multiple of the number of questions.

`allocate_for_signal` spends the same budget on the chance of a gradient instead: a group of n at pass rate p
has a mixed outcome (not all right, not all wrong, so non-zero advantages) with probability
    P(n, p) = 1 - p^n - (1 - p)^n.
P is symmetric in p, but a mixed group of a nearly solved question only polishes what the model already does,
so a question's value is (1 - p) P(n, p): few samples for reliably solved questions, more for hard ones. Each
rollout above `n_min` goes, one at a time, to the question whose value gains most from it (ties: the smaller
group, then the earlier question); the value is concave in n, so this greedy split maximises the total. A
question at p = 0.5 is settled by about 4 samples (P = 0.88); one at p = 0.05 keeps gaining up to `n_max`
(P = 0.19 at 4, 0.56 at 16).
"""

from __future__ import annotations

import heapq
import math
from typing import Sequence


def _check_budget(n: int, total: int, n_min: int, n_max: int) -> None:
    if not n:
        raise ValueError("allocate at least one question")
    if not 1 <= n_min <= n_max:
        raise ValueError(f"need 1 <= n_min <= n_max, got {n_min}, {n_max}")
    if not n * n_min <= total <= n * n_max:
        raise ValueError(f"{total} rollouts cannot go to {n} questions at {n_min}-{n_max} each")


def allocate_group_sizes(pass_rates: Sequence[float] | None, total: int, n_min: int, n_max: int,
                         count: int | None = None) -> list[int]:
    """Group sizes summing to `total`, each in [n_min, n_max]; see the module docstring.

    `count` questions when `pass_rates` is None (an even split)."""
    n = len(pass_rates) if pass_rates is not None else count
    _check_budget(n, total, n_min, n_max)
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


def mixed_chance(n: int, p: float) -> float:
    """P(a group of n at pass rate p is neither all right nor all wrong)."""
    return 1.0 - p ** n - (1.0 - p) ** n


def allocate_for_signal(pass_rates: Sequence[float], total: int, n_min: int, n_max: int) -> list[int]:
    """Group sizes summing to `total`, each in [n_min, n_max], maximising the summed (1 - p) P(n, p)."""
    n = len(pass_rates)
    _check_budget(n, total, n_min, n_max)
    p = [min(max(float(x), 0.0), 1.0) for x in pass_rates]
    sizes = [n_min] * n

    def entry(i: int) -> tuple[float, int, int]:
        gain = (1.0 - p[i]) * (mixed_chance(sizes[i] + 1, p[i]) - mixed_chance(sizes[i], p[i]))
        return (-gain, sizes[i], i)

    heap = [entry(i) for i in range(n) if sizes[i] < n_max]
    heapq.heapify(heap)
    for _ in range(total - n * n_min):
        _, _, i = heapq.heappop(heap)
        sizes[i] += 1
        if sizes[i] < n_max:
            heapq.heappush(heap, entry(i))
    return sizes


def unhinted_budget(total: int, reserve: int, rescuing: bool, carried: int, cap: int | None = None) -> int:
    """A step's unhinted rollouts, so that a rescuing strategy samples as many rollouts as plain GRPO.

    `total` is plain GRPO's prompt_batch x group_size. On a step where rescues run, `reserve` of it is kept
    for them; on a step where they do not (the warm-up, the last part of training) nothing is kept. `carried`,
    what the previous step kept for rescues and did not spend, is added on top, so over the run every kept
    rollout is sampled: the run's total equals GRPO's less at most the last step's unspent reserve. `cap`, the
    most the step's groups can hold (prompt_batch x max_group), bounds the carry: what does not fit is dropped.
    """
    if not 0 <= carried <= reserve <= total:
        raise ValueError(f"need 0 <= carried ({carried}) <= reserve ({reserve}) <= total ({total})")
    base = total - (reserve if rescuing else 0)
    if cap is not None and cap < base:
        raise ValueError(f"cap ({cap}) is below the step's own budget ({base})")
    return base + carried if cap is None else min(base + carried, cap)
