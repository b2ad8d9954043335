import json

from synergy_ray.run.compare import credit_seconds, side_by_side_order, strategy_config, write_outputs
from synergy_ray.config import load_config
from synergy_ray.core.eval_stats import Completion, score_questions, summarize_by_level
from synergy_ray.evaluation.evaluator import EvalReport


def _report(name, correct_by_level):
    rows = [{"id": f"q{lv}", "steps": lv, "level": lv, "answer": "1", "choices": []} for lv in correct_by_level]
    samples = [[Completion("<think>x</think>\\boxed{1}" if i < n else "\\boxed{2}", 5, "stop") for i in range(4)]
               for n in correct_by_level.values()]
    results = score_questions(rows, samples, 0.9, 0.1, ["wait"])
    return EvalReport(name, "m", 4, 0.6, 0.95, 20, 64, results, summarize_by_level(results, "steps"),
                      summarize_by_level(results, "level"), 1.0, 1.0)


def test_strategy_configs_fit_the_run():
    cfg = load_config("configs/demo_cpu.yaml")
    assert strategy_config(cfg, "progressive").strategy.schedule_steps == cfg.rl.steps
    two = strategy_config(cfg, "two_stage").strategy
    assert two.rl_max_tokens + cfg.data.max_prompt_tokens <= cfg.rollout.max_model_len


def test_table_json_and_plot(tmp_path):
    base = _report("base", {1: 4, 2: 2, 3: 0})
    rl = _report("rl", {1: 4, 2: 3, 3: 1})
    write_outputs([base, rl], {"rl": 12.0}, tmp_path)
    rows = json.loads((tmp_path / "compare.json").read_text())
    assert [r["model"] for r in rows] == ["base", "rl"]
    assert (rows[1]["L2"], rows[1]["L3"], rows[1]["L4"]) == (75.0, 25.0, None)
    assert abs(rows[1]["all"] - (100 + 75 + 25) / 3) < 1e-9
    md = (tmp_path / "compare.md").read_text()
    assert "| rl | 100.0 | 75.0 | 25.0 | - | - | 66.7 |" in md
    assert (tmp_path / "gain_over_base.png").stat().st_size > 1000


def test_side_by_side_starts_a_strategy_once_the_ones_it_builds_on_finished():
    names = load_config("configs/smoke_cpu.yaml").compare.strategies
    first = side_by_side_order(names, finished=set(), started=set())
    assert first == ["sft", "rl", "adaptive", "interleaved", "progressive"]  # from the base alone
    started = set(first)
    assert side_by_side_order(names, finished={"rl"}, started=started) == ["data_mix"]
    assert side_by_side_order(names, finished={"rl", "sft"}, started=started | {"data_mix"}) == ["merge", "two_stage"]
    # A strategy it builds on that is not compared is trained inside its own task instead of waited for.
    assert side_by_side_order(["merge", "adaptive"], finished=set(), started=set()) == ["merge", "adaptive"]


def test_compare_refuses_unknown_or_repeated_strategies():
    import pytest

    from synergy_ray.config import ConfigError

    for bad in ("[rl,bogus]", "[rl,rl]", "[]"):
        with pytest.raises(ConfigError, match=r"compare\.strategies"):
            load_config("configs/smoke_cpu.yaml", [f"compare.strategies={bad}"])


def test_a_strategy_time_reaches_the_rows_it_made_under_other_names():
    seconds = {"base": 200.0}
    credit_seconds(seconds, "rl", {"rl": None}, 230.0)
    credit_seconds(seconds, "merge", {"merge_linear_0.25": None, "merge_linear_0.5": None}, 33.0)
    credit_seconds(seconds, "two_stage", {}, 5.0)  # every model reused: nothing new evaluated
    assert seconds == {"base": 200.0, "rl": 230.0, "merge": 33.0, "merge_linear_0.25": 33.0,
                       "merge_linear_0.5": 33.0, "two_stage": 5.0}


def test_variants_run_under_their_own_names_and_seeds_repeat_only_grpo_from_base():
    import pytest

    from synergy_ray.config import ConfigError
    from synergy_ray.run.compare import seeded
    from synergy_ray.strategies import build

    cfg = load_config("configs/demo_cpu.yaml", [
        "compare.strategies=[sft,rl,adaptive,two_stage,rescue_only]", "compare.seeds=3",
        "compare.variants={rescue_only: {name: adaptive, budget: false, curriculum: hardness}}"])
    variant = strategy_config(cfg, "rescue_only").strategy
    assert (variant.name, variant.budget, variant.curriculum, variant.rescue) == ("adaptive", False, "hardness", True)
    assert [p.makes for p in build(strategy_config(cfg, "rescue_only")).phases] == ["adaptive"]  # renamed in the run
    assert seeded(cfg) == ["rl", "adaptive", "rescue_only"]  # sft and two_stage are made once
    assert side_by_side_order(["sft", "rescue_only"], set(), set(), cfg.compare.variants) == ["sft", "rescue_only"]
    for bad, field in [("{rl: {name: rl}}", "compare.variants.rl"),
                       ("{x: {name: adaptive, budget: maybe}}", "compare.variants.x"),
                       ("{x: {name: nothing}}", "compare.variants.x")]:
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_config("configs/demo_cpu.yaml", [f"compare.variants={bad}", "compare.strategies=[rl,x]"])
