import math

import pytest

from synergy_ray.core.schedules import trace_hint_fraction, prefix_fraction, prefix_tokens


def test_linear_cosine_step_by_hand():
    assert [prefix_fraction(s, 4, "linear") for s in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert prefix_fraction(2, 4, "cosine") == pytest.approx(0.5)
    assert prefix_fraction(1, 4, "cosine") == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert [prefix_fraction(s, 8, "step", num_stages=4) for s in range(9)] == \
        [1.0, 1.0, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25, 0.0]


def test_bad_schedule_inputs():
    with pytest.raises(ValueError, match="unknown schedule"):
        prefix_fraction(0, 4, "exp")
    with pytest.raises(ValueError, match="positive"):
        prefix_fraction(0, 0)


def test_adaptive_fraction_shrinks_with_pass_rate():
    assert trace_hint_fraction(0.0, 0.25) == 1.0
    assert trace_hint_fraction(0.125, 0.25) == 0.5
    assert trace_hint_fraction(0.25, 0.25) == 0.0
    assert trace_hint_fraction(0.9, 0.25) == 0.0


def test_prefix_tokens_never_reveals_the_whole_trace():
    assert prefix_tokens(10, 1.0) == 9
    assert prefix_tokens(10, 0.5) == 5
    assert prefix_tokens(10, 0.0) == 0
