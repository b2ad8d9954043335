"""Connecting to Ray: an embedded local Ray by default, a cluster when the config or RAY_ADDRESS names one."""

from __future__ import annotations

import logging
import os

from synergy_ray.config import SynergyConfig
from synergy_ray.console import quiet, runtime_env_hook, worker_env
from synergy_ray.processes.leftovers import stop_on_sigterm


def connect(cfg: SynergyConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = cfg.cluster.address or os.environ.get("RAY_ADDRESS")
    # Workers import synergy_ray from the working directory's checkout when it is not installed there.

    runtime_env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "VLLM_CPU_KVCACHE_SPACE":
                                str(cfg.rollout.cpu_kvcache_space_gib), **worker_env()}, **runtime_env_hook()}
    level = logging.WARNING if quiet() else logging.INFO  # "Started a local Ray instance" and the like
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True, logging_level=level)
    else:
        # One node, ours: a node drain leaves the SFT job nowhere to move, so Ray Train's preemption watcher has
        # nothing to do, and its actor makes Ray's core print an error-level line at every SFT stage
        # (ray-project/ray#53727). On a cluster (the branch above) it stays on.
        runtime_env["env_vars"]["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] = "0"
        ray.init(num_cpus=cfg.cluster.num_cpus, runtime_env=runtime_env, include_dashboard=False,
                 log_to_driver=True, logging_level=level)

    stop_on_sigterm()  # ray.init replaced it with its own (sys.exit, skipping our message)
