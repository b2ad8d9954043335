"""`trace_hint`: the first rule of our `adaptive` strategy, kept as an ablation of the redesign (`adaptive.py`).

It steers RL toward hard questions and guides each one with its long-CoT trace while it needs it. The rule, per question q with pass-rate estimate p(q) from the curriculum table:
1. Sampling: the curriculum weights favour low p(q) (`curriculum.focus`), with a floor so easy questions are
   still seen (the paper's ablation: dropping always-solved questions hurt).
2. Guidance: if p(q) < `hint_below`, the assistant turn opens with a prefix of q's expert trace of length
   (1 - p(q) / hint_below) of the trace: the whole trace (less its end) for a never-solved question, shrinking
   per question as it becomes solvable and gone once p(q) reaches `hint_below`. Hint tokens get the SFT loss
   with weight `hint_weight`, the continuation the GRPO loss. Unlike `progressive`, the hint follows each
   question's own progress, not a global clock.
3. Easy questions get pure RL; with `length_penalty` > 0, a correct answer to a question with
   p(q) >= `easy_above` loses `length_penalty` times its length relative to the group's longest, which keeps
   easy answers short (SFT's failure mode on easy questions is bloat).

Why it did not beat plain GRPO on the demo (benchmarks/results/compare_demo_cpu, issue 17): a never-solved
question gets the whole trace, so all its hinted rollouts come out correct with advantage 0 and the only signal
left is the SFT loss on the trace, which pulls easy answers toward the trace style; the hinted success is
written into the pass-rate table, so the question toggles between the whole trace and none; and the trace is
not in the model's own answer format.
"""

from synergy_ray.config import TraceHintStrategy
from synergy_ray.core.schedules import trace_hint_fraction
from synergy_ray.strategies.base import GroupOutcome, Strategy, grpo_samples
from synergy_ray.strategies.phases import GRPO


class TraceHint(Strategy):
    name = "trace_hint"

    def __init__(self, section: TraceHintStrategy):
        super().__init__(section)
        self.phases = (GRPO(makes=self.name),)

    def hint_fraction(self, qid: str, step: int, pass_rate: float) -> float:
        return trace_hint_fraction(pass_rate, self.section.hint_below)

    def shape_rewards(self, group: GroupOutcome) -> list[float]:
        penalty = self.section.length_penalty
        if penalty <= 0 or group.pass_rate < self.section.easy_above:
            return list(group.rewards)
        longest = max((len(r.completion_ids) for r in group.rollouts), default=1) or 1
        return [rw - penalty * len(r.completion_ids) / longest if ok else rw
                for r, rw, ok in zip(group.rollouts, group.rewards, group.correct)]

    def samples(self, group: GroupOutcome, advantages: list[float], step: int):
        return grpo_samples(group, advantages, sft_weight=self.section.hint_weight)
