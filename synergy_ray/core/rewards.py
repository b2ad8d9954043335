"""Rule-based rewards for the paper's prompt: reason in <think> </think>, put the final answer in \\boxed{}.

reward = accuracy_weight * correct + format_weight * formatted (0.9 / 0.1 in the paper).
- Free-form answer: the content of the LAST \\boxed{...} (core.answers.extract_boxed), graded by math_verify
  equivalence with the gold (core.answers.answers_match: 1/2 == 0.5, 1\\,000 == 1000), strings as fallback.
- Multiple choice (`choices` given): the option the final answer picks, by letter, option text or value; the
  reasoning is never read (core.choices). The gold is a letter, an option's text or its value.
- Format: exactly one <think>...</think> block at the start, non-empty, followed by a \\boxed{} answer.
Left out: length penalties, partial credit, LLM judges. Timeouts: see core.answers (math_verify's own
signal.alarm in the main thread only; other threads must be bounded by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from synergy_ray.core.answers import MATH_VERIFY_TIMEOUT_S, answers_match, extract_boxed  # noqa: F401 (re-exported)
from synergy_ray.core.choices import extract_choice, gold_letter


def format_ok(text: str) -> bool:
    """True for `<think> reasoning </think> ... \\boxed{answer}`: one think block first, a boxed answer after it.

    Pass the text as the model saw it: if the chat template pre-fills `<think>`, prepend it to the completion.
    """
    body = text.strip()
    if not body.startswith("<think>") or body.count("<think>") != 1 or body.count("</think>") != 1:
        return False
    reasoning, _, after = body[len("<think>"):].partition("</think>")
    answer = extract_boxed(after)
    return bool(reasoning.strip()) and bool(answer)


def compose_reward(
    correct: bool, formatted: bool, accuracy_weight: float = 0.9, format_weight: float = 0.1
) -> float:
    """The paper's reward: 0.9 for a correct answer plus 0.1 for the right format."""
    return accuracy_weight * float(correct) + format_weight * float(formatted)


@dataclass(frozen=True)
class Score:
    reward: float
    correct: bool
    formatted: bool
    extracted: str | None  # the boxed answer, or the option letter for multiple choice


def score_completion(
    text: str,
    gold: str,
    choices: Sequence[str] = (),
    accuracy_weight: float = 0.9,
    format_weight: float = 0.1,
) -> Score:
    """Score one completion; with `choices` it is multiple choice and `gold` is a letter or an option's text."""
    formatted = format_ok(text)
    if choices:
        extracted = extract_choice(text, choices)
        correct = extracted is not None and extracted == gold_letter(gold, choices)
    else:
        extracted = extract_boxed(text)
        correct = answers_match(extracted, gold)
    reward = compose_reward(correct, formatted, accuracy_weight, format_weight)
    return Score(reward=reward, correct=correct, formatted=formatted, extracted=extracted)
