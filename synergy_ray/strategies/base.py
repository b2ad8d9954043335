"""The interface every strategy implements; the coordinator and the pipeline consult it, nothing else does.

A strategy answers four questions:
- `phases`: which stages a run is made of, in order (e.g. ("sft", "rl") for two-stage);
- `hint_fraction`: how much of a question's expert trace to put at the start of the assistant turn now;
- `shape_rewards`: adjust a group's rewards before advantages (e.g. a length penalty on easy questions);
- `samples`: which loss each of a group's sequences gets (GRPO on sampled tokens, SFT on given ones).
The default is plain GRPO: no hints, rewards as scored, every rollout gets the policy loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from synergy_ray.records import Rollout, TrainSample


@dataclass(frozen=True)
class GroupOutcome:
    """One question's group after scoring, as a strategy sees it."""

    qid: str
    row: int
    rollouts: list[Rollout]
    rewards: list[float]
    correct: list[bool]
    pass_rate: float  # the curriculum table's estimate before this group
    expert_ids: list[int]  # the question's long-CoT trace as token ids (with the end token); [] if none

    @property
    def all_failed(self) -> bool:
        return not any(self.correct)


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
    name = "rl"
    phases: tuple[str, ...] = ("rl",)

    def hint_fraction(self, qid: str, step: int, pass_rate: float) -> float:
        return 0.0

    def shape_rewards(self, group: GroupOutcome) -> list[float]:
        return list(group.rewards)

    def samples(self, group: GroupOutcome, advantages: list[float], step: int) -> list[TrainSample]:
        return grpo_samples(group, advantages)
