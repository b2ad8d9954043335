"""The SFT job receives the `model` and `sft` sections, not copies of their fields: a stage's own settings land
in the section they belong to and are validated as the config is; the engine reads them from there."""

from pathlib import Path

import pydantic
import pytest

from synergy_ray.config import LoraConfig, load_config
from synergy_ray.model.training import deepspeed_config
from synergy_ray.sft_job import engine_setup, spec_from_config

ROOT = Path(__file__).resolve().parents[2]


def test_a_stage_changes_land_in_their_sections_and_the_engine_reads_them():
    cfg = load_config(ROOT / "configs/smoke_cpu.yaml", ["sft.gradient_checkpointing=true"])
    spec = spec_from_config(cfg, "m", "d", "e", lr=0.5, batch_size=16, micro_batch_size=2, zero_stage=3,
                            lora={"rank": 4, "target_modules": ["q_proj"]}, target="mix_response", log_every=3)
    assert (spec.sft.lr, spec.sft.batch_size, spec.sft.zero_stage) == (0.5, 16, 3)
    assert spec.sft.gradient_checkpointing and spec.sft.epochs == cfg.sft.epochs  # the rest: the config's
    assert spec.model.lora == LoraConfig(rank=4, target_modules=["q_proj"]) and spec.model.dtype == cfg.model.dtype
    assert (spec.target, spec.log_every, spec.prompt_suffix) == ("mix_response", 3, cfg.data.prompt_suffix)
    assert cfg.sft.lr != 0.5 and cfg.model.lora is None  # the run's config is untouched

    ds = deepspeed_config(engine_setup(spec, world_size=2), world_size=2)
    assert ds["train_micro_batch_size_per_gpu"] == 2 and ds["zero_optimization"]["stage"] == 3
    assert ds["gradient_accumulation_steps"] == 4 and ds["train_batch_size"] == 16  # 2 x 4 x 2 ranks


def test_an_invalid_stage_change_is_rejected_with_its_field():
    cfg = load_config(ROOT / "configs/smoke_cpu.yaml")
    with pytest.raises(pydantic.ValidationError, match="batch_size"):
        spec_from_config(cfg, "m", "d", "e", batch_size=6, micro_batch_size=4)
    with pytest.raises(pydantic.ValidationError, match="lr"):
        spec_from_config(cfg, "m", "d", "e", lr=-1.0)
