"""Answer-equivalence cases for the reward's grader, written by hand from math-verify's documentation (numbers,
fractions, expressions, sets, intervals, percentages, units in \\text{}) and from the answer formats of the five
benchmarks `data.benchmarks` loads:
- MathVista: free-form integers and decimals (the unit lives in a separate column, so "12 cm" answers a gold
  "12"); multiple choice with the option's *text* as gold.
- MathVision: letters with option texts that are often LaTeX ($\\frac{1}{2}$); free-form numbers, surds, tuples.
- MathVerse: free-form values and equations (y = 2x + 1, 60°); multiple choice with options inline and a letter.
- MMMU: a letter gold over prose options; a few open questions with numeric answers.
- MMStar: a letter gold; options inline ("A: x, B: y") or only in the image (choices A-D).

Each case is a whole completion graded by `score_completion` (free-form when `choices` is empty), so extraction
and equivalence are tested together; `pred` is wrapped as `<think>...</think> \\boxed{pred}` unless the case
gives the full `text`. Each case runs under CASE_LIMIT_S (pytest-timeout's thread method: math_verify owns
SIGALRM while it runs, so a signal-based limit would be cancelled by it) and also asserts its own wall time.

Ambiguous cases, where a reasonable grader could go either way, are kept and marked `ambiguous=<why>`; they
assert what our grader does today, so a change in that behaviour is a decision, not an accident:
- a rounded decimal against an exact irrational or fraction (3.14 vs \\pi, 0.333 vs 1/3): math_verify compares
  at float_rounding=6, so only answers that agree to ~6 digits match;
- the ordered pair (1, 2) against the open interval (1, 2): the same notation;
- a percentage against its fraction (50\\% vs 0.5) and against its number (50\\% vs 50): math_verify accepts both;
- x = 3 against 3: math_verify accepts an assignment for its value;
- a bare word against a number with a unit ("5 dollars" vs 5, no \\text{}): math_verify reads letters as symbols;
- degrees against radians (90^\\circ vs \\frac{\\pi}{2}): not converted;
- an interval against its inequality (x < 3 vs (-\\infty, 3)): equivalent one way round only (math_verify is not
  symmetric; the gold decides);
- a letter followed by another option's text (D. 7 when 7 is C): the answer contradicts itself, so no credit;
- an unboxed answer without a </think> ("The answer is B" with no think block): no final answer is marked off
  from reasoning, so nothing is graded;
- options whose texts are themselves letters in another order: the letter reading wins;
- a lower-case letter ("b") when the options are the letters themselves: it equals an option's text, so it counts;
- a box inside a think block that never closed (a truncated completion): the last box counts (no </think> to
  separate reasoning from answer; the format reward is lost anyway);
- a value equal to two options (0.5 against "1/2" and "50\\%"): nothing is picked.
"""

import time
from dataclasses import dataclass

import pytest

from synergy_ray.core.rewards import score_completion

CASE_LIMIT_S = 10


@dataclass(frozen=True)
class Case:
    pred: str | None  # the boxed answer (None when `text` is given)
    gold: str
    expected: bool
    choices: tuple[str, ...] = ()
    text: str | None = None  # a whole completion instead of `pred`
    ambiguous: str = ""  # why a reasonable grader could go either way; "" for a clear case

    def completion(self) -> str:
        return self.text if self.text is not None else f"<think>work</think> The answer is \\boxed{{{self.pred}}}."


ABCD = ("A", "B", "C", "D")  # MMStar / MathVerse when the options are only in the image

