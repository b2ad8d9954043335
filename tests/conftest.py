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

    llm = LLM(
        model=str(tiny_vlm_dir), dtype="float32", max_model_len=512, enforce_eager=True, max_num_seqs=32,
        limit_mm_per_prompt={"image": 1}, seed=0,
    )
    yield llm
    del llm
