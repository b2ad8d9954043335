"""How big the generator pool should be for the next step: the elastic-rollout decision, as plain functions.

The coordinator calls these between steps. The pool wants to grow when generation was the step's bottleneck
(its share of the step's wall time at or above `grow_share`) and to hand one member back when generation was
cheap (share below `shrink_share`); it always stays within [lo, hi]. Whether a wanted member actually starts
depends on free resources (`fits_one_more`, then a reservation that may still fail); a target the cluster
cannot meet stays the target, so members join when resources appear (a node added, a dead member's share
freed). Left out: predicting throughput per engine, and shrinking more than one member per step.
"""

from __future__ import annotations


def pool_target(target: int, lo: int, hi: int, generate_s: float | None, step_s: float | None,
                grow_share: float, shrink_share: float) -> int:
    """The pool size to aim for next, from the current aim and the last step's generation time.

    Without a measurement (before the first step) the aim is kept.
    """
    if generate_s is not None and step_s:
        share = generate_s / step_s
        if share >= grow_share:
            target = hi
        elif share < shrink_share:
            target -= 1
    return max(lo, min(hi, target))


def fits_one_more(available: dict[str, float], cpus: float, gpus: float) -> bool:
    """Whether the cluster's free resources (summed over nodes) could hold one more member.

    A necessary test only: the free CPUs/GPUs may be split across nodes; the reservation decides.
    """
    eps = 1e-9
    return available.get("CPU", 0.0) + eps >= cpus and available.get("GPU", 0.0) + eps >= gpus
