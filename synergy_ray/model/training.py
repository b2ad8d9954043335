"""One training set-up for both trainers (the RL learner and the SFT job): model, freezing, LoRA, gradient
checkpointing, the DeepSpeed engine, learning-rate warm-up, gathering ZeRO-3 parameters, and HF export.

Both trainers build an `EngineSetup` over the `model` section and their own (`learner` for RL, `sft` for SFT)
and call `build_engine`; nothing about the model or DeepSpeed is written twice.

Precision: `dtype` is the model's parameter dtype. bfloat16/float16 switch on DeepSpeed's matching section,
so the optimiser keeps fp32 master weights while forward and backward run in the low precision.

Left out: DeepSpeed's fused/CPU-offload optimisers (a plain torch AdamW works on CPU and GPU alike) and
activation offload.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from synergy_ray.config import LearnerConfig, ModelConfig, SFTConfig
from synergy_ray.core.buckets import layer_key
from synergy_ray.model.loading import apply_lora, freeze_vision, load_policy, trainable_parameters


@dataclass(frozen=True)
class EngineSetup:
    """What an engine is built from: the `model` section, the trainer's own section (`learner` for RL, `sft`
    for SFT: optimiser, ZeRO stage, micro-batch, checkpointing), and the two values the run decides itself.

    The sections are held, not copied, so a field added to either reaches the engine without touching this."""

    model_path: str
    model: ModelConfig
    trainer: LearnerConfig | SFTConfig
    seed: int = 0
    gradient_accumulation_steps: int = 1


def deepspeed_config(setup: EngineSetup, world_size: int) -> dict:
    t, dtype = setup.trainer, setup.model.dtype
    return {
        "train_micro_batch_size_per_gpu": t.micro_batch_size,
        "gradient_accumulation_steps": setup.gradient_accumulation_steps,
        "train_batch_size": t.micro_batch_size * setup.gradient_accumulation_steps * world_size,
        "gradient_clipping": t.grad_clip,
        "zero_optimization": {"stage": t.zero_stage},
        "bf16": {"enabled": dtype == "bfloat16"},
        "fp16": {"enabled": dtype == "float16"},
        "steps_per_print": 10**9,
        "zero_allow_untested_optimizer": True,  # a plain torch AdamW: DeepSpeed's fused Adam needs CUDA
    }


def load_trainable_model(setup: EngineSetup) -> torch.nn.Module:
    """The policy as it trains: vision frozen (when asked), LoRA adapters (when asked), checkpointing on."""

    m = setup.model
    model = load_policy(setup.model_path, m.dtype, m.trust_remote_code)
    if m.freeze_vision:
        freeze_vision(model)
    if setup.trainer.gradient_checkpointing:
        # Non-reentrant checkpointing: gradients reach trainable layers even when the inputs (embeddings of a
        # frozen tower) need none, and it composes with ZeRO-3's parameter hooks.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if m.lora:
        model = apply_lora(model, **m.lora.model_dump())
    return model


def skip_shm_comm_build() -> None:
    """Tell DeepSpeed not to build its shared-memory all-reduce op; call before it initialises comms.

    On CPU, DeepSpeed's comm backend JIT-compiles that op in every process that starts it (~1 min on a fresh
    machine, under a lock file in ~/.cache/torch_extensions). Only its inference all-reduce uses the op, never
    training. A process killed while holding the lock leaves the file behind, and every later learner then
    waits on it forever: that hung a CI run. DeepSpeed keeps this table as one dict so edits to it stick.
    """
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def build_engine(setup: EngineSetup, world_size: int):
    """`deepspeed.initialize` over the trainable model with AdamW; torch.distributed must be initialised."""
    import deepspeed

    skip_shm_comm_build()  # the SFT job: Ray Train set up torch.distributed, DeepSpeed wraps it here
    torch.manual_seed(setup.seed)
    model = load_trainable_model(setup)
    t = setup.trainer
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=deepspeed_config(setup, world_size))
    return engine


def warmup_lr(base_lr: float, step: int, warmup_steps: int) -> float:
    """Linear warm-up over `warmup_steps` optimiser steps (step counts from 0), then constant."""
    return base_lr * min(1.0, (step + 1) / max(1, warmup_steps))


def set_lr(engine, lr: float) -> None:
    for group in engine.optimizer.param_groups:
        group["lr"] = lr


@contextmanager
def gathered(params: list, zero_stage: int):
    """Full values of `params` on every rank inside the block (a ZeRO-3 all-gather; a no-op below stage 3).

    A collective under ZeRO-3: every rank must enter it with the same parameters in the same order.
    """
    import deepspeed

    enabled = zero_stage == 3 and bool(params)
    with deepspeed.zero.GatheredParameters(params if enabled else [], modifier_rank=None, enabled=enabled):
        yield


def parameter_groups(model: torch.nn.Module) -> list[list[tuple[str, torch.nn.Parameter]]]:
    """The model's named parameters, one group per layer (`core.buckets.layer_key`), in model order."""

    groups: dict[str, list] = {}
    for name, param in model.named_parameters():
        groups.setdefault(layer_key(name), []).append((name, param))
    return list(groups.values())


