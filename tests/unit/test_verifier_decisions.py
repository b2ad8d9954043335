"""The verifier pool's one pure decision: how a batch is dealt to the actors and put back in order."""

import pytest

from synergy_ray.verifier import deal, undeal


def test_deal_is_round_robin_so_a_prompts_group_is_spread_over_the_actors():
    assert deal(["q/0", "q/1", "q/2", "q/3", "r/0", "r/1", "r/2"], 3) == [
        ["q/0", "q/3", "r/2"], ["q/1", "r/0"], ["q/2", "r/1"],
    ]


def test_more_actors_than_items_leaves_the_last_ones_idle():
    assert deal(["a", "b"], 4) == [["a"], ["b"], [], []]


@pytest.mark.parametrize("parts", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [0, 1, 2, 7, 10])
def test_undeal_restores_input_order(n, parts):
    items = [f"k/{i}" for i in range(n)]
    assert undeal(deal(items, parts)) == items
