"""`merge`: SFT and RL checkpoints (both trained from the base) merged with mergekit (linear, TIES, SLERP) at
an SFT weight, or swept over several weights, each merge evaluated. See `synergy_ray.run.merging`."""

from __future__ import annotations

from dataclasses import dataclass

from synergy_ray.config import MergeStrategy
from synergy_ray.run import stages
from synergy_ray.strategies.base import Strategy
from synergy_ray.strategies.phases import GRPO, LongCotSFT, Made, Phase


class Merge(Strategy):
    name = "merge"
    builds_on = ("sft", "rl")

    def __init__(self, section: MergeStrategy):
        super().__init__(section)
        weights = tuple(section.sweep) if section.sweep else (section.sft_weight,)
        self.phases = (LongCotSFT(), GRPO(), MergeCheckpoints(method=section.method, weights=weights))


@dataclass(frozen=True, kw_only=True)
class MergeCheckpoints(Phase):
    method: str = "linear"
    weights: tuple[float, ...] = (0.25,)
    name: str = "merge"
    makes: str = "merge"

    def title(self, cfg) -> str:
        return f"merge SFT and RL checkpoints ({self.method}, SFT weights {list(self.weights)})"

    def run(self, cfg, prepared, models, strategy) -> Made:
        return [(f"merge_{self.method}_{w:g}",
                 stages.merge(prepared, models["sft"], models["rl"], models["base"], self.method, w))
                for w in self.weights]
