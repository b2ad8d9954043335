"""Connecting to Ray: an embedded local Ray by default, a cluster when the config or RAY_ADDRESS names one."""

from __future__ import annotations

import os

from synergy_ray.config import SynergyConfig


def connect(cfg: SynergyConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = cfg.cluster.address or os.environ.get("RAY_ADDRESS")
    # Workers import synergy_ray from the working directory's checkout when it is not installed there.
    from synergy_ray.console import runtime_env_hook, worker_env

    runtime_env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "VLLM_CPU_KVCACHE_SPACE":
                                str(cfg.rollout.cpu_kvcache_space_gib), **worker_env()}, **runtime_env_hook()}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    else:
        ray.init(num_cpus=cfg.cluster.num_cpus, runtime_env=runtime_env, include_dashboard=False,
                 log_to_driver=True)
    from synergy_ray.leftovers import stop_on_sigterm

    stop_on_sigterm()  # ray.init replaced it with its own (sys.exit, skipping our message)
