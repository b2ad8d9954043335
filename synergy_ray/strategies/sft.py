"""`sft`: long-CoT SFT from the base model as a Ray Train job; no RL phase."""

from synergy_ray.strategies.base import Strategy
from synergy_ray.strategies.phases import LongCotSFT


class SFT(Strategy):
    name = "sft"

    def __init__(self, section=None):
        super().__init__(section)
        self.phases = (LongCotSFT(),)
