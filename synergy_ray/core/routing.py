"""How a step's scored rollouts become trained groups: plain functions of lists, no Ray, no model.

- `question_groups`: the rollouts of each question, in the order the questions first appear (the coordinator
  sorts rollouts by draw order, so each group is one contiguous block).
- `trained_advantages`: a complete group's advantages from its (strategy-shaped) rewards (`core.advantages`),
  with `rollout.truncated: drop` giving a completion cut at max_tokens advantage 0 (it teaches nothing either
  way). An incomplete group (a member lost its work) is not trained: it has no fair baseline.
- `pass_rate_by_bucket`: the share of correct rollouts per difficulty bucket (level or reasoning steps).
"""

from __future__ import annotations

from typing import Sequence

import torch

from synergy_ray.core.advantages import compute_advantages


def question_groups(qids: Sequence[str]) -> dict[str, list[int]]:
    """Indices of each question's rollouts, questions in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(qids):
        groups.setdefault(q, []).append(i)
    return groups


def trained_advantages(shaped: Sequence[float], truncated: Sequence[bool], group_size: int, estimator: str,
                       drop_truncated: bool) -> list[float] | None:
    """One group's advantages, or None when the group is incomplete (fewer than `group_size` rollouts)."""
    if len(shaped) != group_size:
        return None
    adv = compute_advantages(torch.tensor(list(shaped)), group_size, estimator).tolist()
    return [0.0 if cut else a for cut, a in zip(truncated, adv)] if drop_truncated else adv


def pass_rate_by_bucket(buckets: Sequence[int], correct: Sequence[bool]) -> dict[int, float]:
    """Bucket -> share correct, buckets ascending; only buckets that have rollouts."""
    seen: dict[int, list[bool]] = {}
    for b, ok in zip(buckets, correct):
        seen.setdefault(int(b), []).append(bool(ok))
    return {b: sum(v) / len(v) for b, v in sorted(seen.items())}
