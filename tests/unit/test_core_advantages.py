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
