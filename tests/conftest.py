"""Shared fixtures: one tiny VLM per test session, built into a temporary directory."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    import shutil

    has_gpu = shutil.which("nvidia-smi") is not None
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory):
    from synergy_ray.config import TinyVLMConfig
    from synergy_ray.model.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(TinyVLMConfig(), tmp_path_factory.mktemp("tiny_vlm"))


@pytest.fixture(scope="session")
def vllm_engine(tiny_vlm_dir):
    """One vLLM-CPU engine over the tiny VLM for the whole session (start-up costs 30-60 s here)."""
    from vllm import LLM

    from synergy_ray.weight_sync import engine_weight_transfer_kwargs

    llm = LLM(
        model=str(tiny_vlm_dir), dtype="float32", max_model_len=512, enforce_eager=True, max_num_seqs=32,
        limit_mm_per_prompt={"image": 1}, seed=0, **engine_weight_transfer_kwargs(),
    )
    yield llm
    del llm


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the session, on this machine's cores."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session", autouse=True)
def no_shm_left():
    """The suite leaves no /dev/shm behind either: what its engines never unlinked is removed at the end,
    as `synergy-ray` commands do (`leftovers.none_left`)."""
    from synergy_ray.processes.leftovers import none_left

    with none_left():
        yield


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke config's model and data, prepared once under a temporary run directory."""
    from synergy_ray.run import pipeline
    from synergy_ray.config import load_config

    root = tmp_path_factory.mktemp("smoke")
    cfg = load_config(
        "configs/smoke_cpu.yaml", [f"run.output_dir={root}", f"model.path={root}/model_init"]
    )
    return cfg, pipeline.prepare(cfg)


@pytest.fixture(scope="session")
def smoke_base(ray_local, smoke_run):
    """A base model for RL tests: the smoke model warmed up on short answers until it answers in format,
    so rewards vary within a group and GRPO has a signal (a random model scores 0 everywhere)."""
    from synergy_ray.run import stages

    cfg, prepared = smoke_run
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={
        "make_base": cfg.model.make_base.model_copy(update={"epochs": 25, "lr": 3e-3})})})
    return stages.make_base(cfg, prepared)
