"""two_stage and data_mix through the pipeline on the smoke config: real Ray Train SFT jobs, vLLM sampling and
evaluation, and the RL loop, at the smallest sizes that still exercise each decision."""

import json

import datasets
import pytest

SMALL = ["rl.steps=1", "rl.prompt_batch=4", "rl.mini_batch=4", "rollout.group_size=4", "cluster.cpus_per_generator=0.5",
         "cluster.cpus_per_learner=0.5", "learner.micro_batch_size=8", "data.val_per_level=2"]


@pytest.fixture()
def run(ray_local, smoke_run, tmp_path):
    from synergy_ray.run import pipeline
    from synergy_ray.config import load_config

    def make(*overrides):
        _, prepared0 = smoke_run
        cfg = load_config("configs/smoke_cpu.yaml", [f"run.output_dir={tmp_path}", f"model.path={prepared0.model_path}",
                                                     *SMALL, *overrides])
        return cfg, pipeline.prepare(cfg)
    return make


def test_two_stage_starts_rl_from_the_best_sft_epoch_by_validation(run, smoke_base):
    from synergy_ray.run import pipeline
    from synergy_ray import strategies

    cfg, prepared = run("strategy=two_stage", "strategy.rl_max_tokens=64", "strategy.val_k=2", "sft.epochs=2")
    assert prepared.val_path is not None and len(datasets.load_from_disk(str(prepared.val_path))) == 10
    clock = pipeline.StageClock(total=2)
    models = {"base": smoke_base}
    strategy = strategies.build(cfg)
    sft, rl = strategy.phases
    [(_, models["sft"])] = pipeline.run_phase(cfg, prepared, strategy, sft, models, clock)
    [(name, rl_model)] = pipeline.run_phase(cfg, prepared, strategy, rl, models, clock)
    selection = json.loads((prepared.run_dir / "sft_selection.json").read_text())
    scores = selection["validation_accuracy"]
    assert [p.rsplit("/", 1)[1] for p in scores] == ["epoch_1", "epoch_2"]
    assert scores[selection["chosen"]] == max(scores.values())  # the first of the best
    assert name == "two_stage" and (rl_model / "config.json").exists()
    steps = (prepared.run_dir / "two_stage_work" / "metrics.jsonl").read_text().splitlines()
    assert len(steps) == 1 and json.loads(steps[0])["response_tokens_mean"] <= 64  # RL ran with rl_max_tokens


def test_data_mix_keeps_correct_samples_adds_traces_and_trains_on_the_mix(run, smoke_base):
    from synergy_ray.run import stages

    cfg, prepared = run("strategy=data_mix", "strategy.samples_per_question=2", "strategy.epochs=1")
    # The warmed-up base stands in for the RL model.
    out = stages.data_mix(cfg, prepared, smoke_base, smoke_base, samples_per_question=2, epochs=1)
    mix = datasets.load_from_disk(str(prepared.run_dir / "data" / "mix"))
    train = datasets.load_from_disk(str(prepared.train_path))
    by_id = {r["id"]: r for r in train}
    traces = sum(r["mix_response"] == by_id[r["id"]]["long_cot"] for r in mix)
    own = len(mix) - traces
    assert traces > 0 and own > 0  # some questions solved by the model, some only by the expert trace
    assert len({r["id"] for r in mix if r["mix_response"] == by_id[r["id"]]["long_cot"]}) == traces
    assert (out / "config.json").exists()


def test_compare_runs_strategies_side_by_side_as_ray_tasks(run, smoke_base, capsys):
    """`compare.parallel`: rl and adaptive each in a Ray task of its own, both started before either ends."""
    from synergy_ray.run.compare import run_side_by_side

    cfg, prepared = run("compare.strategies=[rl,adaptive]", "compare.parallel=true", "eval.k=2")
    models, reports, seconds = {"base": smoke_base}, {}, {}
    run_side_by_side(cfg, prepared, models, reports, seconds)
    assert set(reports) == set(seconds) == {"rl", "adaptive"}
    for name in ("rl", "adaptive"):
        assert (models[name] / "config.json").exists()
        assert (prepared.run_dir / "eval" / f"{name}.json").exists()
        assert len((prepared.run_dir / f"{name}_work" / "metrics.jsonl").read_text().splitlines()) == 1
    log = capsys.readouterr().out
    assert log.index("starting adaptive") < log.index("finished")  # launched together, not one after another
