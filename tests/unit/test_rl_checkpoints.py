"""RL checkpoint files: written whole or not at all, `latest` names the newest, old ones pruned."""

import json

import pytest

from synergy_ray.processes.profiling import timed
from synergy_ray.run.rl_checkpoints import latest_checkpoint, read_state, write_checkpoint


def _learner_files(directory: str) -> None:
    with open(f"{directory}/model.bin", "w") as f:
        f.write("weights")


def test_write_read_latest_and_prune(tmp_path):
    root = tmp_path / "checkpoints"
    assert latest_checkpoint(root) is None
    for step in (1, 2, 3):
        path = write_checkpoint(root, step, _learner_files, {"step": step}, keep=2)
    assert path == str(root / "step_000003")
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000002", "step_000003"]
    assert latest_checkpoint(root) == root / "step_000003"
    assert read_state(path) == {"step": 3}
    assert (root / "step_000003" / "model.bin").read_text() == "weights"


def test_a_crash_while_writing_leaves_the_previous_checkpoint_latest(tmp_path):
    root = tmp_path / "checkpoints"
    write_checkpoint(root, 1, _learner_files, {"step": 1}, keep=3)

    def crash(directory):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_checkpoint(root, 2, crash, {"step": 2}, keep=3)
    assert latest_checkpoint(root) == root / "step_000001"
    assert json.loads((root / "step_000001" / "coordinator.json").read_text()) == {"step": 1}
    write_checkpoint(root, 2, _learner_files, {"step": 2}, keep=3)  # the partial left by the crash is replaced
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000001", "step_000002"]


def test_timed_records_the_block_also_when_it_raises():
    timings: dict[str, float] = {}
    with timed(timings, "a"):
        pass
    with pytest.raises(ValueError), timed(timings, "b"):
        raise ValueError
    assert set(timings) == {"a", "b"} and all(v >= 0 for v in timings.values())
