"""Two learner ranks on two nodes of a simulated cluster (`ray.cluster_utils.Cluster`), one generator, with LoRA
adapters under ZeRO-2 and gradient checkpointing: merged weights (W + scale * B @ A) cross nodes as Ray objects.

Three one-CPU nodes, one CPU per actor: no node holds both learner ranks, so the plan puts rank 0 on the head,
rank 1 on the second node and the generator on the third;
the process group meets at the address rank 0 chose on its own node. Run by test_elastic_pool.py in its own
process (see elastic_pool_scenario.py for why). Prints one `RESULT <json>` line.

usage: python learner_nodes_scenario.py MODEL_DIR TRAIN_PATH WORK_DIR OUTPUT_DIR
"""

import json
import sys


def main(model_dir: str, train_path: str, work: str, output_dir: str) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from synergy_ray.config import load_config
    from synergy_ray.coordinator import Coordinator
    from synergy_ray.strategies import build

    cfg = load_config("configs/smoke_cpu.yaml", [
        f"run.output_dir={output_dir}", "rl.prompt_batch=4", "rl.mini_batch=2", "rollout.group_size=4",
        "rollout.max_tokens=32", "rollout.num_generators=1", "rollout.max_generators=1",
        "cluster.cpus_per_learner=1", "cluster.cpus_per_generator=1", "rl.kl_coef=0.01",
        "learner.micro_batch_size=4", "learner.num_workers=2", "learner.zero_stage=2", "learner.lr=1e-2",
        "learner.gradient_checkpointing=true", "model.lora.rank=8", "model.lora.alpha=16",
        "model.lora.target_modules=[q_proj, v_proj]",
    ])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false",
                                                                    "VLLM_CPU_KVCACHE_SPACE": "1"}})
        coordinator = ray.remote(Coordinator).options(num_cpus=0).remote(cfg, model_dir, train_path, work, build(cfg))
        try:
            out = {"placement": ray.get(coordinator.placement_nodes.remote())}
            out["steps"] = [{"version": s["weight_version"], "gap": s["sync_logprob_gap"],
                             "updates": s["learner"]["updates"]} for s in ray.get(coordinator.run.remote(3))]
            ray.get(coordinator.export.remote(f"{work}/export"))
            out["changed"] = _changed_tensors(model_dir, f"{work}/export")
        finally:
            ray.get(coordinator.shutdown.remote())
            ray.kill(coordinator)
        return out
    finally:
        ray.shutdown()
        cluster.shutdown()


def _changed_tensors(before: str, after: str) -> list[str]:
    import torch
    from safetensors.torch import load_file

    a, b = load_file(f"{before}/model.safetensors"), load_file(f"{after}/model.safetensors")
    if a.keys() != b.keys():  # adapters left in, or tensors missing: not a plain checkpoint
        return ["<different names>"]
    return sorted(n for n in a if not torch.equal(a[n], b[n]))


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:5])), flush=True)
