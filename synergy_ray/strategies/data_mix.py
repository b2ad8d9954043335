"""`data_mix`: the RL model samples k answers per training question; its correct answers are kept as SFT
targets; for questions it never solves, the long-CoT trace is added instead; then SFT from the base on the mix
(a Ray Train job). The paper's 230k correct + long-CoT for the unsolved; here the same rule on the demo data.
"""

from synergy_ray.strategies.base import Strategy


class DataMix(Strategy):
    name = "data_mix"
    phases = ("rl", "data_mix")

    def __init__(self, samples_per_question: int, epochs: int):
        self.samples_per_question, self.epochs = samples_per_question, epochs


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
