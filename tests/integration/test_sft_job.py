"""Long-CoT SFT as a real Ray Train job with DeepSpeed on CPU (gloo): learning, checkpoints, resume, export."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from synergy_ray.model.loading import is_vision_parameter
from synergy_ray.sft_job import run_sft, spec_from_config


def _weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(path) / "model.safetensors"))


def _assert_learned(history, min_drop=0.1):
    losses = [row["loss"] for row in history]
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < first - min_drop, f"loss did not fall: {losses}"


def test_zero2_two_workers_resume_after_failure_and_export_loads_in_vllm(ray_local, smoke_run, tmp_path):
    cfg, prepared = smoke_run
    export = tmp_path / "sft_model"
    spec = spec_from_config(
        cfg, prepared.model_path, str(prepared.train_path), str(export), target="short_solution",
        lr=3e-3, epochs=2, batch_size=8, micro_batch_size=4, zero_stage=2, checkpoint_every_steps=1,
        num_workers=2, max_failures=1, crash_at_step=3,
    )
    result = run_sft(spec, storage_dir=str(tmp_path / "ray_train"))

    # The first attempt crashed at step 3 (marker written), the second resumed from step 2's checkpoint.
    assert (tmp_path / ".sft_model.crashed").exists()
    steps = [row["step"] for row in result.history]
    assert steps == list(range(1, 11)), steps  # 2 epochs x 5 steps, each step once: no redo, no gap
    _assert_learned(result.history)
    ckpt = Path(result.checkpoint_path)
    assert (ckpt / "latest").read_text().strip() == "sft"
    assert any(p.name.startswith("zero_pp_rank_1") for p in (ckpt / "sft").iterdir())  # rank 1's optimiser shard

    init, trained = _weights(prepared.model_path), _weights(export)
    assert init.keys() == trained.keys()
    for name in init:
        if is_vision_parameter(name):
            assert torch.equal(init[name], trained[name]), f"frozen {name} changed"
    assert any(not torch.equal(init[n], trained[n]) for n in init if "lm_head" in n)

    from PIL import Image
    from vllm import LLM, SamplingParams

    from synergy_ray.model.prompting import prompt_text
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(export)
    llm = LLM(model=str(export), dtype="float32", max_model_len=512, enforce_eager=True, max_num_seqs=8,
              limit_mm_per_prompt={"image": 1}, seed=0)
    request = {"prompt": prompt_text(processor, "What is the red digit?"),
               "multi_modal_data": {"image": Image.new("RGB", (32, 32))}}
    (out,) = llm.generate([request], SamplingParams(n=2, max_tokens=16, temperature=1.0), use_tqdm=False)
    assert len(out.outputs) == 2 and all(len(c.token_ids) > 0 for c in out.outputs)
    del llm


@pytest.mark.parametrize("lora", [False, True], ids=["zero3-full", "zero2-lora"])
def test_single_worker_zero3_and_lora(ray_local, smoke_run, tmp_path, lora):
    cfg, prepared = smoke_run
    export = tmp_path / "model"
    changes = dict(target="short_solution", lr=3e-3 if not lora else 1e-2, epochs=2, batch_size=8,
                   micro_batch_size=8, zero_stage=3 if not lora else 2, num_workers=1, cpus_per_worker=2)
    if lora:
        changes["lora"] = {"rank": 8, "alpha": 16.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    spec = spec_from_config(cfg, prepared.model_path, str(prepared.train_path), str(export), **changes)
    result = run_sft(spec, storage_dir=str(tmp_path / "ray_train"))
    _assert_learned(result.history, min_drop=0.05)
    init, trained = _weights(prepared.model_path), _weights(export)
    assert init.keys() == trained.keys()  # LoRA merged back: a plain checkpoint vLLM can load
    changed = {n for n in init if not torch.equal(init[n], trained[n])}
    assert changed and not any(is_vision_parameter(n) for n in changed)
    if lora:  # only the adapted projections moved
        assert all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed), sorted(changed)[:5]
