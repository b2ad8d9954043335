import subprocess
import sys
import time
from pathlib import Path

import pytest

from synergy_ray.config import (
    ConfigError, InterleavedStrategy, ProgressiveStrategy, RLStrategy, SynergyConfig, apply_overrides,
    load_config, write_resolved,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILES = sorted((ROOT / "configs").rglob("*.yaml"))


def test_there_are_configs_for_demo_smoke_and_every_paper_strategy():
    names = {p.relative_to(ROOT / "configs").as_posix() for p in CONFIG_FILES}
    assert {"demo_cpu.yaml", "smoke_cpu.yaml"} <= names
    for strategy in ("sft", "rl", "two_stage", "interleaved", "progressive", "data_mix", "merge", "adaptive"):
        assert f"paper/qwen25vl7b_{strategy}.yaml" in names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_config_file_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, SynergyConfig)
    if path.parent.name == "paper":
        # The paper's RL setting (PAPER.md), whichever strategy the file picks.
        assert cfg.model.path == "Qwen/Qwen2.5-VL-7B-Instruct"
        assert (cfg.learner.lr, cfg.rl.prompt_batch, cfg.rl.mini_batch, cfg.rollout.group_size) == (1e-6, 128, 64, 8)
        assert (cfg.rl.kl_coef, cfg.reward.accuracy_weight, cfg.reward.format_weight) == (0.005, 0.9, 0.1)
        assert (cfg.eval.temperature, cfg.eval.top_p, cfg.eval.top_k) == (0.6, 0.95, 20)
        assert cfg.strategy.name == path.stem.removeprefix("qwen25vl7b_")


def test_inherit_merges_sections_and_override_wins():
    cfg = load_config(ROOT / "configs/smoke_cpu.yaml", ["rl.kl_coef=0.01"])
    assert cfg.run.name == "smoke"  # from smoke
    assert cfg.learner.zero_stage == 2  # inherited from demo
    assert cfg.rl.kl_coef == 0.01  # override


def test_strategy_shorthand_and_override_into_it():
    cfg = load_config(None, ["strategy=interleaved", "strategy.sft_weight=0.5"])
    assert isinstance(cfg.strategy, InterleavedStrategy) and cfg.strategy.sft_weight == 0.5
    assert isinstance(load_config(None).strategy, RLStrategy)


def test_override_values_are_parsed_as_yaml():
    tree = apply_overrides({}, ["learner.lr=1e-6", "merge.sweep=[0, 0.5]", "run.name=x=y"])
    assert tree["learner"]["lr"] in ("1e-6", 1e-6)  # pydantic turns either into the float
    assert tree["merge"]["sweep"] == [0, 0.5]
    assert tree["run"]["name"] == "x=y"


@pytest.mark.parametrize(
    "override, field, words",
    [
        ("learner.lr=abc", "learner.lr", "valid number"),
        ("learner.lrr=1", "learner.lrr", "Extra inputs"),
        ("rollout.group_size=1", "rollout.group_size", "greater than or equal to 2"),
        ("rl.mini_batch=5", "rl.mini_batch", "multiple of mini_batch"),
        ("strategy=nope", "strategy", "does not match"),
        ("strategy.sft_weight=1", "strategy.sft_weight", "Extra inputs"),  # rl has no sft_weight
        ("model.build_tiny.text_heads=8", "model.build_tiny.text_heads", "head_dim"),
        ("rollout.min_generators=3", "rollout.num_generators", "min_generators"),
        ("rollout.min_tokens=300", "rollout.min_tokens", "exceeds max_tokens"),
    ],
)
def test_invalid_values_name_the_field(override, field, words):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs/demo_cpu.yaml", [override])
    line = str(err.value).splitlines()[1].strip()
    assert line.startswith(field + ":") and words in line


def test_adaptive_budget_must_fit_the_group_bounds_with_and_without_the_rescue_reserve():
    adaptive = ["rl.prompt_batch=4", "rl.mini_batch=4", "rollout.group_size=4", "strategy=adaptive",
                "strategy.rescue_size=2", "strategy.rescue_budget=4", "strategy.min_group=2"]
    # 12 unhinted on a rescuing step, 16 on one without: both fit 4 questions at 2-4 (a carry beyond 16 is dropped)
    assert load_config(None, [*adaptive, "strategy.max_group=4"]).strategy.max_group == 4
    with pytest.raises(ConfigError, match=r"strategy.rescue_budget: .* gives 12-16 unhinted .* at 2-3 each"):
        load_config(None, [*adaptive, "strategy.max_group=3"])


def test_progressive_schedule_past_the_last_step_is_rejected():
    with pytest.raises(ConfigError, match=r"strategy.schedule_steps: .* ends after the run's last step rl.steps"):
        load_config(None, ["rl.steps=10", "strategy=progressive", "strategy.schedule_steps=20"])
    ok = load_config(None, ["rl.steps=20", "strategy=progressive", "strategy.schedule_steps=20"])
    assert isinstance(ok.strategy, ProgressiveStrategy)


def test_bad_files_are_config_errors(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "broken.yaml").write_text("run: {name: [\n")
    (tmp_path / "cycle.yaml").write_text("inherit: cycle.yaml\n")
    for name, words in [("list.yaml", "mapping"), ("broken.yaml", "not valid YAML"), ("missing.yaml", "No such file"),
                        ("cycle.yaml", "inherit cycle")]:
        with pytest.raises(ConfigError, match=words):
            load_config(tmp_path / name)


def test_config_is_frozen_and_resolved_dump_round_trips(tmp_path):
    cfg = load_config(ROOT / "configs/smoke_cpu.yaml")
    with pytest.raises(Exception):
        cfg.rl.steps = 3  # type: ignore[misc]
    path = write_resolved(cfg, tmp_path)
    assert load_config(path) == cfg


def test_cli_rejects_bad_value_fast_before_heavy_imports():
    # The check: exit 2 naming learner.lr in under 5 s, and nothing heavy imported on the way.
    code = (
        "import sys; from synergy_ray.cli import main; rc = main(['train', 'configs/demo_cpu.yaml', 'learner.lr=abc']);"
        "heavy = [m for m in ('torch', 'ray', 'vllm', 'deepspeed', 'transformers') if m in sys.modules];"
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2
    assert "learner.lr" in proc.stderr
    assert "HEAVY []" in proc.stdout
    assert elapsed < 5


def test_async_mode_needs_the_importance_sampling_correction():
    with pytest.raises(ConfigError, match=r"rl\.tis_cap"):
        load_config("configs/smoke_cpu.yaml", ["rl.async_mode=true"])
    assert load_config("configs/smoke_cpu.yaml", ["rl.async_mode=true", "rl.tis_cap=2"]).rl.async_mode


def test_async_mode_refuses_sleeping_engines():
    with pytest.raises(ConfigError, match=r"rl\.async_mode"):
        load_config("configs/smoke_cpu.yaml", ["rl.async_mode=true", "rl.tis_cap=2",
                                               "rollout.sleep_during_training=true"])
