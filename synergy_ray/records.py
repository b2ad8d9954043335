"""Small typed records that cross actor boundaries. Images travel by reference (a row of the saved data set).

Token ids are plain lists: they pickle small and every role reads them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class PromptRef:
    """One question to sample. Generators and the learner read its image and text from the saved data set."""

    qid: str
    row: int
    prefix: str = ""  # text that opens the assistant turn (a hint); "" = none
    n: int = 0  # completions to sample for it; 0 = the call's default (`rollout.group_size` in the loop)


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
class GenerateResult:
    """A generator's answer to one `generate` call."""

    rollouts: list[Rollout]
    dropped_too_long: list[str] = field(default_factory=list)  # qids
    seconds: float = 0.0
    generated_tokens: int = 0
    placeholders_replaced: int = 0  # generated image placeholder tokens turned into pad


@dataclass(frozen=True)
class ScoreRequest:
    """One completion for the verifiers."""

    key: str  # identifies the rollout, e.g. "qid/3"
    text: str  # the completion as the model saw it (a pre-filled <think> prepended)
    gold: str
    choices: tuple[str, ...] = ()  # non-empty: multiple choice, `gold` is a letter or an option's text


@dataclass(frozen=True)
class ScoreResult:
    key: str
    reward: float
    correct: bool
    formatted: bool
    extracted: str | None = None  # the boxed answer or the option letter
    timed_out: bool = False  # the check ran past the time limit: reward 0, the child was replaced
    error: str | None = None  # the check raised (e.g. a gold that is not an option) or the child died: reward 0


@dataclass
class TrainSample:
    """One sequence for the learner: which completion tokens get the policy loss, which an SFT loss.

    Tokens [0, policy_from) of the completion are given text (an expert prefix or a whole expert trace): they get
    the NLL loss with weight `sft_weight` and are excluded from the policy ratio; with weight 0 they are context
    only, in no loss and not counted by the token mean. Tokens from `policy_from` on were sampled and get the
    clipped policy loss with `advantage`.
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
        """Completion tokens that carry a loss: the learner masks pad-id tokens out, and given tokens of weight 0."""
        kept = self.completion_ids if self.sft_weight > 0 else self.completion_ids[self.policy_from:]
        return sum(t != pad_id for t in kept)


@dataclass
class RunCounters:
    """What an RL run counts, cumulative over the run (saved with each checkpoint, reported with each step)."""

    lost_rollouts: int = 0  # rollouts a failed member never returned (its prompts went to the others)
    generator_failures: int = 0  # members killed and replaced: dead actor or engine, or no answer in time
    dropped_too_long: int = 0  # prompts longer than data.max_prompt_tokens after image expansion
    verifier_timeouts: int = 0  # completions whose check ran past reward.timeout_s (reward 0)
    placeholders_replaced: int = 0  # generated image placeholder tokens turned into pad
    hinted_prompts: int = 0  # prompts sampled after a hint prefix (guided strategies, rescues included)
    rescue_rollouts: int = 0  # rollouts of hinted rescue subgroups (questions whose unhinted group all failed)
    rescued_groups: int = 0  # rescue subgroups with a mixed outcome (trained with their own baseline)
    rescue_escalations: int = 0  # rescue subgroups that failed entirely and moved to a longer hint in the step
    all_failed_groups: int = 0  # complete groups in which no completion was correct
    stale_dropped: int = 0  # async mode: rollouts older than rl.max_staleness versions

    def load(self, saved: dict[str, int]) -> None:
        """Take a checkpoint's counts (in place: the pool holds this object too). A counter the checkpoint
        lacks keeps its value; a name this version does not count is ignored."""
        for name, value in saved.items():
            if name in self.__dataclass_fields__:
                setattr(self, name, value)


@dataclass
class TrainTotals:
    """One optimiser step's loss statistics, summed over micro-batches and learner ranks (add them with +)."""

    loss: float = 0.0  # the mini-batch loss (each shard's share, so the sum is the whole)
    policy_tokens: float = 0.0  # tokens under the policy loss
    sft_tokens: float = 0.0  # given tokens under the NLL loss (expert traces, hint prefixes)
    kl_sum: float = 0.0  # KL(policy || ref) summed over policy tokens
    clipped_sum: float = 0.0  # policy tokens whose ratio was clipped
    grad_norm: float = 0.0  # before clipping; reported by rank 0 only, so the sum is the norm
    # Rank 0's wall and process CPU seconds inside the step (reported once, like grad_norm): against the
    # coordinator's `train` time they tell the trip to the learner from its work, and CPU / wall contention.
    worker_s: float = 0.0
    worker_cpu_s: float = 0.0

    def __add__(self, other: TrainTotals) -> TrainTotals:
        return TrainTotals(*(getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__))


@dataclass
class LearnerSummary:
    """The learner's part of a step: per-token means over the step's mini-batches, and their count."""

    loss: float = 0.0  # mean over mini-batches
    kl: float = 0.0  # per policy token
    clip_frac: float = 0.0  # share of policy tokens clipped
    updates: float = 0.0  # optimiser steps (mini-batches)
    sft_tokens: float = 0.0
    policy_tokens: float = 0.0
    grad_norm: float = 0.0  # mean over mini-batches
    worker_s: float = 0.0  # rank 0's seconds inside its train steps, summed over mini-batches
    worker_cpu_s: float = 0.0  # rank 0's process CPU seconds in them

    @classmethod
    def of(cls, steps: list[TrainTotals]) -> LearnerSummary:
        total = sum(steps, TrainTotals())
        n, n_pol = max(1, len(steps)), max(1.0, total.policy_tokens)
        return cls(loss=total.loss / n, kl=total.kl_sum / n_pol, clip_frac=total.clipped_sum / n_pol,
                   updates=float(len(steps)), sft_tokens=total.sft_tokens, policy_tokens=total.policy_tokens,
                   grad_norm=total.grad_norm / n, worker_s=total.worker_s, worker_cpu_s=total.worker_cpu_s)


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
    learner: LearnerSummary = field(default_factory=LearnerSummary)
    pass_rate_by_level: dict[int, float] = field(default_factory=dict)
    counters: RunCounters = field(default_factory=RunCounters)  # the run's so far
    sync_logprob_gap: float | None = None
    staleness: float = 0.0  # mean weight versions between a rollout's sampler and the learner that trained on it
    group_sizes: list[int] = field(default_factory=list)  # unhinted rollouts asked per drawn question, draw order
    hinted_rollouts: int = 0  # rescue rollouts sampled this step (not in num_rollouts or the means above)
    sampled_tokens: int = 0  # tokens the generators sampled this step, unhinted and rescue (hints not counted)
    response_lengths: list[int] = field(default_factory=list)  # completion tokens of each unhinted rollout


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
