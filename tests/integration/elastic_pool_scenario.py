"""The elastic-pool scenario on a multi-node cluster simulated on this machine (`ray.cluster_utils.Cluster`).

Run by tests/integration/test_elastic_pool.py in its own process: the test session's `ray_local` is a
different Ray, and a process can be connected to only one. Prints one `RESULT <json>` line.

usage: python elastic_pool_scenario.py MODEL_DIR TRAIN_PATH WORK_DIR OUTPUT_DIR
"""

import json
import sys
import time


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.5)


def main(model_dir: str, train_path: str, work: str, output_dir: str) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from synergy_ray.config import load_config

    cfg = load_config("configs/smoke_cpu.yaml", [
        f"run.output_dir={output_dir}", "rl.prompt_batch=4", "rl.mini_batch=4", "rollout.group_size=4",
        "rollout.max_tokens=32", "rollout.num_generators=1", "rollout.min_generators=1", "rollout.max_generators=2",
        "rollout.grow_when_generation_share=0",  # grow whenever resources allow: the test is about resources
        "cluster.cpus_per_learner=1", "cluster.cpus_per_generator=1", "learner.lr=1e-3", "rl.kl_coef=0.01",
        "learner.micro_batch_size=8",
    ])
    # The head holds exactly the learner and one generator; a second node has room for one more generator.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    try:
        return _scenario(ray, cluster, cfg, model_dir, train_path, work)
    finally:  # even after a failure: a head left behind would be found by every later `ray.init()` here
        ray.shutdown()
        cluster.shutdown()


def _scenario(ray, cluster, cfg, model_dir: str, train_path: str, work: str) -> dict:
    from synergy_ray.coordinator import Coordinator
    from synergy_ray.strategies import build

    ray.init(address=cluster.address, runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false",
                                                                "VLLM_CPU_KVCACHE_SPACE": "1"}})
    out: dict = {}
    coordinator = ray.remote(Coordinator).options(num_cpus=0).remote(cfg, model_dir, train_path, work, build(cfg))
    try:
        out["pool_start"] = ray.get(coordinator.ensure_pool.remote())
        out["placement"] = ray.get(coordinator.placement_nodes.remote())
        out["steps"] = [_step(ray, coordinator)]

        extra = cluster.add_node(num_cpus=1)
        wait_for(lambda: ray.cluster_resources().get("CPU", 0) >= 3, 60, "added node's CPUs")
        out["pool_after_add"] = ray.get(coordinator.ensure_pool.remote())
        out["gaps_after_add"] = ray.get(coordinator.pool_sync_gaps.remote())  # the new member on version 1
        out["steps"].append(_step(ray, coordinator))

        cluster.remove_node(extra)
        wait_for(lambda: ray.cluster_resources().get("CPU", 0) <= 2, 60, "removed node's CPUs gone")
        out["pool_after_remove"] = ray.get(coordinator.ensure_pool.remote())
        out["steps"].append(_step(ray, coordinator))
        out["gaps_after_remove"] = ray.get(coordinator.pool_sync_gaps.remote())
    finally:
        ray.get(coordinator.shutdown.remote())
        ray.kill(coordinator)
    # Everything the run reserved (its placement groups, the members' own groups) is given back.
    total = ray.cluster_resources().get("CPU", 0)
    wait_for(lambda: ray.available_resources().get("CPU", 0) >= total, 60, "resources freed after the run")
    out["cpus_free_after_kill"] = ray.available_resources().get("CPU", 0)
    out["cpus_total"] = total
    return out


def _step(ray, coordinator) -> dict:
    stats = ray.get(coordinator.step.remote())
    return {"num_rollouts": stats.num_rollouts, "version": stats.weight_version, "gap": stats.sync_logprob_gap,
            "lost": stats.counters.lost_rollouts, "failures": stats.counters.generator_failures,
            "pool": ray.get(coordinator.pool_size.remote())}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:5])), flush=True)
