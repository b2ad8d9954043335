"""Rescue for questions the policy never solves: minimal hints in the model's own format, as context only.

When a question's unhinted group fails entirely, GRPO gets nothing from it (every advantage is 0). A rescue
samples an extra hinted subgroup whose assistant turn opens with a prefix of a reference solution written the
way the model answers (for the demo, its short solution `<think>3+5+7=15</think>\\boxed{15}`), the shortest
prefix that gives a mixed outcome, so the subgroup has a baseline and a gradient of its own.

- `hint_ladder(solution, answer)`: the hint levels, shortest first. Each is the solution cut just after an
  operator or a clause end (`+ - * / = , ; .` or a newline), and every cut lies before the first place the final
  answer appears as a number of its own, before `</think>` and `\\boxed`: **no hint contains the final answer**. For
  `3+5+7=15`: `3+`, `3+5+`, `3+5+7=`. A one-step item (`red=7`) has only `red=`: a hint cannot help it, more
  samples can (`core.allocation`).
- `HintLevels`: each question's level on its ladder. It starts at the first rung, climbs one rung within the
  step while the hinted subgroup fails entirely (`escalate`), falls one rung after a subgroup that solved at
  least half (the hint gave too much), and is gone for good after the question's first unhinted success.
- `rescue_open(step, steps, after, until)`: rescues run after a warm-up and stop before the end of training, so
  the last part is plain RL on the test-time distribution.

Only unhinted outcomes update the difficulty table (the coordinator's `_route`); hinted subgroups get their
advantages within themselves and no loss on the hint tokens unless the strategy sets a weight.
"""

from __future__ import annotations

import re

CUT_AFTER = "+-*/=,;.\n"  # a hint may end just after one of these
END_MARKS = ("\\boxed", "</think>")  # no hint reaches the end of the reasoning or the boxed answer


def _first_answer_at(solution: str, answer: str) -> int:
    """Where the final answer first appears on its own (not inside a longer number), or len(solution)."""
    if not answer:
        return len(solution)
    numeric = re.fullmatch(r"-?\d+(\.\d+)?", answer) is not None
    pattern = (r"(?<![\d.])" + re.escape(answer) + r"(?![\d])") if numeric else re.escape(answer)
    found = re.search(pattern, solution)
    return found.start() if found else len(solution)


def hint_ladder(solution: str, answer: str, max_levels: int = 4) -> list[str]:
    """The hint prefixes of `solution`, shortest first, none containing `answer` (see the module docstring).

    With more cut points than `max_levels`, the rungs are spread evenly over them and the last rung (the most
    given) is always kept. [] when no cut point comes before the answer.
    """
    if max_levels < 1:
        raise ValueError(f"max_levels must be >= 1, got {max_levels}")
    ends = [i for i in (solution.find(mark) for mark in END_MARKS) if i >= 0]
    end = min([_first_answer_at(solution, answer), *ends])
    cuts = [i + 1 for i, ch in enumerate(solution[:end]) if ch in CUT_AFTER]
    if len(cuts) > max_levels:  # rung k of m ends at cut ceil(n (k + 1) / m): evenly spread, the last kept
        cuts = [cuts[-(-len(cuts) * (k + 1) // max_levels) - 1] for k in range(max_levels)]
    return [solution[:c] for c in cuts]


def rescue_open(step: int, steps: int, after: int, until: float) -> bool:
    """Whether rescues run at `step` (0-based) of `steps`: after `after` warm-up steps and before the last
    (1 - until) share of training."""
    return after <= step < until * steps


class HintLevels:
    """Each question's rung on its hint ladder (see the module docstring); JSON-serialisable state."""

    def __init__(self):
        self.level: dict[str, int] = {}  # question -> rung index (0 = the shortest hint)
        self.solved: set[str] = set()  # questions with an unhinted success: never hinted again

    def current(self, qid: str, rungs: int) -> int | None:
        """The rung to try for `qid` now, or None if it has been solved unhinted or has no ladder."""
        if qid in self.solved or rungs == 0:
            return None
        return min(self.level.get(qid, 0), rungs - 1)

    def after_unhinted(self, qid: str, num_correct: int) -> None:
        if num_correct > 0:
            self.solved.add(qid)
            self.level.pop(qid, None)

    def after_hinted(self, qid: str, num_correct: int, num_samples: int, rungs: int) -> bool:
        """Record a hinted subgroup's outcome; True when it failed entirely and a higher rung is left to try."""
        level = self.current(qid, rungs)
        if level is None:
            return False
        if num_correct == 0:
            self.level[qid] = min(level + 1, rungs - 1)
            return level + 1 < rungs
        if 2 * num_correct >= num_samples:
            self.level[qid] = max(level - 1, 0)
        else:
            self.level[qid] = level
        return False

    def state_dict(self) -> dict:
        return {"level": dict(self.level), "solved": sorted(self.solved)}

    def load_state_dict(self, state: dict) -> None:
        self.level = {q: int(v) for q, v in state.get("level", {}).items()}
        self.solved = set(state.get("solved", []))
