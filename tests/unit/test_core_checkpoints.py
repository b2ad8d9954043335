import pytest

from synergy_ray.core.checkpoints import checkpoints_to_remove


def test_keeps_the_newest_and_the_protected():
    names = ["step_000010", "step_000002", "latest", "step_000004", "step_000008.partial", "step_000006"]
    assert checkpoints_to_remove(names, 2, set()) == ["step_000002", "step_000004"]
    assert checkpoints_to_remove(names, 2, {"step_000002"}) == ["step_000004"]
    assert checkpoints_to_remove(names, 10, set()) == []


def test_keep_zero_is_refused():
    with pytest.raises(ValueError):
        checkpoints_to_remove(["step_000001"], 0, set())
