"""Rollout allocation (core.allocation): the budget is spent exactly, within bounds, toward hard questions."""

import itertools

import pytest

from synergy_ray.core.allocation import allocate_group_sizes


def test_the_sizes_sum_to_the_budget_within_bounds_for_any_pass_rates():
    rates = [0.0, 0.02, 0.3, 0.5, 0.9, 1.0, 1.0, 0.7]
    for total, (lo, hi) in itertools.product(range(32, 129, 7), [(4, 16), (2, 32), (4, 4 + 12)]):
        if not len(rates) * lo <= total <= len(rates) * hi:
            continue
        sizes = allocate_group_sizes(rates, total, lo, hi)
        assert sum(sizes) == total and all(lo <= n <= hi for n in sizes), (total, sizes)


def test_solved_questions_get_the_minimum_and_unsolved_ones_the_most():
    sizes = allocate_group_sizes([1.0, 1.0, 0.0, 0.0, 0.5, 0.5], 48, 4, 16)
    assert sizes == [4, 4, 12, 12, 8, 8]  # the 24 over the minimum shared 1 : 1 : 0.5 : 0.5
    assert allocate_group_sizes([1.0, 0.0], 20, 4, 16) == [4, 16]


def test_what_a_cap_refuses_goes_to_the_others():
    # need 1 for the first, 0.1 for the rest: the first is capped at 16 and the rest share what is left
    sizes = allocate_group_sizes([0.0, 0.9, 0.9, 0.9], 40, 4, 16)
    assert sizes == [16, 8, 8, 8]


def test_equal_needs_or_no_rates_split_evenly_like_plain_grpo():
    assert allocate_group_sizes([0.3] * 16, 128, 4, 16) == [8] * 16
    assert allocate_group_sizes(None, 112, 2, 112, count=16) == [7] * 16
    assert allocate_group_sizes([1.0] * 4, 18, 2, 8) == [5, 5, 4, 4]  # all solved: even, remainder to the first


def test_an_impossible_budget_is_refused():
    with pytest.raises(ValueError, match="cannot go"):
        allocate_group_sizes([0.5] * 4, 100, 4, 16)
    with pytest.raises(ValueError):
        allocate_group_sizes([], 8, 2, 8)
