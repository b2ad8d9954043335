"""The distributed GRPO loop with the real parts: vLLM generator actors, verifier actors, DeepSpeed learner.

One coordinator serves the whole module at the shape the paper's config runs: two learner ranks under ZeRO-3
(every parameter call a collective) and two generators (so one can be killed). Starting engines costs a minute
here, so the checks run in sequence on the same run.
"""

import json
import math
import os

import pytest

SMOKE_RL = [
    "rl.steps=4", "rl.prompt_batch=4", "rl.mini_batch=2", "rollout.group_size=4", "rollout.max_tokens=56",
    "rollout.num_generators=2", "rollout.max_generators=2", "cluster.cpus_per_generator=0.5",
    "cluster.cpus_per_learner=0.25", "learner.lr=1e-3", "rl.kl_coef=0.01", "learner.micro_batch_size=4",
    "learner.num_workers=2", "learner.zero_stage=3",
    "learner.sync_bucket_mib=0.5",  # ~1.9 MiB of trainable weights: several buckets per sync
    "rl.keep_checkpoints=2",
    "rollout.health_timeout_s=10",  # the hung-engine test waits this long for the probe
    "rollout.inline_engine=false",  # engines in their own processes, so the fault tests can kill one
]


@pytest.fixture(scope="module")
def coordinator(ray_local, smoke_run, smoke_base, tmp_path_factory):
    from synergy_ray.config import load_config
    from synergy_ray.coordinator import Coordinator
    from synergy_ray.strategies import build

    cfg0, prepared = smoke_run
    cfg = load_config("configs/smoke_cpu.yaml", [f"run.output_dir={cfg0.run.output_dir}",
                                                 f"model.path={prepared.model_path}", *SMOKE_RL])
    work = tmp_path_factory.mktemp("rl_work")
    handle = ray_local.remote(Coordinator).options(num_cpus=0).remote(
        cfg, str(smoke_base), str(prepared.train_path), str(work), build(cfg))
    yield handle, work
    from synergy_ray.processes.profiling import mapped_shm

    members = ray_local.get(handle.generator_handles.remote())
    pids = [int(ray_local.get(g.ready.remote()).rsplit(" ", 1)[-1]) for g in members]
    engine_shm = set().union(*(mapped_shm(pid) for pid in pids))
    ray_local.get(handle.shutdown.remote())  # gives back its placement groups
    ray_local.kill(handle)
    assert engine_shm and not [p for p in engine_shm if os.path.exists(p)]  # each engine's /dev/shm removed


def test_two_steps_end_to_end_with_two_mini_batches(coordinator, ray_local):
    handle, work = coordinator
    history = ray_local.get(handle.run.remote(2))
    assert [h["step"] for h in history] == [1, 2]
    assert [h["weight_version"] for h in history] == [1, 2]
    assert max(h["reward_mean"] for h in history) > 0  # the warmed-up base earns rewards: GRPO has a signal
    for h in history:
        assert 0.0 <= h["reward_mean"] <= 1.0
        assert h["learner"]["updates"] == 2.0  # prompt_batch 4 / mini_batch 2
        assert set(h["timings"]) >= {"generate", "score", "train", "sync", "health_check", "overhead"}
        assert 0 <= h["timings"]["overhead"] < h["timings"]["step"]  # the parts never exceed the whole
        assert h["timings"]["sync_engine_load"] <= h["timings"]["sync"]
        # rank 0's time inside its two train steps is part of the coordinator's train time
        assert 0 < h["timings"]["train_worker"] == h["learner"]["worker_s"] <= h["timings"]["train"]
        assert h["learner"]["worker_cpu_s"] > 0
        # Right after a sync vLLM and the learner agree on the log-probs of the same tokens.
        assert h["sync_logprob_gap"] is not None and h["sync_logprob_gap"] < 2e-3, h["sync_logprob_gap"]
    lines = (work / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]
    assert any((work / "tensorboard").iterdir())


def test_peak_memory_is_reported_per_role(coordinator, ray_local):
    handle, _ = coordinator
    mem = ray_local.get(handle.peak_rss.remote())
    assert set(mem) == {"coordinator", "generator-0", "generator-1", "learner-0", "learner-1", "verifier-0"}
    # A generator's engine lives in processes it spawned (engine core, worker): they must be counted.
    assert mem["generator-0"]["children"] > mem["verifier-0"]["children"] > 0
    assert all(m["total"] >= m["self"] > 0 for m in mem.values())
    # The ranks have synced (the test above) without loading vLLM: ~270 MiB and ~4 s a rank (weight_files).
    loaded = ray_local.get(handle.__ray_call__.remote(lambda c: [
        c._ray.get(w.__ray_call__.remote(lambda _: "vllm" in __import__("sys").modules)) for w in c.learner.workers]))
    assert loaded == [False, False]


def test_skipping_the_sync_shows_a_large_gap(coordinator, ray_local):
    handle, _ = coordinator
    # Fault injected from the test: the step's sync does nothing, so the generators keep the old weights.
    ray_local.get(handle.__ray_call__.remote(lambda c: setattr(c, "sync_weights", lambda: None)))
    try:
        stats = ray_local.get(handle.step.remote())
    finally:
        ray_local.get(handle.__ray_call__.remote(lambda c: delattr(c, "sync_weights")))
    assert stats.sync_logprob_gap > 20 * 2e-3, stats.sync_logprob_gap  # learner moved, generators did not
    ray_local.get(handle.sync_weights.remote())
    refreshed = ray_local.get(handle.step.remote())
    assert refreshed.sync_logprob_gap < 2e-3


