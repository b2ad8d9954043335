"""`interleaved`: inside RL, a question whose whole group failed gets the SFT loss on its long-CoT trace;
every other question gets the GRPO loss; both in the same learner step (the paper's definition).

The all-failed group's own rollouts carry zero advantage under GRPO anyway, so they are replaced by the
expert sequence rather than kept beside it.
"""

from synergy_ray.config import InterleavedStrategy
from synergy_ray.strategies.base import GroupOutcome, Strategy, expert_sample, grpo_samples
from synergy_ray.strategies.phases import GRPO


class Interleaved(Strategy):
    name = "interleaved"

    def __init__(self, section: InterleavedStrategy):
        super().__init__(section)
        self.phases = (GRPO(makes=self.name),)

    def samples(self, group: GroupOutcome, advantages: list[float], step: int):
        if group.all_failed:
            expert = expert_sample(group, self.section.sft_weight)
            if expert is not None:
                return [expert]
        return grpo_samples(group, advantages)
