import pytest
import torch

from synergy_ray.core.advantages import compute_advantages, group_advantages, rloo_advantages


def test_grpo_advantages_by_hand():
    # mean 0.75; deviations .25, -.75, .25, .25; unbiased var = .75 / 3 = .25 -> std .5
    adv = group_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), group_size=4)
    assert adv.tolist() == pytest.approx([0.5, -1.5, 0.5, 0.5], abs=1e-5)


def test_groups_are_consecutive_blocks():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]), group_size=4)
    # group 1: mean .25, std .5; group 2: all equal -> exactly 0 thanks to the epsilon
    assert adv.tolist() == pytest.approx([1.5, -0.5, -0.5, -0.5, 0, 0, 0, 0], abs=1e-5)
    assert adv[4:].abs().max() == 0


def test_all_wrong_group_has_zero_advantage():
    adv = group_advantages(torch.tensor([0.0, 0.0, 1.0, 0.0]), group_size=2)
    assert adv[:2].abs().max() == 0  # no signal from a group that never succeeds
    assert adv[2] > 0 > adv[3]


def test_epsilon_is_1e_6():
    adv = group_advantages(torch.tensor([0.0, 2.0]), group_size=2)  # std = sqrt(2)
    assert adv[1].item() == pytest.approx(1.0 / (2**0.5 + 1e-6), rel=1e-7)


def test_dr_grpo_skips_std_scaling():
    adv = compute_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 4, "dr_grpo")
    assert adv.tolist() == pytest.approx([0.25, -0.75, 0.25, 0.25])


def test_rloo_subtracts_mean_of_the_others():
    adv = rloo_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 4)
    # index 0: 1 - (0 + 1 + 1) / 3 = 1/3; index 1: 0 - 3/3 = -1
    assert adv.tolist() == pytest.approx([1 / 3, -1.0, 1 / 3, 1 / 3])
    assert compute_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 4, "rloo").tolist() == adv.tolist()


def test_bad_inputs_have_clear_errors():
    with pytest.raises(ValueError, match=r"number of rewards \(5\) is not divisible by group_size \(2\)"):
        compute_advantages(torch.ones(5), 2, "grpo")
    with pytest.raises(ValueError, match="unknown advantage estimator 'ppo'"):
        compute_advantages(torch.ones(4), 2, "ppo")
    with pytest.raises(ValueError, match="group_size >= 2"):
        rloo_advantages(torch.ones(4), 1)


def test_compute_advantages_grpo_scales_by_group_std():
    # rewards [1, 0, 1, 1]: mean .75, unbiased std .5 -> (r - .75) / .5
    adv = compute_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 4, "grpo")
    assert torch.allclose(adv, torch.tensor([0.5, -1.5, 0.5, 0.5]), atol=1e-5)


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("group_size", [2, 3, 5, 7, 8, 16, 64])
def test_tied_group_gets_exactly_zero_whatever_the_reward(estimator, dtype, group_size):
    # 0.1 and 0.9 are the paper's format-only and correct-unformatted rewards; in float32 the group mean of eight
    # 0.1s is one ulp off and GRPO's 1 / (std + 1e-6) turned that into -0.0074 for every member.
    for value in (0.1, 0.9, 1 / 3, 0.7, 1e-3, 123.456, -2.5):
        rewards = torch.full((group_size,), value, dtype=dtype)
        adv = compute_advantages(rewards, group_size, estimator)
        assert torch.count_nonzero(adv) == 0, (value, adv[:3].tolist())


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo"])
def test_tied_group_stays_zero_beside_a_mixed_one(estimator):
    # groups are independent: [0.1]*8 next to a group with a correct answer
    rewards = torch.tensor([0.1] * 8 + [1.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    adv = compute_advantages(rewards, 8, estimator)
    assert torch.count_nonzero(adv[:8]) == 0
    assert adv[8] > 0 > adv[9]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_advantages_keep_the_rewards_dtype_and_match_the_formula_off_the_grid(dtype):
    # rewards 0.1, 0.1, 1.0: mean 0.4, deviations -.3, -.3, .6, unbiased var (.09 + .09 + .36) / 2 = .27,
    # so GRPO gives (-.3, -.3, .6) / (sqrt(.27) + 1e-6)
    adv = compute_advantages(torch.tensor([0.1, 0.1, 1.0], dtype=dtype), 3, "grpo")
    assert adv.dtype == dtype
    std = 0.27 ** 0.5 + 1e-6
    assert adv.tolist() == pytest.approx([-0.3 / std, -0.3 / std, 0.6 / std], rel=1e-6)
    assert compute_advantages(torch.tensor([1, 0]), 2, "rloo").dtype == torch.float32  # integer rewards
