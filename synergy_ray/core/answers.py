"""What a completion answered, and whether two answers are the same.

- `extract_boxed`: the content of the LAST \\boxed{...} (nested braces handled; `\\boxed 5` also accepted). A
  \\boxed{ whose braces never close (a truncated response) gives None: an unfinished answer earns nothing.
- `final_answer`: the answer part of a completion, leaving the reasoning out: the last box after the last
  </think>; with no box there, the text after </think>; with no </think> at all, the last box or None.
- `answers_match`: math_verify equivalence (so 1/2 == 0.5 == \\frac{1}{2}, 50\\% == 0.5, 12 \\text{cm} == 12), with a
  normalised string comparison as fallback. LaTeX spacing commands between digits (`1\\,000`, `1\\ 000`,
  `1~000`) are removed first, as a typesetter would render them: math_verify reads `1\\,000` as 1 * 000 = 0.
  A unicode degree sign is read as ^\\circ, and a trailing percent sign may be dropped on either side
  (12.5\\% == 12.5, as math_verify already does for integers: 50\\% == 50).
Timeouts: math_verify enforces its own with signal.alarm, which only works in the main thread; elsewhere we
switch it off, and the caller (the verifier worker) must bound the time itself. In the main thread math_verify
owns SIGALRM while it runs, so a caller's own time limit should not be built on signal.alarm.
"""

from __future__ import annotations

import re
import threading

MATH_VERIFY_TIMEOUT_S = 5
_BOXED = "\\boxed"
_THINK_END = "</think>"
# \, \! \; \: \> "\ " ~ and {,} between two digits: thin, negative, medium and normal spaces, a braced comma.
# Not \quad: a wide space between numbers separates them (1 \quad 2) rather than groups digits.
_DIGIT_SPACING = re.compile(r"(?<=\d)(?:\\[,!;:> ]|~|\{,\})\s*(?=\d)")
_PERCENT = re.compile(r"\s*\\?%\s*$")


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


def final_answer(text: str) -> str | None:
    """The answer part of `text`: nothing written inside <think> ... </think> counts.

    After the last </think>: its last box, else its whole text (None when empty). No </think>: the last box,
    or None (an unclosed or absent think block cannot be told apart from the answer).
    """
    _, closed, after = text.rpartition(_THINK_END)
    if not closed:
        return extract_boxed(text)
    if _BOXED in after:
        return extract_boxed(after)
    return after.strip() or None


def strip_text(s: str) -> str:
    """`\\text{red}` -> `red` (also \\textbf, \\mathrm), one level deep."""
    return re.sub(r"\\(?:text|textbf|mathrm)\{([^{}]*)\}", r"\1", s)


def join_digit_groups(s: str) -> str:
    """`1\\,000` -> `1000`: spacing commands between two digits are typesetting, not part of the number."""
    return _DIGIT_SPACING.sub("", s)


def normalise(s: str) -> str:
    """Loose string form for the fallback comparison: no $, \\text{}, \\left/\\right, spaces, trailing dot, case."""
    s = _latex(strip_text(s))
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
    if _same(pred, gold):
        return True
    bare_pred, bare_gold = (_PERCENT.sub("", s.strip().strip("$")) for s in (pred, gold))
    dropped = _PERCENT.search(pred.strip().strip("$")) or _PERCENT.search(gold.strip().strip("$"))
    return bool(dropped) and bool(bare_pred.strip()) and _same(bare_pred, bare_gold)


def _same(pred: str, gold: str) -> bool:
    from math_verify import parse, verify  # imports sympy (~1 s); only workers that grade pay for it

    timeout = _math_verify_timeout()
    try:
        gold_parsed = parse(_boxed(gold), parsing_timeout=timeout)
        pred_parsed = parse(_boxed(pred), parsing_timeout=timeout)
        if gold_parsed and pred_parsed and verify(gold_parsed, pred_parsed, timeout_seconds=timeout):
            return True
    except Exception:  # a grader crash must not kill a rollout; fall back to strings
        pass
    return normalise(pred) == normalise(gold)


def _latex(answer: str) -> str:
    """The answer as math_verify should read it: no $, digit groups joined, ° as ^\\circ."""
    return join_digit_groups(answer.strip().strip("$").strip()).replace("°", "^\\circ")


def _boxed(answer: str) -> str:
    # math_verify extracts answers from LaTeX and \boxed{} is its highest-priority anchor, so wrap bare answers.
    return "\\boxed{" + _latex(answer) + "}"
