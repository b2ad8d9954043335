"""Each strategy's decisions on fake rollouts: who gets which loss, how long the hint is, when phases switch."""

import math

import pytest

from synergy_ray.config import (InterleavedStrategy, MergeStrategy, ProgressiveStrategy, TraceHintStrategy,
                                TwoStageStrategy)
from synergy_ray.records import Rollout
from synergy_ray.strategies.base import GroupOutcome, Strategy
from synergy_ray.strategies.interleaved import Interleaved
from synergy_ray.strategies.progressive import Progressive
from synergy_ray.strategies.trace_hint import TraceHint
from synergy_ray.strategies.two_stage import TwoStage


def _group(correct, pass_rate=0.5, prefix_len=0, lengths=None, expert=(7, 8, 9, 2)):
    lengths = lengths or [5] * len(correct)
    rollouts = [Rollout(qid="q", row=3, sample=i, prompt_ids=[1, 2], completion_ids=list(range(10, 10 + n)),
                        sampler_logprobs=[math.nan] * prefix_len + [-0.5] * (n - prefix_len), text="",
                        truncated=False, weight_version=0, prefix_len=prefix_len)
                for i, n in enumerate(lengths)]
    rewards = [1.0 if c else 0.0 for c in correct]
    return GroupOutcome("q", 3, rollouts, rewards, list(correct), pass_rate, list(expert))


def test_default_is_plain_grpo():
    g = _group([True, False])
    samples = Strategy().samples(g, [1.0, -1.0], step=0)
    assert [s.advantage for s in samples] == [1.0, -1.0]
    assert all(s.policy_from == 0 and s.sft_weight == 0 for s in samples)
    assert Strategy().hint_fraction("q", 0, 0.0) == 0.0


def test_interleaved_gives_all_failed_groups_the_expert_trace_with_sft_loss():
    strategy = Interleaved(InterleavedStrategy(sft_weight=0.5))
    failed = strategy.samples(_group([False, False]), [0.0, 0.0], step=0)
    assert len(failed) == 1
    (expert,) = failed
    assert expert.completion_ids == [7, 8, 9, 2] and expert.policy_from == 4  # no token gets the policy loss
    assert expert.sft_weight == 0.5 and expert.prompt_ids == [1, 2]
    mixed = strategy.samples(_group([True, False]), [1.0, -1.0], step=0)
    assert [s.advantage for s in mixed] == [1.0, -1.0] and all(s.sft_weight == 0 for s in mixed)


def test_progressive_prefix_shrinks_to_nothing_for_zero_pass_questions_only():
    strategy = Progressive(ProgressiveStrategy(prefix_weight=0.2, schedule="linear", schedule_steps=10, num_stages=4))
    assert [strategy.hint_fraction("q", s, 0.0) for s in (0, 5, 10, 12)] == [1.0, 0.5, 0.0, 0.0]
    assert strategy.hint_fraction("q", 0, 0.5) == 0.0  # solvable questions get no hint
    samples = strategy.samples(_group([True, False], prefix_len=3), [1.0, -1.0], step=2)
    assert all(s.policy_from == 3 and s.sft_weight == 0.2 for s in samples)  # prefix out of the ratio


def test_two_stage_runs_sft_then_rl_with_its_own_limit():
    strategy = TwoStage(TwoStageStrategy(rl_max_tokens=16384))
    sft, rl = strategy.phases
    assert (sft.name, rl.name) == ("sft", "rl_after_sft") and rl.rl_max_tokens == 16384
    assert sft.sft_job and rl.rl_roles and not rl.sft_job  # what the placement check reads
    assert rl.makes == "two_stage" and strategy.builds_on == ("sft",)


def test_trace_hint_follows_each_questions_pass_rate():
    strategy = TraceHint(TraceHintStrategy(hint_below=0.25, hint_weight=0.2, length_penalty=0.0, easy_above=0.75))
    assert strategy.hint_fraction("hard", 0, 0.0) == 1.0
    assert strategy.hint_fraction("medium", 0, 0.125) == 0.5
    assert strategy.hint_fraction("easy", 0, 0.9) == 0.0
    assert strategy.hint_fraction("hard", 10_000, 0.0) == 1.0  # no global clock: only the question's progress


def test_trace_hint_length_penalty_only_on_easy_correct_answers():
    strategy = TraceHint(TraceHintStrategy(hint_below=0.25, hint_weight=0.2, length_penalty=0.1, easy_above=0.75))
    easy = _group([True, True, False], pass_rate=0.8, lengths=[10, 5, 10])
    assert strategy.shape_rewards(easy) == pytest.approx([1.0 - 0.1, 1.0 - 0.05, 0.0])
    hard = _group([True, False], pass_rate=0.2, lengths=[10, 5])
    assert strategy.shape_rewards(hard) == [1.0, 0.0]


def test_data_mix_keeps_distinct_correct_answers_and_adds_traces_for_unsolved():
    from synergy_ray.core.mixing import mix_rows

    rows = [{"id": "a", "long_cot": "LA"}, {"id": "b", "long_cot": "LB"}, {"id": "c", "long_cot": ""}]
    samples = [["x", "x", "y"], ["p", "q"], ["r"]]
    correct = [[True, True, False], [False, False], [False]]
    mix, stats = mix_rows(rows, samples, correct)
    assert [(m["id"], m["mix_response"]) for m in mix] == [("a", "x"), ("b", "LB")]
    assert stats == {"questions": 3, "solved": 1, "correct_answers": 1, "long_cot_added": 1}


def test_merge_sweeps_or_uses_one_weight():
    from synergy_ray.strategies.merge import Merge

    def merge_phase(**fields):
        return Merge(MergeStrategy(**fields)).phases[-1]

    assert merge_phase(method="linear", sft_weight=0.25).weights == (0.25,)
    assert merge_phase(method="ties", sft_weight=0.25, sweep=[0.0, 0.5, 1.0]).weights == (0.0, 0.5, 1.0)
    assert [p.name for p in Merge(MergeStrategy()).phases] == ["sft", "rl", "merge"]


def test_every_config_section_has_its_strategy_module_and_back():
    """A strategy is its module (registered by name) plus its config section; neither exists without the other."""
    from synergy_ray.config import STRATEGY_NAMES
    from synergy_ray.strategies import Strategy as Registered

    assert sorted(Registered.registry) == sorted(STRATEGY_NAMES)


def test_a_new_strategy_needs_only_its_module(monkeypatch):
    """What adding a strategy takes, shown on a toy one: a subclass with its phases is found by name, and the
    pipeline, compare and the placement check read it through the interface only."""
    from synergy_ray.config import load_config
    from synergy_ray.strategies import Strategy as Base
    from synergy_ray.strategies import build, roles_in_use, strategy_class
    from synergy_ray.strategies.phases import GRPO, LongCotSFT

    monkeypatch.setattr(Base, "registry", dict(Base.registry))  # the toy leaves no trace in other tests

    class SFTThenGuided(Base):
        name = "rl"  # stands in for a new tag (a new tag also needs its config section)
        builds_on = ("sft",)

        def __init__(self, section=None):
            super().__init__(section)
            self.phases = (LongCotSFT(), GRPO(makes="toy"))

    cfg = load_config("configs/smoke_cpu.yaml", ["strategy=rl"])
    assert strategy_class("rl") is SFTThenGuided
    assert [p.makes for p in build(cfg).phases] == ["sft", "toy"]
    assert roles_in_use(cfg) == (True, True)  # from the phases' flags, not from the name
