"""`adaptive` (ours): RL that reaches the questions plain GRPO gets no signal from, without training on traces.

Three components, each a pure decision in `core/` and each switchable for its ablation (`AdaptiveStrategy`):
1. **Rescue** (`rescue`, `core.rescue`). A question whose unhinted group failed entirely gets an extra hinted
   subgroup of `rescue_size` rollouts. The hint is the shortest rung of its ladder, cut from a solution in the
   model's own answer format (`hint_column`; never containing the final answer), and it climbs a rung within
   the step while the subgroup fails entirely. Hinted rollouts get advantages within their own subgroup,
   and no loss on the hint tokens unless `hint_loss_weight` > 0. Only unhinted outcomes count toward a
   question's difficulty. A question's rung falls after a subgroup that solved half or more, and its hints
   are gone after its first unhinted success. No rescues during the first `rescue_after` steps or after
   `rescue_until` of the run.
2. **Budget** (`budget`, `core.allocation`). At an equal number of rollouts per step, questions that are
   reliably solved get `min_group` samples and hard ones up to `max_group`: by default each rollout goes where
   it most raises the chance of a mixed group (`budget_rule: signal`), or shares follow 1 - p (`need`, the
   first rule). Each group's baseline is taken over all of its samples. On a step where rescues run they may
   spend `rescue_budget` of its rollouts and the unhinted groups share the rest; what they leave unspent goes
   to the next step's unhinted groups, and steps without rescues (warm-up, the end) keep nothing back
   (`core.allocation.unhinted_budget`), so a run samples as many rollouts as plain GRPO's.
3. **Curriculum** (`curriculum`, `core.curriculum`). Draws are weighted toward informative questions, those
   near p = 0.5 where GRPO's reward variance is largest, rather than toward the hardest ones (`(1-p)^focus`).
   The same floor applies.
Budget and curriculum read each question's pass rate. With `pooled_prior` a question seen rarely or never
starts from its level's current pass rate rather than 0.5 (`PooledPassRateTable`): in 100 steps of 16 draws
over the demo's 5,000 questions, most questions are drawn at most once.
"""

from __future__ import annotations

from synergy_ray.config import AdaptiveStrategy
from synergy_ray.core.rescue import HintLevels, hint_ladder, rescue_open
from synergy_ray.strategies.base import GroupOutcome, Strategy, grpo_samples
from synergy_ray.strategies.phases import GRPO


class Adaptive(Strategy):
    name = "adaptive"

    def __init__(self, section: AdaptiveStrategy):
        super().__init__(section)
        self.phases = (GRPO(makes=self.name),)
        self.levels = HintLevels()
        self._ladders: dict[str, list[str]] = {}
        self.rescue_size = section.rescue_size if section.rescue else 0
        self.rescue_budget = section.rescue_budget if section.rescue else 0
        self.hint_column = section.hint_column if section.rescue else None
        self.kept = 0  # rollouts the drawn step keeps for its rescues
        self.carried = 0  # what the last step's rescues kept and did not spend: the next draw's to add

    @classmethod
    def fitted_to(cls, cfg) -> dict:
        """Rescues keep an eighth of the step's rollouts (whole subgroups; none on a run too small for one), and
        the smallest group fits what is left; on the demo these are the section's defaults."""
        b, g, size = cfg.rl.prompt_batch, cfg.rollout.group_size, AdaptiveStrategy().rescue_size
        budget = (b * g // 8) // size * size
        return {"rescue_budget": budget, "min_group": max(2, min(AdaptiveStrategy().min_group, (b * g - budget) // b))}

    def difficulty_table(self, bucket_of: dict[str, int]):
        if not self.section.pooled_prior:
            return None
        from synergy_ray.core.curriculum import PooledPassRateTable  # defers numpy

        return PooledPassRateTable(bucket_of, strength=self.section.prior_strength)

    def sampling_weights(self, pass_rates, curriculum):
        if self.section.curriculum == "hardness":
            return super().sampling_weights(pass_rates, curriculum)
        from synergy_ray.core.curriculum import informative_weights  # defers numpy

        return informative_weights(pass_rates, curriculum.floor)

    def group_sizes(self, pass_rates: list[float], group_size: int, step: int, steps: int) -> list[int]:
        from synergy_ray.core.allocation import allocate_for_signal, allocate_group_sizes, unhinted_budget

        s = self.section
        rescuing = bool(self.rescue_budget) and rescue_open(step, steps, s.rescue_after, s.rescue_until)
        b = len(pass_rates)
        cap = b * s.max_group if s.budget else None
        total = unhinted_budget(b * group_size, self.rescue_budget, rescuing, self.carried, cap)
        self.kept, self.carried = (self.rescue_budget if rescuing else 0), 0
        if not s.budget:
            return allocate_group_sizes(None, total, 2, total, count=b)
        rule = allocate_for_signal if s.budget_rule == "signal" else allocate_group_sizes
        return rule(pass_rates, total, s.min_group, s.max_group)

    def _ladder(self, qid: str, solution: str, answer: str) -> list[str]:
        if qid not in self._ladders:
            self._ladders[qid] = hint_ladder(solution, answer, self.section.hint_levels)
        return self._ladders[qid]

    def rescue_hint(self, qid: str, solution: str, answer: str, step: int, steps: int) -> str:
        s = self.section
        if not s.rescue or not rescue_open(step, steps, s.rescue_after, s.rescue_until):
            return ""
        ladder = self._ladder(qid, solution, answer)
        level = self.levels.current(qid, len(ladder))
        return "" if level is None else ladder[level]

    def rescued(self, qid: str, solution: str, answer: str, num_correct: int, num_samples: int) -> bool:
        return self.levels.after_hinted(qid, num_correct, num_samples, len(self._ladder(qid, solution, answer)))

    def rescues_spent(self, rollouts: int) -> None:
        self.carried = max(0, self.kept - rollouts)
        self.kept = 0

    def observed(self, qid: str, num_correct: int, num_samples: int) -> None:
        self.levels.after_unhinted(qid, num_correct)

    def samples(self, group: GroupOutcome, advantages: list[float], step: int):
        return grpo_samples(group, advantages, sft_weight=self.section.hint_loss_weight)

    def state_dict(self) -> dict:
        return {"hint_levels": self.levels.state_dict(), "carried_rollouts": self.carried}

    def load_state_dict(self, state: dict) -> None:
        self.levels.load_state_dict(state.get("hint_levels", {}))
        self.carried = int(state.get("carried_rollouts", 0))
