"""Loading a policy for training: ordinary `from_pretrained`, the vision side frozen, optional LoRA.

One place decides which modules count as "vision" (encoder + connector/projector), by the attribute names the
supported architectures use, so SFT and RL freeze the same parameters.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

# Idefics3/SmolVLM: vision_model + connector; Qwen2/2.5-VL: visual (its merger is the connector);
# LLaVA-style: vision_tower + multi_modal_projector.
VISION_MODULE_NAMES = ("vision_model", "connector", "visual", "vision_tower", "multi_modal_projector")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_policy(path: str, dtype: str = "float32", trust_remote_code: bool = False) -> torch.nn.Module:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(path, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code)


def is_vision_parameter(name: str) -> bool:
    return any(part in VISION_MODULE_NAMES for part in name.split("."))


def freeze_vision(model: torch.nn.Module) -> int:
    """Stop gradients into the vision encoder and connector; returns how many tensors were frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if is_vision_parameter(name):
            param.requires_grad_(False)
            frozen += 1
    return frozen


def apply_lora(model: torch.nn.Module, rank: int, alpha: float, dropout: float, target_modules: list[str]) -> Any:
    """Wrap the language model's projections with LoRA adapters; vision modules never get adapters."""
    from peft import LoraConfig, get_peft_model

    names = [n for n, m in model.named_modules()
             if n.split(".")[-1] in target_modules and not is_vision_parameter(n) and isinstance(m, torch.nn.Linear)]
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names)
    return get_peft_model(model, config)


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    """Whether the model's forward takes `logits_to_keep` (transformers' causal LMs and VLMs do; a PEFT wrapper
    passes it through to the model it wraps), so the head can skip positions whose logits nothing reads."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters
