"""Building a vLLM engine from the config: one set of engine arguments for the generators and the evaluator
(`build_llm`) and for Serve (`build_async_engine`), and stopping one now (`release_llm`).

The CPU/GPU difference is only in which vLLM package is installed and in the memory knobs the config sets
(`gpu_memory_utilization` on GPUs, `cpu_kvcache_space_gib` on CPUs via VLLM_CPU_KVCACHE_SPACE).
"""

from __future__ import annotations

import os
from typing import Any

from synergy_ray.config import RolloutConfig
from synergy_ray.console import quiet

IMAGES_PER_PROMPT = 1  # every supported data set has one image per question; Serve refuses more


def engine_kwargs(model_path: str, rollout: RolloutConfig, dtype: str = "float32", seed: int = 0,
                  trust_remote_code: bool = False) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        model=model_path, dtype=dtype, seed=seed, trust_remote_code=trust_remote_code,
        enforce_eager=rollout.enforce_eager, max_num_seqs=rollout.max_num_seqs,
        gpu_memory_utilization=rollout.gpu_memory_utilization, limit_mm_per_prompt={"image": IMAGES_PER_PROMPT},
    )
    if rollout.max_model_len is not None:
        kwargs["max_model_len"] = rollout.max_model_len

    if quiet():
        kwargs["use_tqdm_on_load"] = False  # vLLM's weight-loading bar ignores TQDM_DISABLE
    return kwargs


def build_llm(model_path: str, rollout: RolloutConfig, dtype: str = "float32", seed: int = 0,
              trust_remote_code: bool = False, inline: bool = False, **extra: Any):
    """A `vllm.LLM` for `model_path`. Call under an `if __name__ == "__main__":` guard or inside an actor.

    `inline`: the engine core and its one worker run in this process (`rollout.inline_engine`, read by the
    generators): vLLM reads the switch from the environment, so it stays set for this process, which is why
    only a process that holds one engine for its life (a generator actor) asks for it."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(rollout.cpu_kvcache_space_gib))
    if inline:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        extra.setdefault("distributed_executor_backend", "uni")
    from vllm import LLM

    return LLM(**engine_kwargs(model_path, rollout, dtype, seed, trust_remote_code), **extra)


def build_async_engine(model_path: str, rollout: RolloutConfig, dtype: str = "float32", seed: int = 0,
                       trust_remote_code: bool = False):
    """A `vllm.AsyncLLMEngine` with the same settings as `build_llm`, for serving: concurrent requests are
    batched continuously by the engine instead of waiting for each other."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(rollout.cpu_kvcache_space_gib))
    from vllm import AsyncEngineArgs, AsyncLLMEngine

    args = AsyncEngineArgs(**engine_kwargs(model_path, rollout, dtype, seed, trust_remote_code),
                           disable_log_stats=True)
    return AsyncLLMEngine.from_engine_args(args)


def release_llm(llm: Any) -> None:
    """Stop a vLLM engine's core process now instead of at garbage collection, and free cached GPU memory.

    vLLM 0.32's `LLM` has no shutdown method of its own; its engine-core client has one.
    """
    engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if engine_core is not None:
        engine_core.shutdown()
    del llm
    import gc

    import torch

    gc.collect()

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
