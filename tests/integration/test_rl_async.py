"""Async GRPO with the real parts: generation of step t+1 overlaps training of step t.

In its own module so that it starts after test_rl_loop's module coordinator has given back its CPUs (two
coordinators at once do not fit a 2-core local Ray: the second one's generator would wait for a CPU forever).
"""

from test_rl_loop import SMOKE_RL


def test_async_mode_overlaps_generation_one_version_stale(ray_local, smoke_run, smoke_base, tmp_path):
    """Step t+1's rollouts are sampled while step t trains: one weight version stale, corrected by TIS."""
    from synergy_ray.config import load_config
    from synergy_ray.coordinator import Coordinator
    from synergy_ray.strategies import build

    cfg0, prepared = smoke_run
    overrides = [o for o in SMOKE_RL if not o.startswith(("rollout.num_generators", "rollout.max_generators"))]
    cfg = load_config("configs/smoke_cpu.yaml", [
        f"run.output_dir={cfg0.run.output_dir}", f"model.path={prepared.model_path}", *overrides,
        "rl.async_mode=true", "rl.tis_cap=2.0", "learner.sync_check_every=2"])
    handle = ray_local.remote(Coordinator).options(num_cpus=0).remote(
        cfg, str(smoke_base), str(prepared.train_path), str(tmp_path), build(cfg))
    try:
        history = ray_local.get(handle.run.remote(3))
    finally:
        ray_local.get(handle.shutdown.remote())  # gives back its placement groups
        ray_local.kill(handle)
    # Step 1 starts from a cold pool (fresh samples); steps 2-3 train on samples drawn one version earlier.
    assert [h["staleness"] for h in history] == [0.0, 1.0, 1.0]
    assert [h["weight_version"] for h in history] == [1, 2, 3]
    assert ["generate_wait" in h["timings"] for h in history] == [True, True, False]  # the last step prefetches nothing
    assert all(h["learner"]["updates"] == 2.0 for h in history)
    # The health check runs after the 1st and 3rd syncs only (learner.sync_check_every=2), and passes there.
    assert [h["sync_logprob_gap"] is None for h in history] == [False, True, False]
    assert all(h["sync_logprob_gap"] < 2e-3 for h in history[::2])
    assert history[-1]["counters"].get("stale_dropped", 0) == 0
