import threading

import pytest

from synergy_ray.core.rewards import (
    Score,
    answers_match,
    compose_reward,
    extract_boxed,
    extract_choice,
    format_ok,
    score_completion,
)


def test_extract_boxed_takes_the_last_and_handles_nested_braces():
    text = r"first \boxed{\frac{1}{2}}, on reflection \boxed{\frac{\sqrt{3}}{2}}."
    assert extract_boxed(text) == r"\frac{\sqrt{3}}{2}"


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\boxed{ 42 }", "42"),
        (r"so $\boxed 7$", "7"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"no answer here", None),
        (r"\boxed{3} then cut off \boxed{\frac{1", None),  # the last box never closes
    ],
)
def test_extract_boxed_cases(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    "pred, gold",
    [("0.5", "1/2"), (r"\frac{1}{2}", "0.5"), (r"\dfrac12", "1/2"), (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}"),
     ("12", "12.0"), (r"\text{red}", "Red"), ("$1/2$", r"\frac{1}{2}")],
)
def test_equivalent_answers_match(pred, gold):
    assert answers_match(pred, gold)


@pytest.mark.parametrize("pred, gold", [("2", "3"), ("(1,2)", "(2,1)"), (None, "1"), ("  ", "1"), ("A", "B")])
def test_different_answers_do_not_match(pred, gold):
    assert not answers_match(pred, gold)


def test_answers_match_works_outside_the_main_thread():
    # math_verify's signal-based timeout raises off the main thread; we must switch it off there
    results = []
    worker = threading.Thread(target=lambda: results.append(answers_match("0.5", "1/2")))
    worker.start()
    worker.join()
    assert results == [True]


@pytest.mark.parametrize(
    "text, ok",
    [
        (r"<think>2 + 2 = 4</think> The answer is \boxed{4}.", True),
        ("\n <think>\nreason\n</think>\n\\boxed{x}\n", True),
        (r"2 + 2 = 4. \boxed{4}", False),  # no think block
        (r"<think>so \boxed{4}</think> done", False),  # answer only inside the think block
        (r"<think>   </think> \boxed{4}", False),  # empty reasoning
        (r"<think>a</think><think>b</think> \boxed{4}", False),  # two think blocks
        (r"Sure! <think>a</think> \boxed{4}", False),  # text before the think block
        (r"<think>a</think> \boxed{}", False),  # empty answer
        (r"<think>a \boxed{4}", False),  # never closed
    ],
)
def test_format_ok(text, ok):
    assert format_ok(text) is ok


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\boxed{B}", "B"),
        (r"\boxed{(C)}", "C"),
        (r"\boxed{\text{A}}", "A"),
        (r"\boxed{D. 9}", "D"),
        (r"\boxed{7}", "C"),  # the option's text
        ("<think>hmm</think> I think the answer is (B).", "B"),  # no box: the text after </think>
        ("<think>hmm</think> Answer: A. Wait, no: the answer is D", "D"),  # the last statement counts
        ("I think the answer is (B).", None),  # no box and no </think>: nothing marks a final answer
        (r"\boxed{E}", None),  # only four options
        ("no idea", None),
    ],
)
def test_extract_choice(text, expected):
    assert extract_choice(text, ["3", "5", "7", "9"]) == expected


def test_an_option_text_starting_with_a_capital_is_not_a_letter():
    score = score_completion("<think>w</think> \\boxed{A dog}", "B", ["A cat", "A dog"])
    assert (score.correct, score.extracted) == (True, "B")
    assert score_completion("<think>w</think> \\boxed{A cat}", "A dog", ["A cat", "A dog"]).extracted == "A"


def test_letters_in_the_reasoning_never_count():
    text = "<think>Is the answer (C)? No, let me recompute.</think> \\boxed{7}"
    score = score_completion(text, "C", ["3", "4", "5", "6"])
    assert (score.correct, score.extracted) == (False, None)  # 7 is no option
    assert extract_choice("<think>The answer is B.</think> \\boxed{6}", ["3", "4", "5", "6"]) == "D"
    assert extract_choice("<think>The answer is B.</think> I am not sure.", ["3", "4", "5", "6"]) is None
    assert extract_choice("<think>maybe \\boxed{B}</think> no box here", ["3", "4", "5", "6"]) is None


def test_an_option_matches_by_value():
    assert score_completion("<think>w</think> \\boxed{\\frac{1}{2}}", "A", ["1/2", "1/3"]).correct
    assert score_completion("<think>w</think> \\boxed{0.5}", "1/2", ["1/2", "1/3"]).correct  # gold as text
    assert extract_choice("<think>w</think> \\boxed{0.5}", ["1/2", "50\\%"]) is None  # equal to both options


def test_a_letter_contradicted_by_its_text_picks_nothing():
    assert extract_choice("<think>w</think> \\boxed{D. 7}", ["3", "5", "7", "9"]) is None
    assert extract_choice("<think>w</think> \\boxed{C. 7}", ["3", "5", "7", "9"]) == "C"
    assert extract_choice("<think>w</think> \\boxed{C 7}", ["3", "5", "7", "9"]) == "C"


@pytest.mark.parametrize("pred", [r"1\,000", r"1\ 000", "1~000", r"1\;000", r"1\!000", r"1{,}000", "1,000"])
def test_latex_spacing_inside_numbers_is_ignored(pred):
    assert answers_match(pred, "1000")
    assert score_completion(f"<think>w</think> \\boxed{{{pred}}}", "1000").correct


def test_compose_reward_is_point_nine_plus_point_one():
    assert compose_reward(True, True) == pytest.approx(1.0)
    assert compose_reward(True, False) == pytest.approx(0.9)
    assert compose_reward(False, True) == pytest.approx(0.1)
    assert compose_reward(False, False) == 0.0
    assert compose_reward(True, True, accuracy_weight=1.0, format_weight=0.0) == 1.0


def test_score_free_form_answer():
    score = score_completion(r"<think>half of one</think> \boxed{\frac{1}{2}}", gold="0.5")
    assert score == Score(reward=pytest.approx(1.0), correct=True, formatted=True, extracted=r"\frac{1}{2}")
    unformatted = score_completion(r"\boxed{0.5}", gold="1/2")
    assert (unformatted.reward, unformatted.correct, unformatted.formatted) == (pytest.approx(0.9), True, False)
    wrong = score_completion(r"<think>hmm</think> \boxed{3}", gold="2")
    assert (wrong.reward, wrong.correct, wrong.extracted) == (pytest.approx(0.1), False, "3")


def test_score_multiple_choice_with_letter_or_text_gold():
    text = r"<think>the third</think> \boxed{C}"
    assert score_completion(text, gold="C", choices=["3", "5", "7"]).correct
    assert score_completion(text, gold="7", choices=["3", "5", "7"]).correct
    miss = score_completion(text, gold="(A)", choices=["3", "5", "7"])
    assert (miss.correct, miss.extracted, miss.reward) == (False, "C", pytest.approx(0.1))
    with pytest.raises(ValueError, match="neither an option letter"):
        score_completion(text, gold="11", choices=["3", "5", "7"])