def test_resume_draws_the_same_next_batch(coordinator, ray_local):
    handle, _ = coordinator
    path = ray_local.get(handle.save_checkpoint.remote())
    expected = ray_local.get(handle.next_prompts.remote(4))
    saved_step = ray_local.get(handle.state_dict.remote())["step"]
    ray_local.get(handle.step.remote())  # moves the sampler (and the weights) on
    ray_local.get(handle.load_checkpoint.remote(path))
    assert ray_local.get(handle.state_dict.remote())["step"] == saved_step
    assert ray_local.get(handle.next_prompts.remote(4)) == expected
    gap = ray_local.get(handle.step.remote()).sync_logprob_gap
    assert gap < 2e-3  # generators were given the restored weights


def test_killing_a_generator_mid_step_loses_no_prompt(coordinator, ray_local):
    import threading
    import time

    handle, _ = coordinator
    generators = ray_local.get(handle.generator_handles.remote())
    assert len(generators) == 2
    step_ref = handle.step.remote()
    threading.Timer(0.05, lambda: ray_local.kill(generators[1])).start()  # lands while it samples
    stats = ray_local.get(step_ref)
    assert stats.counters.generator_failures == 1
    assert stats.counters.lost_rollouts > 0
    assert not math.isnan(stats.reward_mean)
    # No prompt lost: every drawn prompt still produced a full group (4 prompts x 4 samples).
    assert stats.num_rollouts == 16
    assert stats.learner.updates == 2.0
    time.sleep(0.1)
    assert ray_local.get(handle.ensure_pool.remote()) == 2  # the pool is rebuilt to its size



def test_a_dead_engine_is_replaced_between_steps_and_mid_step(coordinator, ray_local):
    """kill -9 of a generator's vLLM engine process (what the OOM killer does) leaves its actor alive. The
    member is still found failed, its prompts go to the other member, and it is replaced."""
    import signal
    import threading
    import time

    handle, _ = coordinator
    before = ray_local.get(handle.state_dict.remote())["counters"]["generator_failures"]

    def engine_pid(member) -> int:
        names = ray_local.get(member.engine_pids.remote())
        return next(pid for pid, name in names.items() if "EngineCore" in name)

    from synergy_ray.processes.profiling import mapped_shm

    # Between steps: the health probe asks the engine, not only the actor.
    first = ray_local.get(handle.generator_handles.remote())
    dead_engine = engine_pid(first[0])
    left_behind = mapped_shm(dead_engine)  # what a killed engine leaves in /dev/shm unless it is removed
    os.kill(dead_engine, signal.SIGKILL)
    time.sleep(1)
    assert ray_local.get(handle.ensure_pool.remote()) == 2
    members = ray_local.get(handle.generator_handles.remote())
    assert first[0] not in members and first[1] in members
    assert ray_local.get(handle.state_dict.remote())["counters"]["generator_failures"] == before + 1
    assert left_behind and not [p for p in left_behind if os.path.exists(p)]

    # Mid-step: the engine dies while its member samples.
    victim = engine_pid(members[1])
    step_ref = handle.step.remote()
    threading.Timer(0.05, lambda: os.kill(victim, signal.SIGKILL)).start()
    stats = ray_local.get(step_ref)
    assert stats.counters.generator_failures == before + 2
    assert stats.num_rollouts == 16  # every drawn prompt still produced a full group
    assert stats.learner.updates == 2.0
    assert stats.sync_logprob_gap is not None and stats.sync_logprob_gap < 2e-3
    assert ray_local.get(handle.ensure_pool.remote()) == 2


def test_a_hung_engine_is_found_killed_and_replaced(coordinator, ray_local):
    """An engine that stops answering (SIGSTOP: alive, holding its memory, never replying) fails the health
    probe; its member is killed, the engine process that would outlive the actor is ended on its node, its
    /dev/shm removed, and the pool rebuilt."""
    import signal

    from synergy_ray.processes.profiling import mapped_shm, start_time

    handle, _ = coordinator
    before = ray_local.get(handle.state_dict.remote())["counters"]["generator_failures"]
    victim = ray_local.get(handle.generator_handles.remote())[0]
    engine = next(pid for pid, name in ray_local.get(victim.engine_pids.remote()).items() if "EngineCore" in name)
    started, engine_shm = start_time(engine), mapped_shm(engine)
    os.kill(engine, signal.SIGSTOP)
    try:
        assert ray_local.get(handle.ensure_pool.remote()) == 2  # the probe waits rollout.health_timeout_s
        assert victim not in ray_local.get(handle.generator_handles.remote())
        assert ray_local.get(handle.state_dict.remote())["counters"]["generator_failures"] == before + 1
        assert start_time(engine) != started or open(f"/proc/{engine}/stat").read().split(") ")[1][0] == "Z"
        assert engine_shm and not [p for p in engine_shm if os.path.exists(p)]
    finally:
        if start_time(engine) == started:
            os.kill(engine, signal.SIGKILL)


def test_old_checkpoints_are_pruned_to_keep_checkpoints(coordinator, ray_local):
    handle, work = coordinator
    root = work / "checkpoints"
    first = ray_local.get(handle.save_checkpoint.remote())
    ray_local.get(handle.step.remote())
    newest = ray_local.get(handle.save_checkpoint.remote())
    names = sorted(p.name for p in root.iterdir())
    # rl.keep_checkpoints=2: the two just written remain (the earlier resume test's is gone), no partial left.
    assert names == sorted([first.rsplit("/", 1)[-1], newest.rsplit("/", 1)[-1], "latest"]), names
    assert (root / "latest").read_text() == newest.rsplit("/", 1)[-1]
