"""Offline-evaluation statistics: score k completions per question, then average by difficulty level.

Definitions (all "mean over questions", so every question weighs the same whatever its sample count):
- accuracy: mean over questions of num_correct / num_samples, i.e. pass@1 estimated from k samples. The paper
  reports the mean of 4 runs, which estimates the same quantity.
- mean tokens: mean over questions of the question's mean completion length in generated tokens.
- reasoning words: see `count_reasoning_words`; a level's rate is the mean over questions of the per-response rate.
- format rate: share of completions that pass `core.rewards.format_ok`.
Left out: pass@k for k > 1, confidence intervals, per-benchmark breakdowns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any, Iterable, Mapping, Sequence

from synergy_ray.core.rewards import score_completion

ALL = "all"  # the summary row over every question


@dataclass(frozen=True)
class Completion:
    """One sampled response: its text as scored, its length in generated tokens, and why generation stopped."""

    text: str
    num_tokens: int
    finish_reason: str | None = "stop"  # vLLM's: "stop" (end token or stop string) or "length" (hit max_tokens)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass(frozen=True)
class QuestionResult:
    id: str
    steps: int
    level: int | None  # stored with the data by `assign_levels_to_dataset`; None before levels are assigned
    answer: str
    num_correct: int
    num_samples: int
    mean_reward: float
    mean_tokens: float
    format_rate: float
    num_truncated: int
    reasoning_words: dict[str, int]  # total occurrences over all samples, per word
    example: str  # one completion kept for inspection: the first correct one, else the first
    token_counts: list[int] = field(default_factory=list)  # each sample's length; empty in reports written before

    @property
    def pass_rate(self) -> float:
        return self.num_correct / self.num_samples


@dataclass(frozen=True)
class LevelStats:
    n_questions: int
    accuracy: float
    mean_tokens: float
    reasoning_per_response: float  # all reasoning words together, occurrences per response
    reasoning_words: dict[str, float] = field(default_factory=dict)  # per word, occurrences per response
    format_rate: float = 0.0
    truncated_rate: float = 0.0


def count_reasoning_words(text: str, words: Sequence[str]) -> dict[str, int]:
    """Occurrences of each word in `text`: case-insensitive, any word that STARTS with it.

    "check" counts "Check", "checking" and "checked" but not "recheck"; "verify" counts "verifying" but not
    "verified" (the stem rule is a plain prefix, not a stemmer). Each occurrence counts, so "Wait, wait" is 2.
    """
    lowered = text.lower()
    return {w: len(re.findall(r"\b" + re.escape(w.lower()) + r"\w*", lowered)) for w in words}


def score_question(
    row: Mapping[str, Any],
    completions: Sequence[Completion],
    accuracy_weight: float = 0.9,
    format_weight: float = 0.1,
    reasoning_words: Sequence[str] = (),
) -> QuestionResult:
    """Score every completion of one question with the training reward and reduce them to a `QuestionResult`."""
    if not completions:
        raise ValueError(f"question {row['id']}: no completions to score")
    choices = list(row.get("choices") or [])
    scores = [score_completion(c.text, row["answer"], choices, accuracy_weight, format_weight) for c in completions]
    totals = {w: 0 for w in reasoning_words}
    for c in completions:
        for w, n in count_reasoning_words(c.text, reasoning_words).items():
            totals[w] += n
    correct = [c for c, s in zip(completions, scores) if s.correct]
    level = row.get("level")
    return QuestionResult(
        id=str(row["id"]),
        steps=int(row.get("steps") or 0),
        level=None if level is None else int(level),
        answer=str(row["answer"]),
        num_correct=len(correct),
        num_samples=len(completions),
        mean_reward=fmean(s.reward for s in scores),
        mean_tokens=fmean(c.num_tokens for c in completions),
        format_rate=fmean(float(s.formatted) for s in scores),
        num_truncated=sum(c.truncated for c in completions),
        reasoning_words=totals,
        example=(correct or completions)[0].text,
        token_counts=[c.num_tokens for c in completions],
    )


def score_questions(
    rows: Sequence[Mapping[str, Any]],
    completions: Sequence[Sequence[Completion]],
    accuracy_weight: float = 0.9,
    format_weight: float = 0.1,
    reasoning_words: Sequence[str] = (),
) -> list[QuestionResult]:
    """`score_question` for each row and its completions (same order, same length)."""
    if len(rows) != len(completions):
        raise ValueError(f"{len(rows)} questions but {len(completions)} completion lists")
    return [score_question(r, c, accuracy_weight, format_weight, reasoning_words) for r, c in zip(rows, completions)]


def level_stats(results: Sequence[QuestionResult]) -> LevelStats:
    """Means over questions (see the module docstring); every result must have the same reasoning-word keys."""
    if not results:
        raise ValueError("no questions to summarise")
    words = list(results[0].reasoning_words)
    per_word = {w: fmean(r.reasoning_words[w] / r.num_samples for r in results) for w in words}
    return LevelStats(
        n_questions=len(results),
        accuracy=fmean(r.pass_rate for r in results),
        mean_tokens=fmean(r.mean_tokens for r in results),
        reasoning_per_response=fmean(sum(r.reasoning_words.values()) / r.num_samples for r in results),
        reasoning_words=per_word,
        format_rate=fmean(r.format_rate for r in results),
        truncated_rate=fmean(r.num_truncated / r.num_samples for r in results),
    )


def summarize_by_level(results: Iterable[QuestionResult], key: str = "level") -> dict[int | str, LevelStats]:
    """`LevelStats` per value of `key` ("level" or "steps"), ascending, then an "all" row over every question.

    Questions whose `key` is None (no level assigned yet) appear only in the "all" row.
    """
    if key not in ("level", "steps"):
        raise ValueError(f"key must be 'level' or 'steps', got {key!r}")
    results = list(results)
    groups: dict[int, list[QuestionResult]] = {}
    for r in results:
        value = getattr(r, key)
        if value is not None:
            groups.setdefault(value, []).append(r)
    summary: dict[int | str, LevelStats] = {v: level_stats(groups[v]) for v in sorted(groups)}
    summary[ALL] = level_stats(results)
    return summary
