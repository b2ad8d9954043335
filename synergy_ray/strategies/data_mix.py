"""`data_mix`: the RL model samples k answers per training question; its correct answers are kept as SFT
targets; for questions it never solves, the long-CoT trace is added instead; then SFT from the base on the mix
(a Ray Train job). The paper's 230k correct + long-CoT for the unsolved; here the same rule on the demo data.
"""

from __future__ import annotations

from dataclasses import dataclass

from synergy_ray.config import DataMixStrategy
from synergy_ray.run import stages
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

    def run(self, cfg, prepared, models, strategy) -> Made:
        return [("data_mix", stages.data_mix(cfg, prepared, models["rl"], models["base"],
                                             self.samples_per_question, self.epochs))]
