"""`progressive`: a question that has never been solved gets a prefix of its expert trace in the assistant
turn; the model continues it. The prefix shrinks from the whole trace to nothing over `schedule_steps` RL steps
(linear, cosine or step). Prefix tokens get the SFT loss (weight 0.2 by default) and stay out of the policy
ratio; the model's own continuation gets the GRPO loss.

"Never solved" is read from the curriculum table's pass-rate estimate: below `ZERO_PASS` counts as zero.
"""

from synergy_ray.core.schedules import prefix_fraction
from synergy_ray.strategies.base import GroupOutcome, Strategy, grpo_samples

ZERO_PASS = 0.05


class Progressive(Strategy):
    name = "progressive"
    phases = ("rl",)

    def __init__(self, prefix_weight: float, schedule: str, schedule_steps: int, num_stages: int):
        self.prefix_weight, self.schedule = prefix_weight, schedule
        self.schedule_steps, self.num_stages = schedule_steps, num_stages

    def hint_fraction(self, qid: str, step: int, pass_rate: float) -> float:
        if pass_rate >= ZERO_PASS:
            return 0.0
        return prefix_fraction(step, self.schedule_steps, self.schedule, self.num_stages)

    def samples(self, group: GroupOutcome, advantages: list[float], step: int):
        return grpo_samples(group, advantages, sft_weight=self.prefix_weight)
