"""`plan` on the repository's configs, and `submit`/`jobs` refusing bad input before any cluster is contacted."""

import os
from pathlib import Path

import pytest

from synergy_ray.cluster import jobs
from synergy_ray.cli import main

ROOT = Path(__file__).resolve().parents[2]
PAPER = sorted((ROOT / "configs" / "paper").glob("qwen25vl7b_*.yaml"))
UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing listens there


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_configs_fit_one_8gpu_node(path, capsys):
    assert main(["plan", str(path), "--cluster", "1x8gpu:96cpu"]) == 0
    out = capsys.readouterr().out
    assert "GPU 7: learner/7" in out  # ZeRO-3 over all eight GPUs
    assert "GPU 0: learner/0 (0.5 GPU, 4 CPU, bundle 0), generator/0 (0.5 GPU, 4 CPU, bundle 0)" in out
    assert "spare capacity: 4 more generator(s)" in out  # room for the pool to grow to max_generators (8)


def test_paper_sft_job_uses_every_gpu(capsys):
    assert main(["plan", str(ROOT / "configs/paper/qwen25vl7b_sft.yaml"), "--cluster", "1x8gpu:96cpu"]) == 0
    out = capsys.readouterr().out.split("== SFT job")[1]
    assert all(f"GPU {g}: sft-worker/{g} (1 GPU, 8 CPU" in out for g in range(8))


def test_paper_config_refused_on_half_a_node(capsys):
    assert main(["plan", str(ROOT / "configs/paper/qwen25vl7b_rl.yaml"), "--cluster", "1x4gpu"]) == 2
    err = capsys.readouterr().err
    assert "needs 8 GPUs for max(8 learner(s), 4 generator(s)) colocated x 1, cluster has 4" in err


def test_disaggregated_overflow_message(capsys):
    overrides = ["cluster.layout=disaggregated", "learner.num_workers=1", "cluster.gpus_per_learner=4",
                 "rollout.num_generators=5", "rollout.max_generators=8"]
    assert main(["plan", str(ROOT / "configs/paper/qwen25vl7b_rl.yaml"), *overrides, "--cluster", "1x8gpu"]) == 2
    assert "needs 9 GPUs for 1 learner(s) x 4 + 5 generator(s) x 1, cluster has 8" in capsys.readouterr().err


def test_demo_config_on_this_machine(capsys):
    assert main(["plan", str(ROOT / "configs/demo_cpu.yaml"), "--cluster", "1x2cpu"]) == 0
    assert "no GPU: learner/0 (0 GPU, 1 CPU, bundle 0), generator/0 (0 GPU, 1 CPU, bundle 1)" in capsys.readouterr().out
    assert main(["plan", str(ROOT / "configs/demo_cpu.yaml"), "--cluster", "1x1cpu"]) == 2


def test_plan_rejects_bad_shape_and_bad_config(capsys):
    assert main(["plan", str(ROOT / "configs/demo_cpu.yaml"), "--cluster", "eight gpus"]) == 2
    assert "--cluster: cluster shape 'eight gpus'" in capsys.readouterr().err
    assert main(["plan", str(ROOT / "configs/demo_cpu.yaml"), "cluster.layout=colocated",
                 "cluster.gpus_per_learner=1", "--cluster", "1x8gpu"]) == 2
    assert "cluster.gpus_per_generator" in capsys.readouterr().err


def test_submit_validates_the_config_before_contacting_ray(capsys):
    code = main(["submit", str(ROOT / "configs/smoke_cpu.yaml"), "learner.lr=abc", "--address", UNREACHABLE])
    assert code == 2
    err = capsys.readouterr().err
    assert "learner.lr" in err and "cannot reach" not in err


def test_submit_refuses_a_config_outside_the_working_dir(tmp_path, capsys):
    outside = tmp_path / "c.yaml"
    outside.write_text("run: {name: x}\n")
    assert main(["submit", str(outside), "--address", UNREACHABLE]) == 2
    assert "must lie inside the job's working directory" in capsys.readouterr().err


def test_submit_refuses_unknown_extra_and_reserved_env(capsys):
    cfg = str(ROOT / "configs/smoke_cpu.yaml")
    assert main(["submit", cfg, "--pip-extras", "tpu", "--address", UNREACHABLE]) == 2
    assert "--pip-extras tpu: not an extra" in capsys.readouterr().err
    assert main(["submit", cfg, "--env", "VLLM_CPU_KVCACHE_SPACE=4", "--address", UNREACHABLE]) == 2
    assert "change the config field instead" in capsys.readouterr().err


def test_unreachable_cluster_is_its_own_exit_code(capsys):
    assert main(["jobs", "status", "raysubmit_x", "--address", UNREACHABLE]) == 4
    assert f"cannot reach the Ray dashboard at {UNREACHABLE}" in capsys.readouterr().err


def test_job_entrypoint_and_runtime_env():
    s = jobs.Submission(command="train", config="configs/smoke_cpu.yaml", overrides=("rl.steps=1", "run.name=a b"),
                        working_dir=ROOT, env_vars={"WANDB_MODE": "offline"}, pip_extras=("gpu",))
    assert jobs.entrypoint(s) == "python -m synergy_ray.cli train configs/smoke_cpu.yaml rl.steps=1 'run.name=a b'"
    env = jobs.runtime_env(s)
    assert env["working_dir"] == str(ROOT) and {"runs/", ".venv/", ".git/"} <= set(env["excludes"])
    assert env["env_vars"] == {"PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    assert any(r.startswith("vllm>=") for r in env["pip"]) and any(r.startswith("transformers") for r in env["pip"])
    assert not any(r.startswith("ray") for r in env["pip"])  # the cluster's own Ray, never a second one


def test_address_resolution(monkeypatch):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # a GCS address is not a dashboard URL
    assert jobs.resolve_address(None) == jobs.DEFAULT_ADDRESS
    monkeypatch.setenv("RAY_ADDRESS", "http://10.0.0.1:8265")
    assert jobs.resolve_address(None) == "http://10.0.0.1:8265"
    assert jobs.resolve_address("http://h:1") == "http://h:1"


def test_local_token_is_sent_only_to_a_dashboard_on_this_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    jobs.prepare_auth("http://127.0.0.1:8265")
    assert "RAY_AUTH_MODE" not in os.environ  # no token on this machine: nothing to send
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t" * 32)
    jobs.prepare_auth("http://10.0.0.1:8265")
    assert "RAY_AUTH_MODE" not in os.environ  # a remote cluster never gets the local token unasked
    jobs.prepare_auth("http://localhost:8265")
    assert os.environ["RAY_AUTH_MODE"] == "token"
