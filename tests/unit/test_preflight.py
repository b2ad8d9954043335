"""Refusals before Ray starts: each exits 2 within seconds and names the field (paths, resources, lengths,
a run directory built from other inputs)."""

import json
import time

import pytest

from synergy_ray.run import run_inputs
from synergy_ray.cli import main
from synergy_ray.config import ConfigError, load_config

SMOKE = "configs/smoke_cpu.yaml"


def _refused(capsys, *argv) -> str:
    start = time.perf_counter()
    assert main(list(argv)) == 2
    assert time.perf_counter() - start < 5  # no Ray, no network retries
    return capsys.readouterr().err


@pytest.mark.parametrize("override, field", [
    ("data.source=/nowhere/train.jsonl", "data.source: /nowhere/train.jsonl: no such file"),
    ("data.source=./relative/train", "data.source: ./relative/train: no such file"),
    ("data.image_root=/nowhere", "data.image_root: /nowhere: no such directory"),
])
def test_missing_data_paths_are_named(capsys, tmp_path, override, field):
    assert field in _refused(capsys, "prepare", SMOKE, f"run.output_dir={tmp_path}", override)


def test_missing_model_path_is_named_without_hub_retries(capsys, tmp_path):
    err = _refused(capsys, "train", SMOKE, f"run.output_dir={tmp_path}", "model.build_tiny=null",
                   f"model.path={tmp_path}/no_model")
    assert f"model.path: {tmp_path}/no_model: no such directory" in err
    (tmp_path / "not_a_checkpoint").mkdir()
    err = _refused(capsys, "train", SMOKE, f"run.output_dir={tmp_path}", "model.build_tiny=null",
                   f"model.path={tmp_path}/not_a_checkpoint")
    assert "holds no config.json" in err


def test_output_dir_that_is_a_file_is_named(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    assert "run.output_dir:" in _refused(capsys, "prepare", SMOKE, f"run.output_dir={tmp_path}/file")
    assert "is a file, so" in _refused(capsys, "prepare", SMOKE, f"run.output_dir={tmp_path}/file/runs")


@pytest.mark.parametrize("override, named", [
    ("cluster.num_cpus=1", "cluster.cpus_per_generator"),
    ("sft.cpus_per_worker=64", "sft.cpus_per_worker"),
    ("cluster.gpus_per_learner=64", "cluster.gpus_per_learner"),
])
def test_roles_that_cannot_be_scheduled_locally_are_refused(capsys, monkeypatch, override, named):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    err = _refused(capsys, "check", SMOKE, override)
    assert named in err and "local Ray" in err


def test_a_cluster_address_skips_the_local_resource_check(capsys):
    assert main(["check", SMOKE, "sft.cpus_per_worker=64", "cluster.address=ray://head:10001"]) == 0


@pytest.mark.parametrize("override, field", [
    ("rollout.max_tokens=900", "rollout.max_tokens: 900 + data.max_prompt_tokens (256) exceed rollout.max_model_len"),
    ("data.max_prompt_tokens=1024", "data.max_prompt_tokens: 1024 leaves no room"),
    ("eval.max_tokens=4000", "eval.max_tokens: 4000 + data.max_prompt_tokens (256) exceed the model's limit"),
    ("rollout.max_model_len=4096", "rollout.max_model_len: 4096 exceeds the model's"),
])
def test_lengths_that_cannot_fit_are_refused(capsys, override, field):
    assert field in _refused(capsys, "check", SMOKE, override)


def test_a_run_directory_built_from_other_inputs_is_refused(tmp_path):
    cfg = load_config(SMOKE, [f"run.output_dir={tmp_path}"])
    run_dir = cfg.run_dir.resolve()
    run_inputs.check(cfg, run_dir, "m")  # nothing recorded yet: anything goes
    run_inputs.record(cfg, run_dir, "m")
    run_inputs.check(cfg, run_dir, "m")
    with pytest.raises(ConfigError, match=r"data.seed: .* was built from 0, this config says 5"):
        run_inputs.check(load_config(SMOKE, [f"run.output_dir={tmp_path}", "data.seed=5"]), run_dir, "m")
    with pytest.raises(ConfigError, match=r"model.path: .* was built from 'm', this config says 'other'"):
        run_inputs.check(cfg, run_dir, "other")


def test_a_changed_source_file_is_refused(tmp_path):
    source = tmp_path / "train.jsonl"
    source.write_text(json.dumps({"question": "q", "answer": "1", "image": "a.png"}) + "\n")
    cfg = load_config(SMOKE, [f"run.output_dir={tmp_path}", f"data.source={source}"])
    run_dir = cfg.run_dir.resolve()
    run_inputs.record(cfg, run_dir, "m")
    source.write_text(source.read_text() * 2)
    with pytest.raises(ConfigError, match=r"data.source: .*train.jsonl has changed since"):
        run_inputs.check(cfg, run_dir, "m")


def test_prepare_refuses_a_changed_source_and_keeps_the_resolved_config_true(capsys, tmp_path):
    args = [SMOKE, f"run.output_dir={tmp_path}", f"model.path={tmp_path}/model"]
    assert main(["prepare", *args]) == 0
    resolved = (tmp_path / "smoke" / "config.resolved.yaml").read_text()
    assert main(["prepare", *args, "data.num_per_level=3"]) == 2
    assert "data.num_per_level: " in capsys.readouterr().err
    assert (tmp_path / "smoke" / "config.resolved.yaml").read_text() == resolved  # not rewritten to claim 3
