"""Rescue decisions (core.rescue): the hint ladder never holds the answer, escalation and fading, the window."""

import random

import pytest

from synergy_ray.core.rescue import HintLevels, hint_ladder, rescue_open
from synergy_ray.data.synthetic import LEVELS, make_item


def test_the_ladder_of_a_sum_gives_operands_then_all_digits_never_the_total():
    assert hint_ladder("<think>3+5+7=15</think>\\boxed{15}", "15") == [
        "<think>3+", "<think>3+5+", "<think>3+5+7="]


def test_the_ladder_of_a_product_stops_before_the_answer_and_spreads_over_its_cuts():
    ladder = hint_ladder("<think>(3+4)*(5+6)=7*11=77</think>\\boxed{77}", "77", max_levels=4)
    assert ladder == ["<think>(3+4)*", "<think>(3+4)*(5+", "<think>(3+4)*(5+6)=7*", "<think>(3+4)*(5+6)=7*11="]
    assert hint_ladder("<think>(3+4)*(5+6)=7*11=77</think>\\boxed{77}", "77", max_levels=1) == [ladder[-1]]


def test_an_operand_equal_to_the_answer_ends_the_ladder_before_it():
    # 0+5=5: the answer's first appearance is the operand 5, so no rung shows it
    assert hint_ladder("<think>0+5=5</think>\\boxed{5}", "5") == ["<think>0+"]
    assert hint_ladder("<think>red=7</think>\\boxed{7}", "7") == ["<think>red="]  # a one-step item: nothing to give
    # a digit inside a longer number is not the answer: "1" does not end the ladder at "12" or "15"
    assert hint_ladder("<think>12+3=15</think>\\boxed{1}", "1") == ["<think>12+", "<think>12+3="]


def test_no_rung_of_any_demo_item_contains_its_final_answer():
    for level in LEVELS:
        for index in range(200):
            item = make_item(random.Random(f"t:{level}:{index}"), level, index)
            ladder = hint_ladder(item["short_solution"], item["answer"])
            answer = item["answer"]
            for rung in ladder:
                numbers = "".join(c if c.isdigit() else " " for c in rung).split()
                assert answer not in numbers, (item["short_solution"], rung)
                assert "\\boxed" not in rung and item["short_solution"].startswith(rung)
            assert ladder == sorted(ladder, key=len) and len(set(ladder)) == len(ladder)


def test_a_level_climbs_within_the_step_while_the_subgroup_fails_and_falls_when_it_gives_too_much():
    h = HintLevels()
    assert h.current("q", 3) == 0
    assert h.after_hinted("q", 0, 4, 3) is True and h.current("q", 3) == 1  # all failed: try the next rung
    assert h.after_hinted("q", 0, 4, 3) is True and h.current("q", 3) == 2
    assert h.after_hinted("q", 0, 4, 3) is False and h.current("q", 3) == 2  # top rung: nothing left this step
    assert h.after_hinted("q", 1, 4, 3) is False and h.current("q", 3) == 2  # mixed, under half: kept
    assert h.after_hinted("q", 2, 4, 3) is False and h.current("q", 3) == 1  # half solved: a shorter hint next
    assert h.after_hinted("q", 4, 4, 3) is False and h.current("q", 3) == 0
    assert h.after_hinted("q", 4, 4, 3) is False and h.current("q", 3) == 0  # never below the first rung


def test_hints_are_gone_after_the_first_unhinted_success_and_state_round_trips():
    h = HintLevels()
    h.after_hinted("q", 0, 4, 3)
    h.after_unhinted("q", 0)
    assert h.current("q", 3) == 1  # an unhinted failure changes nothing
    h.after_unhinted("q", 1)
    assert h.current("q", 3) is None and h.after_hinted("q", 0, 4, 3) is False
    assert HintLevels().current("other", 0) is None  # no ladder: no hint
    h.after_hinted("p", 0, 4, 3)
    restored = HintLevels()
    restored.load_state_dict(h.state_dict())
    assert restored.current("p", 3) == 1 and restored.current("q", 3) is None


def test_rescues_run_after_the_warm_up_and_stop_before_the_end():
    assert [rescue_open(s, 10, after=2, until=0.8) for s in range(10)] == [
        False, False, True, True, True, True, True, True, False, False]


def test_a_ladder_needs_a_level():
    with pytest.raises(ValueError):
        hint_ladder("1+2=3", "3", max_levels=0)
