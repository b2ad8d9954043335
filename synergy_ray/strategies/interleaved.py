"""`interleaved`: inside RL, a question whose whole group failed gets the SFT loss on its long-CoT trace;
every other question gets the GRPO loss; both in the same learner step (the paper's definition).

The all-failed group's own rollouts carry zero advantage under GRPO anyway, so they are replaced by the
expert sequence rather than kept beside it.
"""

from synergy_ray.strategies.base import GroupOutcome, Strategy, expert_sample, grpo_samples


class Interleaved(Strategy):
    name = "interleaved"
    phases = ("rl",)

    def __init__(self, sft_weight: float):
        self.sft_weight = sft_weight

    def samples(self, group: GroupOutcome, advantages: list[float], step: int):
        if group.all_failed:
            expert = expert_sample(group, self.sft_weight)
            if expert is not None:
                return [expert]
        return grpo_samples(group, advantages)
