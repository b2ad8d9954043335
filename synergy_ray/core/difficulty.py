"""The paper's difficulty levels, from how many of 16 base-model samples answer a question correctly.

| level | correct of 16 |   L1: 12-16   L2: 8-11   L3: 5-7   L4: 2-4   L5: 0-1
For 16 samples `assign_level` reproduces the table exactly. For another sample count k we use the pass rate
p = correct / k against the same thresholds as fractions of 16 (p >= 12/16 -> L1, >= 8/16 -> L2, >= 5/16 -> L3,
>= 2/16 -> L4, else L5); the paper only defines k = 16, so this extension is our choice. The thresholds are exact
binary fractions and float division is correctly rounded, so a pass rate that equals a threshold compares exactly.
"""

from __future__ import annotations

from numbers import Integral

PAPER_NUM_SAMPLES = 16
# (level, minimum correct out of 16), hardest last
_MIN_CORRECT_OF_16 = ((1, 12), (2, 8), (3, 5), (4, 2), (5, 0))
NUM_LEVELS = len(_MIN_CORRECT_OF_16)
LEVELS = tuple(range(1, NUM_LEVELS + 1))  # L1 (easiest) .. L5


def level_from_pass_rate(pass_rate: float) -> int:
    """Level 1 (easiest) to 5 (hardest) for a pass rate in [0, 1]."""
    if not (0.0 <= pass_rate <= 1.0):  # also rejects NaN
        raise ValueError(f"pass_rate must be in [0, 1], got {pass_rate}")
    for level, min_correct in _MIN_CORRECT_OF_16:
        if pass_rate >= min_correct / PAPER_NUM_SAMPLES:
            return level
    raise AssertionError("unreachable: the last threshold is 0")


def assign_level(num_correct: int, num_samples: int = PAPER_NUM_SAMPLES) -> int:
    """Level of a question answered correctly `num_correct` times out of `num_samples`."""
    if not _is_int(num_samples) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    if not _is_int(num_correct) or not 0 <= num_correct <= num_samples:
        raise ValueError(f"num_correct must be an integer in [0, {num_samples}], got {num_correct!r}")
    return level_from_pass_rate(num_correct / num_samples)


def _is_int(x) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)  # numpy ints count, True/False do not
