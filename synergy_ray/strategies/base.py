"""The interface every strategy implements; the coordinator and the pipeline consult it, nothing else does.

A strategy is one module of this package (a `Strategy` subclass, registered by its `name`) plus its section
of the config (`config.py`, tagged by the same name). It answers:
- `phases`: which phases a run is made of, in order (`phases.py`: long-CoT SFT, GRPO, or its own);
- `builds_on`: which other strategies' finished models `compare` lets it start from;
- `fitted_to`: which of its fields `compare` fits to the run (a schedule as long as the RL stage, say);
- `hint_fraction`: how much of a question's expert trace to put at the start of the assistant turn now;
- `shape_rewards`: adjust a group's rewards before advantages (e.g. a length penalty on easy questions);
- `samples`: which loss each of a group's sequences gets (GRPO on sampled tokens, SFT on given ones).
The default is plain GRPO: no hints, rewards as scored, every rollout gets the policy loss.
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

    def hint_fraction(self, qid: str, step: int, pass_rate: float) -> float:
        return 0.0

    def shape_rewards(self, group: GroupOutcome) -> list[float]:
        return list(group.rewards)

    def samples(self, group: GroupOutcome, advantages: list[float], step: int) -> list[TrainSample]:
        return grpo_samples(group, advantages)
