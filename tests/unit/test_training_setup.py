"""The shared trainer set-up's decisions that need no model: DeepSpeed's comm op build is skipped."""

from pathlib import Path


def test_deepspeed_shm_comm_op_is_not_built(tmp_path, monkeypatch):
    """Every learner and SFT worker would JIT-compile this op under a lock file; a stale lock hung CI."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    from deepspeed.comm.torch import build_shm_op

    from synergy_ray.model.training import skip_shm_comm_build

    skip_shm_comm_build()
    assert build_shm_op() is None
    assert not list(Path(tmp_path).iterdir())  # nothing compiled, no lock file