FREE_FORM = [
    # integers and decimals (MathVista, MMMU open questions)
    Case("42", "42", True), Case("42.0", "42", True), Case("042", "42", True), Case("41", "42", False),
    Case("-7", "-7", True), Case("7", "-7", False), Case("1.45", "1.45", True), Case("1.450", "1.45", True),
    Case("1.4", "1.45", False), Case("0.5", ".5", True), Case("3.0", "3", True),
    # thousands separators and LaTeX spacing inside numbers
    Case("1,000", "1000", True), Case("1{,}000", "1000", True), Case(r"1\,000", "1000", True),
    Case(r"1\ 000", "1000", True), Case("1~000", "1000", True), Case(r"1\;000", "1000", True),
    Case(r"1\!000", "1000", True), Case(r"12\,345\,678", "12345678", True), Case(r"1\,000", "100", False),
    Case(r"2\,5", "25", True), Case(r"3.141\,59", "3.14159", True),
    # fractions and decimals
    Case(r"\frac{1}{2}", "0.5", True), Case(r"\dfrac{1}{2}", "1/2", True), Case(r"\tfrac12", "0.5", True),
    Case("1/2", r"\frac{2}{4}", True), Case(r"\frac{3}{4}", "0.75", True), Case(r"\frac{3}{4}", "0.7", False),
    Case("0.3333333", "1/3", True), Case("-1/2", r"-\frac{1}{2}", True), Case(r"\frac{-1}{2}", "-0.5", True),
    Case("1/2", "2", False), Case("2/1", "2", True), Case("1:2", "1/2", True),
    Case("0.333", "1/3", False, ambiguous="rounded decimal vs exact fraction: math_verify rounds to 6 places"),
    Case("0.33", "1/3", False, ambiguous="rounded decimal vs exact fraction"),
    # surds, pi, powers, scientific notation (MathVision, MathVerse)
    Case(r"2\sqrt{2}", r"\sqrt{8}", True), Case(r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}", True),
    Case(r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt{2}}{2}", True), Case(r"\sqrt{3}", r"\sqrt{2}", False),
    Case(r"2\pi", r"2 \pi", True), Case(r"\pi/3", r"\frac{\pi}{3}", True), Case(r"\pi", "2\\pi", False),
    Case("10^3", "1000", True), Case(r"1.2\times10^{3}", "1200", True), Case("2^{10}", "1024", True),
    Case("3.14", r"\pi", False, ambiguous="a 2-decimal approximation of pi"),
    Case("3.14159265", r"\pi", True, ambiguous="an approximation good to 6 decimals counts"),
    Case(r"0.8660254", r"\frac{\sqrt{3}}{2}", True), Case("0.866", r"\frac{\sqrt{3}}{2}", False,
                                                          ambiguous="3-decimal approximation of a surd"),
    # expressions and equations (MathVerse)
    Case("x^2+2x+1", "(x+1)^2", True), Case("2x+1", "1+2x", True), Case("2x+1", "2x-1", False),
    Case("y=2x+1", "y=2x+1", True), Case("y = 1 + 2x", "y=2x+1", True), Case("y=2x-1", "y=2x+1", False),
    Case("x=3", "3", True, ambiguous="an assignment graded by its value"), Case("3", "x=3", True),
    Case(r"\sin^2 x + \cos^2 x", "1", True),
    # percentages (MathVista, MMMU)
    Case(r"50\%", "50", True, ambiguous="a percentage against its number"),
    Case(r"50\%", "0.5", True, ambiguous="a percentage against its fraction"),
    Case(r"12.5\%", "12.5", True), Case(r"25\%", "50", False), Case("0.1", r"10\%", True),
    # units (MathVista keeps the unit out of the gold)
    Case(r"12\text{ cm}", "12", True), Case(r"12 \mathrm{cm}", "12", True), Case(r"7 \text{cm}^2", "7", True),
    Case(r"2.5\text{ m/s}", "2.5", True), Case(r"\$5", "5", True), Case(r"5\text{ dollars}", "5", True),
    Case(r"13\text{ cm}", "12", False), Case("90^\\circ", "90", True), Case("60°", "60", True),
    Case("5 dollars", "5", False, ambiguous="unit without \\text{}: math_verify reads the word as symbols"),
    Case("90^\\circ", r"\frac{\pi}{2}", False, ambiguous="degrees are not converted to radians"),
    # tuples, sets, intervals (MathVision, MathVerse)
    Case("(1,2)", "(1,2)", True), Case("(2,1)", "(1,2)", False), Case(r"\{1,2\}", r"\{2,1\}", True),
    Case("[1,2)", "[1,2)", True), Case("[1,2)", "(1,2]", False), Case("(1,2]", "(1, 2]", True),
    Case(r"(-\infty, 3)", "x<3", True), Case(r"(0,\infty)", r"(0, +\infty)", True),
    Case("x<3", r"(-\infty,3)", False, ambiguous="inequality vs interval: math_verify is not symmetric"),
    Case("(1,2)", "(1, 2)", True, ambiguous="pair or open interval: the same notation either way"),
    # words (MathVista yes/no answers), and what does not count
    Case(r"\text{Yes}", "Yes", True), Case("yes", "Yes", True), Case("No", "Yes", False),
    Case(None, "5", False, text=r"<think>so 5</think> 5 is my answer"), Case("", "5", False),
    Case(None, "5", True, text=r"<think>so \boxed{5}", ambiguous="a box inside a think block that never closed"),
    Case(None, "3", False, text=r"\boxed{3} then cut off \boxed{\frac{1"),
]

