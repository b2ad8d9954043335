"""Small typed records that cross actor boundaries. Images travel by reference (a row of the saved data set).

Token ids are plain lists: they pickle small and every role reads them the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class PromptRef:
    """One question to sample. Generators and the learner read its image and text from the saved data set."""

    qid: str
    row: int
    prefix: str = ""  # text that opens the assistant turn (an expert-trace hint); "" = none


@dataclass
class Rollout:
    """One sampled completion, with the sampler's own per-token log-probs and the weights it came from."""

    qid: str
    row: int
    sample: int  # index within its group
    prompt_ids: list[int]  # images expanded; ends where the model's turn (and any prefix) begins
    completion_ids: list[int]
    sampler_logprobs: list[float]
    text: str
    truncated: bool  # stopped by max_tokens, not by the end token
    weight_version: int
    prefix_len: int = 0  # completion tokens that were given (the hint), not sampled


@dataclass(frozen=True)
class MemberProcesses:
    """Where a pool member's engine runs, so what is left of it can be ended after its actor is killed: the
    node, the processes the actor started as (pid, start time) pairs (a pid alone may be reused), and the
    /dev/shm files they map."""

    node_id: str
    processes: tuple[tuple[int, int], ...]
    shm: tuple[str, ...]


@dataclass(frozen=True)
class GroupStats:
    qid: str
    rewards: tuple[float, ...]
    num_correct: int


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


@dataclass
class TrainSample:
    """One sequence for the learner: which completion tokens get the policy loss, which an SFT loss.

    Tokens [0, policy_from) of the completion are given text (an expert prefix or a whole expert trace): they get
    the NLL loss with weight `sft_weight` and are excluded from the policy ratio. Tokens from `policy_from` on
    were sampled and get the clipped policy loss with `advantage`.
    """

    row: int
    prompt_ids: list[int]
    completion_ids: list[int]
    sampler_logprobs: list[float]  # aligned with completion_ids; NaN where a token was not sampled
    advantage: float = 0.0
    policy_from: int = 0
    sft_weight: float = 0.0
    old_logprobs: list[float] | None = None  # the learner's own, before this step's first update

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)

    def loss_tokens(self, pad_id: int) -> int:
        """Completion tokens that carry a loss: the learner masks pad-id tokens out."""
        return sum(t != pad_id for t in self.completion_ids)


def nan_list(n: int) -> list[float]:
    return [math.nan] * n


@dataclass
class StepStats:
    """What one RL step reports; `timings` splits its wall time by role."""

    step: int
    weight_version: int
    reward_mean: float
    pass_rate: float
    response_tokens_mean: float
    clip_ratio: float  # share of completions cut at max_tokens
    num_rollouts: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    learner: dict[str, float] = field(default_factory=dict)
    pass_rate_by_level: dict[int, float] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)  # dropped prompts, timeouts, lost rollouts ...
    sync_logprob_gap: float | None = None
    staleness: float = 0.0  # mean weight versions between a rollout's sampler and the learner that trained on it


@dataclass(frozen=True)
class PreparedRun:
    """What `pipeline.prepare` made: where the run's model and data sets are, and what the loader skipped."""

    run_dir: Path
    model_path: str
    num_parameters: int
    train_path: Path
    eval_path: Path
    val_path: Path | None  # checkpoint selection; None when the source has no validation split
    train_steps: dict[int, int]  # design difficulty (reasoning steps) -> item count
    eval_steps: dict[int, int]
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> ids of rows the loader skipped
    seconds: float = 0.0
