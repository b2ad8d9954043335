"""Guided strategies through the real RL loop (smoke config, one step each): hints reach the generator and the
learner, and the SFT-routed tokens are trained in the same step as the GRPO ones."""

import pytest

BASE = ["rl.steps=2", "rl.prompt_batch=4", "rl.mini_batch=4", "rollout.group_size=4", "rollout.max_tokens=56",
        "cluster.cpus_per_generator=0.5", "cluster.cpus_per_learner=0.5", "learner.lr=1e-4",
        "learner.micro_batch_size=8"]


UNANSWERABLE = 2  # interleaved: questions of the step made to fail whatever the model writes


def _unanswerable_next_questions(n: int):
    """A call for the coordinator actor: the first `n` questions its next step draws get a gold no rollout can
    match (so their groups all fail); it returns their expert traces' lengths in tokens. The sampler is rewound,
    so the step draws exactly these questions. A closure, so Ray ships it by value (the test module is not
    importable in the actor)."""
    def make_unanswerable(c) -> list[int]:
        state = c.sampler.state_dict()
        qids = c.sampler.sample(c.cfg.rl.prompt_batch)
        c.sampler.load_state_dict(state)
        rows = [c.row_of[q] for q in qids[:n]]
        for row in rows:
            c.answers[row], c.choices[row] = "-31415926535", []
        return [len(c._expert_ids(row)) for row in rows]

    return make_unanswerable


@pytest.mark.parametrize("strategy", [
    ["strategy=adaptive", "strategy.hint_below=1.0"],  # every question below 1.0: every prompt gets a hint
    ["strategy=interleaved"],
    ["strategy=progressive", "strategy.schedule_steps=2", "data.max_prompt_tokens=1536",
     "rollout.max_model_len=2048"],
], ids=["adaptive", "interleaved", "progressive"])
def test_guided_strategy_step(ray_local, smoke_run, smoke_base, tmp_path, strategy):
    from synergy_ray.config import load_config
    from synergy_ray.coordinator import Coordinator
    from synergy_ray.strategies import build

    cfg0, prepared = smoke_run
    cfg = load_config("configs/smoke_cpu.yaml", [f"run.output_dir={cfg0.run.output_dir}", *BASE, *strategy])
    handle = ray_local.remote(Coordinator).options(num_cpus=0).remote(
        cfg, str(smoke_base), str(prepared.train_path), str(tmp_path), build(cfg))
    try:
        if cfg.strategy.name == "progressive":  # as if every question's last group had all failed
            ray_local.get(handle.__ray_call__.remote(lambda c: c.last_pass.update(dict.fromkeys(c.qids, 0.0))))
        if cfg.strategy.name == "interleaved":  # two of the step's questions get a gold no rollout can match
            forced = ray_local.get(handle.__ray_call__.remote(_unanswerable_next_questions(UNANSWERABLE)))
        stats = ray_local.get(handle.step.remote())
    finally:
        ray_local.get(handle.shutdown.remote())  # gives back its placement groups
        ray_local.kill(handle)
    if cfg.strategy.name == "adaptive":
        assert stats.counters.hinted_prompts == 4  # unseen questions sit at the prior 0.5 < 1.0
        assert stats.learner.sft_tokens > 0
    elif cfg.strategy.name == "progressive":  # step 0 of the schedule: the whole trace is given, then continued
        assert stats.counters.hinted_prompts == 4 and stats.counters.dropped_too_long == 0
        assert stats.learner.sft_tokens > 0 and stats.learner.policy_tokens > 0
    else:  # interleaved: a group that all failed trains on its expert trace instead of its rollouts
        failed_groups = stats.counters.all_failed_groups
        assert len(forced) == UNANSWERABLE and failed_groups >= UNANSWERABLE
        # at least the forced questions' traces are trained (the learner may drop each trace's end token)
        assert stats.learner.sft_tokens >= sum(forced) - len(forced) > 0
        # the other groups keep the GRPO loss in the same step unless they all failed too
        assert (stats.learner.policy_tokens > 0) == (failed_groups < 4)
    assert stats.sync_logprob_gap < 2e-3