def full_state_dict(model: torch.nn.Module, rank: int, zero_stage: int) -> dict[str, torch.Tensor]:
    """Every parameter and buffer as a CPU tensor on rank 0 ({} elsewhere); every rank must call it.

    Under ZeRO-3 parameters are gathered one layer at a time, so no rank holds more than one layer beyond its
    shard on the accelerator. Buffers are never partitioned; only persistent ones are part of a checkpoint.
    """
    state: dict[str, torch.Tensor] = {}
    for group in parameter_groups(model):
        with gathered([p for _, p in group], zero_stage):
            if rank == 0:
                state.update((n, p.detach().to("cpu", copy=True)) for n, p in group)
    if rank == 0:
        persistent = set(model.state_dict())  # non-persistent buffers (rotary tables) are not checkpointed
        state.update((n, b.detach().to("cpu", copy=True)) for n, b in model.named_buffers() if n in persistent)
    return state


def export_hf(engine, processor: Any, path: str, rank: int, setup: EngineSetup) -> None:
    """Write a plain Hugging Face directory (LoRA merged) from rank 0; every rank must call it (ZeRO-3).

    The training model is never modified (LoRA is merged into a copy of the state dict, not in place).
    """
    model = engine.module
    state = full_state_dict(model, rank, setup.trainer.zero_stage)
    if rank != 0:
        return
    if setup.model.lora:
        state = merged_lora_state_dict(model, state)
        model = model.get_base_model()
    model.save_pretrained(path, state_dict=state)
    if processor is not None:
        processor.save_pretrained(path)


def lora_modules(peft_model) -> list[tuple[str, torch.nn.Module]]:
    """(name, layer) of every PEFT LoRA layer of the model."""
    return [(n, m) for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and hasattr(m, "get_delta_weight")]


def base_name(peft_name: str) -> str:
    """A PEFT module/parameter name as the base model's (without the `base_model.model.` prefix)."""
    return peft_name.replace("base_model.model.", "", 1)


def merged_weight(layer, weight: torch.Tensor | None = None) -> torch.Tensor:
    """W + scale * B @ A over every adapter a PEFT LoRA layer holds, on CPU; `weight` defaults to the layer's."""
    weight = layer.base_layer.weight.detach() if weight is None else weight
    for adapter in layer.lora_A:
        weight = weight + layer.get_delta_weight(adapter).detach().to(weight.device, weight.dtype)
    return weight.to("cpu", copy=True)


def merged_lora_state_dict(peft_model, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A PEFT state dict (names under `base_model.model.`) as the base model's: every adapted projection
    merged (`merged_weight`), adapter tensors dropped, names without the PEFT prefix."""
    out = {base_name(n).replace(".base_layer.", "."): t for n, t in state.items() if "lora_" not in n}
    for name, layer in lora_modules(peft_model):
        key = f"{base_name(name)}.weight"
        out[key] = merged_weight(layer, out[key])
    return out
