"""`progressive`: a question that has never been solved gets a prefix of its expert trace in the assistant
turn; the model continues it. The prefix shrinks from the whole trace to nothing over `schedule_steps` RL steps
(linear, cosine or step). Prefix tokens get the SFT loss (weight 0.2 by default) and stay out of the policy
ratio; the model's own continuation gets the GRPO loss.

"Never solved" is read from the curriculum table's pass-rate estimate: below `ZERO_PASS` counts as zero.
"""

from synergy_ray.config import ProgressiveStrategy
from synergy_ray.core.schedules import prefix_fraction
from synergy_ray.strategies.base import GroupOutcome, Strategy, grpo_samples
from synergy_ray.strategies.phases import GRPO

ZERO_PASS = 0.05


class Progressive(Strategy):
    name = "progressive"

    def __init__(self, section: ProgressiveStrategy):
        super().__init__(section)
        self.phases = (GRPO(makes=self.name),)

    @classmethod
    def fitted_to(cls, cfg) -> dict:
        return {"schedule_steps": cfg.rl.steps}  # the prefix is gone by the end of the RL stage

    def hint_fraction(self, qid: str, step: int, pass_rate: float) -> float:
        if pass_rate >= ZERO_PASS:
            return 0.0
        s = self.section
        return prefix_fraction(step, s.schedule_steps, s.schedule, s.num_stages)

    def samples(self, group: GroupOutcome, advantages: list[float], step: int):
        return grpo_samples(group, advantages, sft_weight=self.section.prefix_weight)
