"""The interface every strategy implements; the coordinator and the pipeline consult it, nothing else does.

A strategy is one module of this package (a `Strategy` subclass, registered by its `name`) plus its section
of the config (`config.py`, tagged by the same name). It answers:
- `phases`: which phases a run is made of, in order (`phases.py`: long-CoT SFT, GRPO, or its own);
- `builds_on`: which other strategies' finished models `compare` lets it start from;
- `fitted_to`: which of its fields `compare` fits to the run (a schedule as long as the RL stage, say);
- `difficulty_table`, `sampling_weights`: how pass rates are estimated, and the draw probabilities from them;
- `group_sizes`: how many rollouts each drawn question gets (the step's total stays prompt_batch x group_size);
- `hint_fraction`: how much of a question's expert trace to put at the start of the assistant turn now;
- `shape_rewards`: adjust a group's rewards before advantages (e.g. a length penalty on easy questions);
- `samples`: which loss each of a group's sequences gets (GRPO on sampled tokens, SFT on given ones);
- rescues, for questions whose unhinted group failed entirely: `rescue_size` (0 = none), `rescue_budget`,
  `hint_column`, `rescue_hint`, `rescued` and `observed` (see `adaptive`);
- `state_dict` / `load_state_dict`: what it learns during the run, saved with each RL checkpoint.
The default is plain GRPO: the `curriculum` section's weights, `rollout.group_size` samples per question, no
hints, rewards as scored, every rollout gets the policy loss.
"""

from __future__ import annotations

from typing import Any, ClassVar

from synergy_ray.records import GroupOutcome, TrainSample
from synergy_ray.strategies.phases import GRPO, Phase


def grpo_samples(group: GroupOutcome, advantages: list[float], sft_weight: float = 0.0) -> list[TrainSample]:
    """Every rollout with the policy loss on the tokens it sampled; a hint prefix (if any) gets `sft_weight`."""
    return [
        TrainSample(row=r.row, prompt_ids=r.prompt_ids, completion_ids=r.completion_ids,
                    sampler_logprobs=r.sampler_logprobs, advantage=a, policy_from=r.prefix_len,
                    sft_weight=sft_weight)
        for r, a in zip(group.rollouts, advantages)
    ]


def expert_sample(group: GroupOutcome, weight: float) -> TrainSample | None:
    """The expert trace as one SFT-only sequence (no token gets the policy loss)."""
    if not group.expert_ids or not group.rollouts:
        return None
    n = len(group.expert_ids)
    return TrainSample(row=group.row, prompt_ids=group.rollouts[0].prompt_ids, completion_ids=list(group.expert_ids),
                       sampler_logprobs=[float("nan")] * n, advantage=0.0, policy_from=n, sft_weight=weight)


class Strategy:
    name: ClassVar[str] = "rl"
    builds_on: ClassVar[tuple[str, ...]] = ()
    registry: ClassVar[dict[str, type[Strategy]]] = {}  # name -> class, filled as the modules are imported

    def __init__(self, section: Any = None):
        self.section = section  # this strategy's config section (`cfg.strategy`)
        self.phases: tuple[Phase, ...] = (GRPO(),)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Strategy.registry[cls.name] = cls

    @classmethod
    def fitted_to(cls, cfg) -> dict[str, Any]:
        """Fields of this strategy's section that `compare` sets from the run's other settings."""
        return {}

    def sampling_weights(self, pass_rates: list[float], curriculum) -> Any:
        """Draw probabilities (numpy, summing to 1) from the questions' pass rates: `curriculum_weights`."""
        from synergy_ray.core.curriculum import curriculum_weights  # defers numpy

        return curriculum_weights(pass_rates, curriculum.focus, curriculum.floor)

    def difficulty_table(self, bucket_of: dict[str, int]) -> Any:
        """The pass-rate table the curriculum keeps (`core.curriculum`); None = the plain per-question one.
        `bucket_of`: each question's level (or design steps)."""
        return None

    def group_sizes(self, pass_rates: list[float], group_size: int, step: int, steps: int) -> list[int]:
        """Unhinted rollouts per drawn question (pass rates in draw order) for `step` (0-based) of `steps`;
        plain GRPO: len x group_size."""
        return [group_size] * len(pass_rates)

    def hint_fraction(self, qid: str, step: int, pass_rate: float) -> float:
        return 0.0

    # Rescues: for a question whose unhinted group failed entirely, the coordinator samples `rescue_size`
    # more rollouts after `rescue_hint(...)`, within `rescue_budget` rollouts per step, and reports each
    # subgroup's outcome to `rescued`, which says whether to try again (a longer hint) within the step, and
    # the step's total to `rescues_spent`.
    rescue_size: int = 0
    rescue_budget: int = 0
    hint_column: str | None = None  # the training set's column the hints are cut from

    def rescue_hint(self, qid: str, solution: str, answer: str, step: int, steps: int) -> str:
        return ""

    def rescued(self, qid: str, solution: str, answer: str, num_correct: int, num_samples: int) -> bool:
        return False

    def rescues_spent(self, rollouts: int) -> None:
        """How many hinted rollouts the step's rescues sampled (called after every step's rescues)."""

    def observed(self, qid: str, num_correct: int, num_samples: int) -> None:
        """A question's unhinted group was scored (the only outcomes that count as its difficulty)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def shape_rewards(self, group: GroupOutcome) -> list[float]:
        return list(group.rewards)

    def samples(self, group: GroupOutcome, advantages: list[float], step: int) -> list[TrainSample]:
        return grpo_samples(group, advantages)
