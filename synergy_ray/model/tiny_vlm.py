"""Build the tiny randomly initialised Idefics3 VLM the embedded default trains.

Idefics3 is the architecture chosen because vLLM's CPU build imports its model file without torchvision and
the same HF/vLLM code paths then serve Qwen2.5-VL on GPUs. The model is an ordinary Hugging Face checkpoint
directory (config, safetensors, tokenizer, processor, chat template); everything downstream loads it with
`from_pretrained(path)` exactly as it would load a hub model. With the default shape each 32x32 image becomes
4 image tokens, one per 16x16 quadrant (patch 8, pixel-shuffle scale factor 2).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor

try:  # transformers >= 5.18 names the PIL-backed processor apart from the torchvision one
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
except ImportError:  # older 5.x: the plain class is the PIL one
    from transformers import Idefics3ImageProcessor as Idefics3ImageProcessorPil

from synergy_ray.config import TinyVLMConfig
from synergy_ray.model.tokenizer import build_char_tokenizer


def build_processor(cfg: TinyVLMConfig) -> Idefics3Processor:
    tokenizer = build_char_tokenizer()
    # No image splitting: one global view of `image_size` pixels per image keeps prompts short.
    image_processor = Idefics3ImageProcessorPil(
        do_resize=True,
        size={"longest_edge": cfg.image_size},
        max_image_size={"longest_edge": cfg.image_size},
        do_image_splitting=False,
    )
    return Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer,
        image_seq_len=cfg.image_tokens, chat_template=tokenizer.chat_template,
    )


def build_model_config(cfg: TinyVLMConfig, tokenizer) -> Idefics3Config:
    vocab = len(tokenizer)
    text = dict(
        model_type="llama", vocab_size=vocab, hidden_size=cfg.text_hidden, intermediate_size=cfg.text_intermediate,
        num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads, num_key_value_heads=cfg.text_heads,
        max_position_embeddings=cfg.max_position_embeddings, rms_norm_eps=1e-5, tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    vision = dict(
        hidden_size=cfg.vision_hidden, intermediate_size=cfg.vision_intermediate, num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads, image_size=cfg.image_size, patch_size=cfg.patch_size,
    )
    return Idefics3Config(
        text_config=text, vision_config=vision, scale_factor=cfg.scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def build_tiny_vlm(cfg: TinyVLMConfig, out_dir: str | Path) -> Path:
    """Create the model from `cfg` with seeded random weights and save it as a HF checkpoint directory."""
    out = Path(out_dir)
    processor = build_processor(cfg)
    model_config = build_model_config(cfg, processor.tokenizer)
    torch.manual_seed(cfg.seed)
    model = Idefics3ForConditionalGeneration(model_config)
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out