MULTIPLE_CHOICE = [
    # letters in their common forms (MMMU, MMStar, MathVerse, MathVision)
    Case("B", "B", True, ABCD), Case("(B)", "B", True, ABCD), Case("B.", "B", True, ABCD),
    Case(r"\text{B}", "B", True, ABCD), Case(r"\textbf{B}", "(B)", True, ABCD), Case("C", "B", False, ABCD),
    Case("E", "B", False, ABCD),
    Case("b", "B", True, ABCD, ambiguous="a lower-case letter, read as the option text B (the options are letters)"),
    Case(None, "B", True, ABCD, text="<think>it is the second</think> **B**"),
    Case(None, "B", True, ABCD, text="<think>it is the second</think> The answer is (B)."),
    Case(None, "B", True, ABCD, text="<think>it is the second</think>\nAnswer: B\nBecause A is too small."),
    Case(None, "D", True, ABCD, text="<think>w</think> Answer: A. Wait, no: the answer is D"),
    # letters with option texts (MMMU prose options; MathVision LaTeX options)
    Case("(B) 12", "B", True, ("10", "12", "14", "16")), Case("B. 12", "B", True, ("10", "12", "14", "16")),
    Case("B: 12", "B", True, ("10", "12", "14", "16")), Case("B 12", "B", True, ("10", "12", "14", "16")),
    Case("12", "B", True, ("10", "12", "14", "16")), Case("14", "B", False, ("10", "12", "14", "16")),
    Case("B. because the angle is larger", "B", True, ("10", "12", "14", "16")),
    Case("D. 12", "B", False, ("10", "12", "14", "16"), ambiguous="letter D contradicted by B's text"),
    Case("D. 12", "D", False, ("10", "12", "14", "16"), ambiguous="letter D contradicted by B's text"),
    Case("A dog", "B", True, ("A cat", "A dog")), Case("A cat", "B", False, ("A cat", "A dog")),
    Case("a dog", "B", True, ("A cat", "A dog")), Case(r"\text{A dog}", "A dog", True, ("A cat", "A dog")),
    Case("C. elegans", "B", True, ("E. coli", "C. elegans", "S. cerevisiae")),
    Case("C. elegans", "C", False, ("E. coli", "C. elegans", "S. cerevisiae")),
    Case("C", "C", True, ("E. coli", "C. elegans", "S. cerevisiae")),
    Case("I", "C", False, ("I only", "II only", "I and II", "Neither")),
    Case("I and II", "C", True, ("I only", "II only", "I and II", "Neither")),
    Case("Neither", "D", True, ("I only", "II only", "I and II", "Neither")),
    Case("mitochondria", "A", True, ("Mitochondria", "Nucleus", "Ribosome", "Golgi apparatus")),
    Case("Golgi apparatus", "D", True, ("Mitochondria", "Nucleus", "Ribosome", "Golgi apparatus")),
    Case("Nucleus.", "B", True, ("Mitochondria", "Nucleus", "Ribosome", "Golgi apparatus")),
    # an option by its value (MathVision's LaTeX options, MathVista's numeric options)
    Case(r"\frac{1}{2}", "A", True, ("1/2", "1/3", "1/4")), Case("0.5", "A", True, ("1/2", "1/3", "1/4")),
    Case("0.25", "C", True, ("1/2", "1/3", "1/4")), Case("0.2", "C", False, ("1/2", "1/3", "1/4")),
    Case(r"2\sqrt{2}", "B", True, (r"$\sqrt{2}$", r"$\sqrt{8}$", "$3$")),
    Case(r"\frac{\pi}{3}", "C", True, ("30", "45", r"\pi/3", r"\pi/2")),
    Case(r"1\,000", "B", True, ("100", "1000", "10000")), Case("60^\\circ", "B", True, ("30°", "60°", "90°")),
    Case("45", "B", True, ("30°", "45°", "60°", "75°")),
    Case("0.5", "A", False, ("1/2", r"50\%"), ambiguous="equal to two options: nothing is picked"),
    # gold given as the option's text or value (MathVista)
    Case("B", "12", True, ("10", "12", "14")), Case("C", "12", False, ("10", "12", "14")),
    Case("B", "A dog", True, ("A cat", "A dog")), Case("A", "A dog", False, ("A cat", "A dog")),
    Case("A", "0.5", True, ("1/2", "1/3")),
    # letters in the reasoning never count
    Case(None, "C", False, ("3", "4", "5", "6"),
         text=r"<think>Is the answer (C)? No, let me recompute.</think> \boxed{7}"),
    Case(None, "C", True, ("3", "4", "5", "6"), text=r"<think>Is the answer (A)? No.</think> \boxed{5}"),
    Case(None, "B", False, ABCD, text=r"<think>the answer is B</think> I cannot tell."),
    Case(None, "B", False, ABCD, text=r"<think>maybe \boxed{B}</think> not sure"),
    Case(None, "B", False, ABCD, text="<think>the answer is B"),  # never closed: all of it is reasoning
    Case(None, "B", False, ABCD, text="I think the answer is B.",
         ambiguous="no box and no </think>: nothing marks a final answer, so nothing is graded"),
    Case("A", "A", True, ("B", "A"), ambiguous="option texts are letters in another order: the letter wins"),
]

CASES = FREE_FORM + MULTIPLE_CHOICE


def _id(case: Case) -> str:
    shown = case.pred if case.text is None else case.text
    return f"{shown!r}~{case.gold!r}{'[' + ','.join(case.choices) + ']' if case.choices else ''}"


def test_the_set_is_large_and_mixed():
    assert len(CASES) >= 100
    assert sum(c.expected for c in CASES) >= 40 and sum(not c.expected for c in CASES) >= 30
    assert sum(bool(c.ambiguous) for c in CASES) >= 10


@pytest.mark.timeout(CASE_LIMIT_S, method="thread")
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_answer_equivalence(case):
    start = time.perf_counter()
    correct = score_completion(case.completion(), case.gold, case.choices).correct
    assert time.perf_counter() - start < CASE_LIMIT_S
    assert correct is case.expected, case.ambiguous or "clear case"
