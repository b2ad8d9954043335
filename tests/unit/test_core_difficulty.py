import math

import numpy as np
import pytest

from synergy_ray.core.difficulty import assign_level, level_from_pass_rate

# The paper's table: L1 12-16, L2 8-11, L3 5-7, L4 2-4, L5 0-1 correct out of 16
PAPER_TABLE = {**{k: 5 for k in (0, 1)}, **{k: 4 for k in (2, 3, 4)}, **{k: 3 for k in (5, 6, 7)},
               **{k: 2 for k in (8, 9, 10, 11)}, **{k: 1 for k in (12, 13, 14, 15, 16)}}


@pytest.mark.parametrize("num_correct", range(17))
def test_every_count_of_16_matches_the_paper(num_correct):
    assert assign_level(num_correct) == PAPER_TABLE[num_correct]


@pytest.mark.parametrize(
    "below, above, level_below, level_above", [(1, 2, 5, 4), (4, 5, 4, 3), (7, 8, 3, 2), (11, 12, 2, 1)]
)
def test_each_boundary(below, above, level_below, level_above):
    assert (assign_level(below, 16), assign_level(above, 16)) == (level_below, level_above)


@pytest.mark.parametrize(
    "num_correct, num_samples, level",
    [(0, 8, 5), (1, 8, 4), (2, 8, 4), (3, 8, 3), (4, 8, 2), (5, 8, 2), (6, 8, 1), (8, 8, 1),
     (1, 32, 5), (3, 32, 5), (4, 32, 4), (10, 32, 3), (24, 32, 1), (23, 32, 2)],
)
def test_other_sample_counts_use_the_pass_rate(num_correct, num_samples, level):
    # thresholds as fractions of 16: 1/8 = 2/16 -> L4, 3/8 >= 5/16 -> L3, 3/32 < 2/16 -> L5, 23/32 < 12/16 -> L2
    assert assign_level(num_correct, num_samples) == level


def test_pass_rate_thresholds_are_inclusive():
    assert level_from_pass_rate(5 / 16) == 3
    assert level_from_pass_rate(math.nextafter(5 / 16, 0)) == 4
    assert level_from_pass_rate(0.75) == 1
    assert level_from_pass_rate(0.0) == 5


def test_numpy_integers_are_accepted():
    assert assign_level(np.int64(12), np.int64(16)) == 1


@pytest.mark.parametrize("args", [(17, 16), (-1, 16), (1, 0), (1.5, 16), (True, 16), (2, 16.0)])
def test_invalid_counts(args):
    with pytest.raises(ValueError):
        assign_level(*args)


@pytest.mark.parametrize("rate", [-0.1, 1.1, float("nan")])
def test_invalid_pass_rates(rate):
    with pytest.raises(ValueError, match="pass_rate must be in"):
        level_from_pass_rate(rate)
