"""`{run_dir}` in a config's strings is the run directory, so a run's own model follows run.output_dir."""

from synergy_ray.config import load_config


def test_run_dir_token_follows_output_dir_and_name(tmp_path):
    cfg = load_config("configs/smoke_cpu.yaml", [f"run.output_dir={tmp_path}", "run.name=other"])
    assert cfg.model.path == f"{tmp_path}/other/model_init"
    assert load_config("configs/demo_cpu.yaml").model.path == "runs/demo/model_init"  # the default place


def test_an_explicit_path_is_kept(tmp_path):
    cfg = load_config("configs/smoke_cpu.yaml", [f"run.output_dir={tmp_path}", "model.path=/models/m"])
    assert cfg.model.path == "/models/m"
