"""Multiple choice: which option a completion's final answer picks (MMMU, MMStar, parts of MathVista/MathVerse).

Only the final answer is read (`core.answers.final_answer`: the box after </think>, else the text after
</think>); a letter written in the reasoning never counts. The answer picks option L when, in this order:
1. it is the letter alone: `B`, `(B)`, `B.`, `\\text{B}`, `**B**`;
2. it equals an option's text, normalised (`A dog`, `C. elegans`): an option text that starts with a capital
   is not read as a letter;
3. it is the letter, a separator and either L's own text or no option's text: `(B) 12`, `B. 12`, `B: since x`.
   A letter followed by another option's text (`D. 7` when 7 is option C) contradicts itself and picks nothing;
4. it is the letter, a space and L's own text (`B 12`);
5. it is mathematically equivalent to exactly one option (`\\frac{1}{2}` for the option `1/2`; core.answers);
6. else the same rules read what follows the last "answer is" / "answer:" in it ("The answer is (B).").
Letters run A, B, C, ... over the options; with no options listed any capital letter counts (rules 1 and 3).
Left out: options named in words ("the second one"), answers that name several options.
"""

from __future__ import annotations

import re
import string
from typing import Sequence

from synergy_ray.core.answers import answers_match, final_answer, normalise, strip_text

_ALONE = re.compile(r"\(?([A-Z])\)?[.:]?")
_WITH_SEPARATOR = re.compile(r"(?:\(([A-Z])\)|([A-Z])[.:)])\s*(.+)", re.DOTALL)
_WITH_SPACE = re.compile(r"([A-Z])\s+(.+)", re.DOTALL)
_ANSWER_PHRASE = re.compile(r"\banswer\b(?:\s+is\b)?\s*:?\s*", re.IGNORECASE)


def option_letters(choices: Sequence[str]) -> str:
    return string.ascii_uppercase[: len(choices)] if choices else string.ascii_uppercase


def _clean(answer: str) -> str:
    """Without $...$, \\text{}, markdown bold and a trailing full stop."""
    s = strip_text(answer.strip().strip("$").strip())
    return s.replace("**", "").strip().rstrip(".").strip()


def _by_text(answer: str, choices: Sequence[str]) -> str | None:
    """Letter of the first option whose text equals `answer`, normalised."""
    norm = normalise(answer)
    return next((letter for letter, choice in zip(option_letters(choices), choices) if normalise(choice) == norm),
                None)


def _by_math(answer: str, choices: Sequence[str]) -> str | None:
    """Letter of the one option `answer` is mathematically equivalent to; None when none is, or several are."""
    matches = [letter for letter, choice in zip(option_letters(choices), choices) if answers_match(answer, choice)]
    return matches[0] if len(matches) == 1 else None


def _named(answer: str, choices: Sequence[str]) -> str | None:
    return _by_text(answer, choices) or _by_math(answer, choices)


def pick_option(answer: str | None, choices: Sequence[str] = ()) -> str | None:
    """The option letter `answer` (an answer alone, not a whole completion) picks by rules 1-5; None if none."""
    if answer is None or not answer.strip():
        return None
    s, letters = _clean(answer), option_letters(choices)
    alone = _ALONE.fullmatch(s)
    if alone and alone.group(1) in letters:
        return alone.group(1)
    by_text = _by_text(s, choices)  # before the letter forms: the option "C. elegans" is no letter C
    if by_text:
        return by_text
    separated = _WITH_SEPARATOR.fullmatch(s)
    if separated and (separated.group(1) or separated.group(2)) in letters:
        letter = separated.group(1) or separated.group(2)
        named = _named(separated.group(3), choices) if choices else None
        return letter if named in (None, letter) else None
    if not choices:
        return None
    spaced = _WITH_SPACE.fullmatch(s)
    if spaced and _named(spaced.group(2), choices) == spaced.group(1):
        return spaced.group(1)
    return _by_math(s, choices)


def extract_choice(text: str, choices: Sequence[str] = ()) -> str | None:
    """Option letter a whole completion picks: its final answer by rules 1-5, else after its last "answer is"."""
    answer = final_answer(text)
    if answer is None:
        return None
    picked = pick_option(answer, choices)
    if picked is None:
        phrases = list(_ANSWER_PHRASE.finditer(answer))
        if phrases:
            picked = pick_option(answer[phrases[-1].end():].split("\n", 1)[0], choices)
    return picked


def gold_letter(gold: str, choices: Sequence[str]) -> str:
    """The correct option's letter from a gold given as a letter ("B", "(B)"), an option's text or its value."""
    letter = pick_option(gold, choices)
    if letter is None:
        raise ValueError(f"gold answer {gold!r} is neither an option letter nor one of the choices {list(choices)}")
    return letter
