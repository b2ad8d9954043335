"""Micro-batch plans: shortest first, cut where the padding is least, the same count on every rank."""

import itertools

import pytest

from synergy_ray.core.microbatch import greedy_sizes, least_padding_sizes, length_order, padded_tokens, plan_ranks


def test_order_is_shortest_first_with_fillers_last():
    assert length_order([5, 1, 3, 9], fillers=1) == [1, 2, 0, 3]
    assert length_order([5, 1, 3], sort=False) == [0, 1, 2]


def test_greedy_cuts_by_rows_and_by_padded_tokens():
    assert greedy_sizes([1] * 10, max_rows=4) == [4, 4, 2]
    # budget 12: 4 rows of 3 fit (12), then rows of 5 fit two at a time, a row of 20 goes alone
    assert greedy_sizes([3, 3, 3, 3, 5, 5, 5, 20], max_rows=8, max_tokens=12) == [4, 2, 1, 1]
    with pytest.raises(ValueError):
        greedy_sizes([1], max_rows=0)


def test_least_padding_is_the_best_of_every_cut():
    """Checked against every way of cutting 9 rows into 3 micro-batches of at most 4 rows."""
    lengths = [2, 3, 3, 4, 7, 8, 8, 15, 40]
    got = least_padding_sizes(lengths, count=3, max_rows=4)
    assert sum(got) == 9 and max(got) <= 4 and len(got) == 3
    every = [s for s in itertools.product(range(1, 5), repeat=3) if sum(s) == 9]
    assert padded_tokens(lengths, got) == min(padded_tokens(lengths, s) for s in every)
    assert padded_tokens([2, 2, 9], [1, 2]) == 2 + 2 * 9  # rows x the longest in each
    with pytest.raises(ValueError, match="cannot cut"):
        least_padding_sizes(lengths, count=2, max_rows=4)


def test_every_rank_runs_as_many_micro_batches():
    """Rank 1's long rows need two micro-batches under the budget (2+30 fit in 64, 31+29 do too, 30+31 not):
    rank 0, which fits in one, is cut into two as well."""
    plans = plan_ranks([[10, 2, 3, 4], [30, 31, 2, 29]], fillers=[0, 1], max_rows=4, max_tokens=64)
    (order0, sizes0), (order1, sizes1) = plans
    assert order0 == [1, 2, 3, 0] and order1 == [2, 0, 1, 3]  # rank 1's filler (the last row) stays last
    assert sizes1 == [2, 2] and len(sizes0) == 2 and sum(sizes0) == sum(sizes1) == 4
    # [1, 3] would pad less (95 tokens against 122) but puts 3 x 31 = 93 tokens in one micro-batch, over budget
    assert least_padding_sizes([2, 30, 31, 29], 2, max_rows=4) == [1, 3]
    assert plan_ranks([[5, 5, 5]], [0], max_rows=2, max_tokens=None) == [([0, 1, 2], [2, 1])]
