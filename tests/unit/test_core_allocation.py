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


def test_signal_allocation_spends_the_budget_where_a_mixed_group_is_likeliest():
    from synergy_ray.core.allocation import allocate_for_signal, mixed_chance

    assert mixed_chance(4, 0.5) == pytest.approx(1 - 2 * 0.5 ** 4) and mixed_chance(8, 0.0) == 0.0
    sizes = allocate_for_signal([0.5, 0.05, 0.95, 0.5], 40, 4, 16)
    assert sizes == [9, 16, 6, 9]  # the nearly solved question gets the least, the hardest the most
    # greedy on a concave gain is optimal: no single move of one rollout raises the summed value
    rates = [0.5, 0.05, 0.95, 0.5]
    value = sum((1 - p) * mixed_chance(n, p) for n, p in zip(sizes, rates))
    for i, j in itertools.permutations(range(4), 2):
        moved = list(sizes)
        moved[i] -= 1
        moved[j] += 1
        if 4 <= moved[i] and moved[j] <= 16:
            assert sum((1 - p) * mixed_chance(n, p) for n, p in zip(moved, rates)) <= value + 1e-12
    assert allocate_for_signal([1.0, 0.0, 1.0], 15, 2, 8) == [5, 5, 5]  # no signal anywhere: even
    with pytest.raises(ValueError, match="cannot go"):
        allocate_for_signal([0.5] * 4, 100, 4, 16)
