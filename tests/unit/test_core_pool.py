"""The elastic pool's decision: the size to aim for from the last step's generation share, within [lo, hi]."""

from synergy_ray.core.pool import fits_one_more, pool_target


def test_no_measurement_keeps_the_aim():
    assert pool_target(3, 1, 8, None, None, grow_share=0.5, shrink_share=0.1) == 3


def test_generation_bound_step_aims_for_the_maximum():
    assert pool_target(2, 1, 8, generate_s=6.0, step_s=10.0, grow_share=0.5, shrink_share=0.1) == 8
    assert pool_target(2, 1, 8, generate_s=5.0, step_s=10.0, grow_share=0.5, shrink_share=0.1) == 8  # at the bound


def test_cheap_generation_gives_one_member_back_but_never_below_min():
    assert pool_target(4, 2, 8, generate_s=0.5, step_s=10.0, grow_share=0.5, shrink_share=0.1) == 3
    assert pool_target(2, 2, 8, generate_s=0.5, step_s=10.0, grow_share=0.5, shrink_share=0.1) == 2


def test_between_the_bounds_the_aim_stays():
    assert pool_target(4, 1, 8, generate_s=3.0, step_s=10.0, grow_share=0.5, shrink_share=0.1) == 4


def test_aim_outside_bounds_is_clamped():
    assert pool_target(0, 1, 4, None, None, grow_share=0.5, shrink_share=0.0) == 1
    assert pool_target(9, 1, 4, None, None, grow_share=0.5, shrink_share=0.0) == 4


def test_fits_one_more_needs_every_resource():
    assert fits_one_more({"CPU": 1.0, "GPU": 1.0}, cpus=1, gpus=1)
    assert not fits_one_more({"CPU": 4.0}, cpus=1, gpus=1)
    assert not fits_one_more({"CPU": 0.4, "GPU": 2.0}, cpus=0.5, gpus=0)
