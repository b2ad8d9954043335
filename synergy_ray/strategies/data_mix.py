"""`data_mix`: the RL model samples k answers per training question; its correct answers are kept as SFT
targets; for questions it never solves, the long-CoT trace is added instead; then SFT from the base on the mix
(a Ray Train job). The paper's 230k correct + long-CoT for the unsolved; here the same rule on the demo data.
"""

from __future__ import annotations

from dataclasses import dataclass

from synergy_ray.config import DataMixStrategy
from synergy_ray.strategies.base import Strategy
from synergy_ray.strategies.phases import GRPO, Made, Phase


class DataMix(Strategy):
    name = "data_mix"
    builds_on = ("rl",)

    def __init__(self, section: DataMixStrategy):
        super().__init__(section)
        self.phases = (GRPO(), SFTOnMix(samples_per_question=section.samples_per_question, epochs=section.epochs))


@dataclass(frozen=True, kw_only=True)
class SFTOnMix(Phase):
    samples_per_question: int = 8
    epochs: int = 2
    name: str = "data_mix"
    makes: str = "data_mix"
    sft_job: bool = True

    def title(self, cfg) -> str:
        return "data mixing: RL samples + long-CoT for unsolved questions, then SFT on the mix"

    def run(self, cfg, prepared, models) -> Made:
        from synergy_ray import stages

        return [("data_mix", stages.data_mix(cfg, prepared, models["rl"], models["base"],
                                             self.samples_per_question, self.epochs))]


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
