"""`adaptive`'s decisions through the strategy interface, and its config checks."""

import numpy as np
import pytest

from synergy_ray.config import AdaptiveStrategy, CurriculumConfig, load_config
from synergy_ray.core.curriculum import curriculum_weights, informative_weights
from synergy_ray.strategies.adaptive import Adaptive

SUM = "<think>3+5+7=15</think>\\boxed{15}"


def test_informative_weights_peak_at_half_and_keep_the_floor():
    w = informative_weights([0.0, 0.5, 1.0, 0.25], floor=0.2)
    assert w.sum() == pytest.approx(1.0)
    assert w[1] > w[3] > w[0] == pytest.approx(w[2]) == pytest.approx(0.2 / 4)
    assert np.allclose(informative_weights([1.0, 1.0], 0.1), [0.5, 0.5])  # nothing informative: uniform


def test_the_curriculum_component_picks_the_weight_function():
    rates, cur = [0.05, 0.5, 0.95], CurriculumConfig(focus=2.0, floor=0.1)
    assert np.allclose(Adaptive(AdaptiveStrategy()).sampling_weights(rates, cur), informative_weights(rates, 0.1))
    assert np.allclose(Adaptive(AdaptiveStrategy(curriculum="hardness")).sampling_weights(rates, cur),
                       curriculum_weights(rates, 2.0, 0.1))


def test_group_sizes_keep_the_step_total_with_the_rescue_budget_set_aside():
    # steps 5.. of 100 are rescue steps with the defaults (rescue_after 5, rescue_until 0.8)
    need = Adaptive(AdaptiveStrategy(rescue_budget=16, min_group=4, max_group=16, budget_rule="need"))
    sizes = need.group_sizes([1.0] * 8 + [0.0] * 8, 8, step=10, steps=100)
    assert sum(sizes) == 16 * 8 - 16 and sizes[:8] == [4] * 8 and sizes[8:] == [10] * 8
    signal = Adaptive(AdaptiveStrategy(rescue_budget=16, min_group=4, max_group=16))
    sizes = signal.group_sizes([0.9] * 8 + [0.1] * 8, 8, step=10, steps=100)
    assert sum(sizes) == 112 and max(sizes[:8]) < min(sizes[8:])
    even = Adaptive(AdaptiveStrategy(budget=False, rescue_budget=16))
    assert even.group_sizes([1.0] * 8 + [0.0] * 8, 8, step=10, steps=100) == [7] * 16
    no_rescue = Adaptive(AdaptiveStrategy(rescue=False, budget=False))
    assert no_rescue.group_sizes([0.2] * 4, 8, step=10, steps=100) == [8] * 4 and no_rescue.rescue_size == 0


def test_steps_without_rescues_keep_nothing_back_and_unspent_rescues_carry_to_the_next_step():
    s = Adaptive(AdaptiveStrategy(budget=False, rescue_budget=16))
    rates = [0.5] * 16
    assert sum(s.group_sizes(rates, 8, step=0, steps=100)) == 128  # warm-up: no rescues, the whole budget
    s.rescues_spent(0)
    assert sum(s.group_sizes(rates, 8, step=5, steps=100)) == 112  # a rescue step keeps 16
    s.rescues_spent(4)  # 12 of them unspent
    assert sum(s.group_sizes(rates, 8, step=6, steps=100)) == 112 + 12
    s.rescues_spent(16)  # all spent: nothing carried
    assert sum(s.group_sizes(rates, 8, step=7, steps=100)) == 112
    s.rescues_spent(8)
    restored = Adaptive(AdaptiveStrategy(budget=False, rescue_budget=16))
    restored.load_state_dict(s.state_dict())  # the carry survives a resume
    assert sum(restored.group_sizes(rates, 8, step=80, steps=100)) == 128 + 8  # the last fifth: no rescues
    restored.rescues_spent(0)
    assert sum(restored.group_sizes(rates, 8, step=81, steps=100)) == 128
    # over a run, the rollouts sampled (unhinted + hinted) equal plain GRPO's less the last unspent reserve
    run, spent_total, unhinted_total = Adaptive(AdaptiveStrategy(budget=False, rescue_budget=16)), 0, 0
    for step in range(20):
        unhinted_total += sum(run.group_sizes(rates, 8, step=step, steps=20))
        spent = [0, 4, 8, 16][step % 4] if 5 <= step < 16 else 0
        run.rescues_spent(spent)
        spent_total += spent
    assert unhinted_total + spent_total == 20 * 128


