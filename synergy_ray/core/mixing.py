"""The data-mixing rule (the paper's combination by data): the RL model's correct answers are kept as SFT
targets, one row per distinct answer; a question it never solves gets its long-CoT trace instead."""

from __future__ import annotations


def mix_rows(rows: list[dict], samples: list[list[str]], correct: list[list[bool]]) -> tuple[list[dict], dict]:
    """The SFT mix: one row per distinct correct sample, or the long-CoT trace when none was correct."""
    out, stats = [], {"questions": len(rows), "solved": 0, "correct_answers": 0, "long_cot_added": 0}
    for row, texts, oks in zip(rows, samples, correct):
        kept = list(dict.fromkeys(t for t, ok in zip(texts, oks) if ok))
        if kept:
            stats["solved"] += 1
            stats["correct_answers"] += len(kept)
            out += [{**row, "mix_response": t} for t in kept]
        elif row.get("long_cot"):
            stats["long_cot_added"] += 1
            out.append({**row, "mix_response": row["long_cot"]})
    return out, stats
