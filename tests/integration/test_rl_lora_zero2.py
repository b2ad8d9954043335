"""The RL loop with LoRA adapters over two ZeRO-2 learner ranks: merged weights (W + scale * B @ A) go to the
generator through the same bucketed path, and vLLM agrees with the learner after every sync."""

import pytest
import torch

LORA_RL = [
    "rl.steps=3", "rl.prompt_batch=4", "rl.mini_batch=4", "rollout.group_size=4", "rollout.max_tokens=48",
    "rollout.num_generators=1", "rollout.max_generators=1", "cluster.cpus_per_generator=0.5",
    "cluster.cpus_per_learner=0.25", "learner.lr=1e-2", "rl.kl_coef=0", "learner.micro_batch_size=4",
    "learner.num_workers=2", "learner.zero_stage=2", "learner.gradient_checkpointing=true",
    "model.lora.rank=8", "model.lora.alpha=16", "model.lora.target_modules=[q_proj, v_proj]",
]


@pytest.fixture(scope="module")
def lora_run(ray_local, smoke_run, smoke_base, tmp_path_factory):
    from synergy_ray.config import load_config
    from synergy_ray.coordinator import Coordinator

    cfg0, prepared = smoke_run
    cfg = load_config("configs/smoke_cpu.yaml", [f"run.output_dir={cfg0.run.output_dir}",
                                                 f"model.path={prepared.model_path}", *LORA_RL])
    work = tmp_path_factory.mktemp("rl_lora")
    handle = ray_local.remote(Coordinator).options(num_cpus=0).remote(
        cfg, str(smoke_base), str(prepared.train_path), str(work))
    yield handle, work
    ray_local.get(handle.shutdown.remote())
    ray_local.kill(handle)


def test_lora_two_ranks_sync_after_every_step_and_export_merges(lora_run, ray_local, smoke_base):
    from safetensors.torch import load_file

    handle, work = lora_run
    history = ray_local.get(handle.run.remote(3))
    assert [h["weight_version"] for h in history] == [1, 2, 3]
    for h in history:
        assert h["sync_logprob_gap"] is not None and h["sync_logprob_gap"] < 2e-3, h["sync_logprob_gap"]
    export = work / "export"
    ray_local.get(handle.export.remote(str(export)))
    base, trained = load_file(str(smoke_base / "model.safetensors")), load_file(str(export / "model.safetensors"))
    assert base.keys() == trained.keys()  # a plain checkpoint: adapters merged, no lora_ names
    changed = {n for n in base if not torch.equal(base[n], trained[n])}
    assert changed and all(("q_proj" in n or "v_proj" in n) for n in changed), sorted(changed)[:5]
