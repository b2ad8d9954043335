"""Rule-based rewards for the paper's prompt: reason in <think> </think>, put the final answer in \\boxed{}.

reward = accuracy_weight * correct + format_weight * formatted (0.9 / 0.1 in the paper).
- Answer: the content of the LAST \\boxed{...} (nested braces handled; `\\boxed 5` also accepted). A \\boxed{ whose
  braces never close (a truncated response) gives None: an unfinished answer earns nothing.
- Correctness: math_verify equivalence of the boxed answer and the gold (so 1/2 == 0.5 == \\frac{1}{2}), with a
  normalised string comparison as fallback; multiple choice compares option letters (extract_choice).
- Format: exactly one <think>...</think> block at the start, non-empty, followed by a \\boxed{} answer.
Left out: length penalties, partial credit, LLM judges. Timeouts: math_verify enforces its own with
signal.alarm, which only works in the main thread; elsewhere we switch it off, and the caller (the verifier
worker) must bound the time itself. In the main thread math_verify owns SIGALRM while it runs, so a caller's own
time limit should not be built on signal.alarm.
"""

from __future__ import annotations

import re
import string
import threading
from dataclasses import dataclass
from typing import Sequence

MATH_VERIFY_TIMEOUT_S = 5
_BOXED = "\\boxed"


def extract_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} in `text` (or the token after `\\boxed `), stripped; None if absent."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    rest = text[start + len(_BOXED):]
    if rest.startswith("{"):
        return _balanced_content(rest)
    match = re.match(r"\s+([^\s$]+)", rest)  # "\boxed 5": one token, up to whitespace or a closing $
    return match.group(1) if match else None


def _balanced_content(s: str) -> str | None:
    """Text inside the brace group that opens at s[0]; None if it never closes."""
    depth = 0
    for i, ch in enumerate(s):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return s[1:i].strip()
    return None


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


def _normalise(s: str) -> str:
    """Loose string form for the fallback comparison: no $, \\text{}, \\left/\\right, spaces, trailing dot, case."""
    s = _strip_text(s.strip().strip("$").strip())
    s = s.replace("\\left", "").replace("\\right", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\s+", "", s).rstrip(".")
    return s.lower()


def _math_verify_timeout() -> int | None:
    # math_verify's timeouts use signal.alarm, which raises outside the main thread (thread pools, threaded
    # actors); there we disable them and rely on the caller's own time limit.
    return MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def answers_match(pred: str | None, gold: str) -> bool:
    """True when `pred` and `gold` are the same answer: math_verify equivalence, else normalised string equality."""
    if pred is None or not pred.strip():
        return False
    from math_verify import parse, verify  # imports sympy (~1 s); only workers that grade pay for it

    timeout = _math_verify_timeout()
    try:
        gold_parsed = parse(_boxed(gold), parsing_timeout=timeout)
        pred_parsed = parse(_boxed(pred), parsing_timeout=timeout)
        if gold_parsed and pred_parsed and verify(gold_parsed, pred_parsed, timeout_seconds=timeout):
            return True
    except Exception:  # a grader crash must not kill a rollout; fall back to strings
        pass
    return _normalise(pred) == _normalise(gold)


def _boxed(answer: str) -> str:
    # math_verify extracts answers from LaTeX and \boxed{} is its highest-priority anchor, so wrap bare answers.
    return "\\boxed{" + answer.strip().strip("$") + "}"


def _letters(choices: Sequence[str]) -> str:
    return string.ascii_uppercase[: len(choices)] if choices else string.ascii_uppercase


def _as_letter(s: str, letters: str) -> str | None:
    """The option letter in forms like B, (B), B., \\text{B} or (B) 12; None unless it is a valid letter."""
    match = re.match(r"^\(?([A-Z])\)?(?:[.:)\s]|$)", _strip_text(s).strip())
    return match.group(1) if match and match.group(1) in letters else None


def _strip_text(s: str) -> str:
    return re.sub(r"\\(?:text|textbf|mathrm)\{([^{}]*)\}", r"\1", s)


def _choice_letter_of(s: str, choices: Sequence[str]) -> str | None:
    """Letter of the option whose text equals `s` (normalised)."""
    norm = _normalise(s)
    for letter, choice in zip(string.ascii_uppercase, choices):
        if _normalise(choice) == norm:
            return letter
    return None


def extract_choice(text: str, choices: Sequence[str] = ()) -> str | None:
    """Option letter picked in `text`: a boxed letter, a boxed option text, or the last "answer is (B)".

    Letters run A, B, C, ... over `choices`; with no choices any capital letter counts.
    """
    letters = _letters(choices)
    boxed = extract_boxed(text)
    if boxed:
        picked = _as_letter(boxed, letters) or _choice_letter_of(boxed, choices)
        if picked:
            return picked
    phrases = re.findall(r"(?i:answer)\s*(?:(?i:is)\s*)?[:\s]*\(?([A-Z])\)?(?![A-Za-z])", text)
    phrases = [letter for letter in phrases if letter in letters]
    return phrases[-1] if phrases else None


def _gold_letter(gold: str, choices: Sequence[str]) -> str:
    # Only a short gold ("B", "(B)", "B.") is read as a letter, so an option text like "A cat" is not taken for A.
    letter = _as_letter(gold, _letters(choices)) if len(gold.strip()) <= 3 else None
    letter = letter or _choice_letter_of(gold, choices)
    if letter is None:
        raise ValueError(f"gold answer {gold!r} is neither an option letter nor one of the choices {list(choices)}")
    return letter


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
        correct = extracted is not None and extracted == _gold_letter(gold, choices)
    else:
        extracted = extract_boxed(text)
        correct = answers_match(extracted, gold)
    reward = compose_reward(correct, formatted, accuracy_weight, format_weight)
    return Score(reward=reward, correct=correct, formatted=formatted, extracted=extracted)
