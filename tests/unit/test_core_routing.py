"""How scored rollouts become trained groups (core.routing), checked against hand numbers."""

import pytest

from synergy_ray.core.routing import pass_rate_by_bucket, question_groups, trained_advantages


def test_groups_keep_first_seen_question_order_and_every_index():
    assert question_groups(["b", "b", "a", "b", "c", "a"]) == {"b": [0, 1, 3], "a": [2, 5], "c": [4]}
    assert list(question_groups(["z", "y", "z"])) == ["z", "y"]
    assert question_groups([]) == {}


def test_a_complete_group_gets_grpo_advantages_by_hand():
    # rewards 1, 0, 0, 1: mean 0.5, unbiased std sqrt(1/3): advantages +-0.5 / 0.57735 = +-0.86603
    adv = trained_advantages([1.0, 0.0, 0.0, 1.0], [False] * 4, 4, "grpo", drop_truncated=False)
    assert adv == pytest.approx([0.866024, -0.866024, -0.866024, 0.866024], abs=1e-5)
    # Dr.GRPO: no std division; RLOO: r minus the mean of the other three
    assert trained_advantages([1.0, 0.0, 0.0, 1.0], [False] * 4, 4, "dr_grpo", False) == [0.5, -0.5, -0.5, 0.5]
    assert trained_advantages([1.0, 0.0, 0.0, 0.0], [False] * 4, 4, "rloo", False) == pytest.approx(
        [1.0, -1 / 3, -1 / 3, -1 / 3])


def test_an_incomplete_group_is_not_trained():
    assert trained_advantages([1.0, 0.0, 1.0], [False] * 3, 4, "grpo", False) is None


def test_drop_zeroes_only_the_cut_completions():
    shaped, cut = [1.0, 0.0, 0.0, 1.0], [False, True, False, True]
    kept = trained_advantages(shaped, cut, 4, "dr_grpo", drop_truncated=False)
    dropped = trained_advantages(shaped, cut, 4, "dr_grpo", drop_truncated=True)
    assert kept == [0.5, -0.5, -0.5, 0.5]
    assert dropped == [0.5, 0.0, -0.5, 0.0]  # the baseline still counts every member


def test_a_tied_group_trains_with_zero_advantage():
    assert trained_advantages([0.1] * 8, [False] * 8, 8, "grpo", False) == [0.0] * 8


def test_pass_rate_per_bucket_ascending_only_where_seen():
    assert pass_rate_by_bucket([3, 1, 3, 1, 5], [True, False, False, False, True]) == {1: 0.0, 3: 0.5, 5: 1.0}
    assert list(pass_rate_by_bucket([5, 2, 4], [True, True, True])) == [2, 4, 5]
    assert pass_rate_by_bucket([], []) == {}