def test_a_carry_the_group_bounds_cannot_hold_is_dropped():
    # 4 questions at most 4 each hold 16: a rescue step keeps 4 of 16, spends none, the next step gets 12 + 4
    s = Adaptive(AdaptiveStrategy(rescue_budget=4, rescue_size=2, min_group=2, max_group=4))
    assert sum(s.group_sizes([0.5] * 4, 4, step=5, steps=10)) == 12
    s.rescues_spent(0)
    assert s.group_sizes([0.5] * 4, 4, step=6, steps=10) == [4] * 4  # 12 + 4 carried = 16, all fit
    s.rescues_spent(0)
    assert s.group_sizes([0.5] * 4, 4, step=8, steps=10) == [4] * 4  # no rescues: 16 + 4 carried, capped at 16
    assert (s.kept, s.carried) == (0, 0)


def test_the_unhinted_budget_rule():
    from synergy_ray.core.allocation import unhinted_budget

    assert unhinted_budget(128, 16, True, 0) == 112
    assert unhinted_budget(128, 16, False, 0) == 128
    assert unhinted_budget(128, 16, True, 12) == 124
    assert unhinted_budget(128, 16, False, 16) == 144
    assert unhinted_budget(128, 16, False, 16, cap=136) == 136  # the carry the groups cannot hold is dropped
    assert unhinted_budget(128, 16, True, 16, cap=128) == 128
    with pytest.raises(ValueError, match="carried"):
        unhinted_budget(128, 16, True, 17)
    with pytest.raises(ValueError, match="cap"):
        unhinted_budget(128, 16, False, 0, cap=120)


def test_rescue_hints_climb_fade_and_stop():
    s = Adaptive(AdaptiveStrategy(rescue_after=2, rescue_until=0.5))
    assert s.rescue_hint("q", SUM, "15", step=1, steps=10) == ""  # warm-up
    assert s.rescue_hint("q", SUM, "15", step=2, steps=10) == "<think>3+"
    assert s.rescued("q", SUM, "15", 0, 4) is True  # all failed: the next rung, within the step
    assert s.rescue_hint("q", SUM, "15", step=2, steps=10) == "<think>3+5+"
    assert s.rescued("q", SUM, "15", 1, 4) is False
    assert s.rescue_hint("q", SUM, "15", step=5, steps=10) == ""  # the last half of training: plain RL
    s.observed("q", 1, 8)  # its first unhinted success
    assert s.rescue_hint("q", SUM, "15", step=3, steps=10) == ""
    restored = Adaptive(AdaptiveStrategy())
    restored.load_state_dict(s.state_dict())
    assert restored.rescue_hint("q", SUM, "15", step=6, steps=10) == ""


def test_hint_tokens_get_no_loss_by_default():
    from synergy_ray.records import GroupOutcome, Rollout

    r = Rollout(qid="q", row=0, sample=0, prompt_ids=[1], completion_ids=[5, 6, 7], sampler_logprobs=[0.0] * 3,
                text="", truncated=False, weight_version=0, prefix_len=2)
    group = GroupOutcome("q", 0, [r], [1.0], [True], 0.0, [])
    (sample,) = Adaptive(AdaptiveStrategy()).samples(group, [0.5], 0)
    assert sample.sft_weight == 0.0 and sample.policy_from == 2


@pytest.mark.parametrize("override, field", [
    (["strategy.rescue_budget=2"], "strategy.rescue_budget"),  # less than one subgroup
    (["strategy.min_group=8", "strategy.rescue_budget=16"], "strategy.rescue_budget"),  # 112 < 16 x 8
    (["strategy.min_group=9", "strategy.max_group=4"], "strategy.max_group"),
])
def test_a_budget_that_cannot_be_shared_is_refused_naming_the_field(override, field):
    with pytest.raises(ValueError, match=field):
        load_config("configs/demo_cpu.yaml", ["strategy=adaptive", *override])


def test_a_pooled_prior_starts_unseen_questions_at_their_levels_pass_rate():
    from synergy_ray.core.curriculum import PooledPassRateTable

    t = PooledPassRateTable({"a": 1, "b": 1, "c": 5}, strength=2.0, bucket_decay=1.0)
    assert t.pass_rate("b") == 0.5 == t.pass_rate("c")  # nothing seen yet
    t.update("a", 8, 8)
    assert t.bucket_rate(1) == pytest.approx(9 / 10)
    assert t.pass_rate("b") == pytest.approx(0.9)  # unseen, from its level
    assert t.pass_rate("a") == pytest.approx((2 * 0.9 + 8) / (2 + 8))
    assert t.pass_rate("c") == 0.5  # another level learns nothing from it
    restored = PooledPassRateTable({"a": 1, "b": 1, "c": 5}, strength=2.0, bucket_decay=1.0)
    restored.load_state_dict(t.state_dict())
    assert restored.pass_rate("b") == pytest.approx(0.9) and restored.pass_rate("a") == t.pass_rate("a")
    assert Adaptive(AdaptiveStrategy(pooled_prior=False)).difficulty_table({"a": 1}) is None
