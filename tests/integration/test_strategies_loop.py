"""Guided strategies through the real RL loop (smoke config, one step each): hints reach the generator and the
learner, and the SFT-routed tokens are trained in the same step as the GRPO ones; adaptive's rescues and
rollout allocation happen in a real step and nothing is dropped."""

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
    ["strategy=trace_hint", "strategy.hint_below=1.0"],  # every question below 1.0: every prompt gets a hint
    ["strategy=interleaved"],
    ["strategy=progressive", "strategy.schedule_steps=2", "data.max_prompt_tokens=1536",
     "rollout.max_model_len=2048"],
], ids=["trace_hint", "interleaved", "progressive"])
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
    if cfg.strategy.name == "trace_hint":
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


ADAPTIVE = ["strategy=adaptive", "curriculum.floor=1.0",  # uniform draws, whatever the pass rates: a known batch
            "strategy.rescue_after=0", "strategy.rescue_size=2", "strategy.rescue_budget=4",
            "strategy.min_group=2", "strategy.max_group=4",  # 16 rollouts: 12 unhinted (2-4 each), 4 for rescues
            "strategy.pooled_prior=false"]  # unseen questions at 0.5, whatever their level's other questions did


def _two_solved_two_unanswerable():
    """A call for the coordinator actor: of the next draw, the last two questions look reliably solved in the
    pass-rate table and the first two get a gold nothing can match (their unhinted groups all fail). It returns
    the draw. A closure, so Ray ships it by value."""
    def prepare(c) -> list[str]:
        state = c.sampler.state_dict()
        qids = c.sampler.sample(c.cfg.rl.prompt_batch)
        c.sampler.load_state_dict(state)
        for q in qids[2:]:
            for _ in range(3):
                c.sampler.update(q, 8, 8)
        for q in qids[:2]:
            c.answers[c.row_of[q]], c.choices[c.row_of[q]] = "-31415926535", []
        return qids

    return prepare


def test_adaptive_allocates_by_need_and_rescues_all_fail_groups_in_a_real_step(ray_local, smoke_run, smoke_base,
                                                                               tmp_path):
    from synergy_ray.config import load_config
    from synergy_ray.coordinator import Coordinator
    from synergy_ray.strategies import build

    cfg0, prepared = smoke_run
    cfg = load_config("configs/smoke_cpu.yaml", [f"run.output_dir={cfg0.run.output_dir}", *BASE, *ADAPTIVE])
    handle = ray_local.remote(Coordinator).options(num_cpus=0).remote(
        cfg, str(smoke_base), str(prepared.train_path), str(tmp_path), build(cfg))
    try:
        qids = ray_local.get(handle.__ray_call__.remote(_two_solved_two_unanswerable()))
        stats = ray_local.get(handle.step.remote())
        counts = ray_local.get(handle.__ray_call__.remote(lambda c: {q: c.sampler.table._counts[q] for q in qids}))
        budget = ray_local.get(handle.__ray_call__.remote(lambda c: (c.strategy.kept, c.strategy.carried)))
    finally:
        ray_local.get(handle.shutdown.remote())
        ray_local.kill(handle)
    # allocation: the two unseen (p = 0.5) questions get the most, the two solved ones the minimum; 12 in all
    assert stats.group_sizes == [4, 4, 2, 2] and stats.num_rollouts == 12
    # rescue: both all-fail questions got a hinted subgroup of 2 from the 4 rollouts kept for rescues
    assert stats.counters.all_failed_groups >= 2
    assert stats.counters.hinted_prompts == 2 and stats.counters.rescue_rollouts == 4 == stats.hinted_rollouts
    assert stats.sampled_tokens >= 12 + 4  # every rollout samples at least its end token
    assert budget == (0, 0)  # the coordinator reported the spend: all 4 kept were spent, none carried
    # nothing dropped or lost, and the difficulty table saw only the unhinted 4 of each failed question
    assert stats.counters.dropped_too_long == 0 and stats.counters.lost_rollouts == 0
    assert [tuple(counts[q]) for q in qids[:2]] == [(0.0, 4.0), (0.0, 4.0)]
    assert stats.learner.policy_tokens > 0 and stats.sync_logprob_gap < 2e-3
