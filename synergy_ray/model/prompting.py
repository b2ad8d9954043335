"""The one preprocessing path every role shares: chat template, image expansion, and token layout.

The learner, the SFT job and the vLLM generators all build a prompt with `prompt_text` and expand its images
with the model's own processor, so the token ids a generator sampled after are exactly the ids the learner
re-reads. A completion is appended as token ids (never re-tokenised together with the prompt), which keeps
that equality for BPE tokenizers too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

IGNORE = -100  # label for tokens that get no loss
THINK_OPEN = "<think>"


def question_text(question: str, suffix: str = "") -> str:
    """The user turn's text: the question, then the prompt suffix (the paper's instruction) when there is one."""
    return f"{question} {suffix}".strip() if suffix else question


def chat_text(processor: Any, messages: list[dict]) -> str:
    """Any chat (HF message format, images as `{"type": "image"}` parts) rendered by the model's own template,
    image placeholders not yet expanded, ending in the assistant turn. Serve renders requests with this too."""
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def prompt_text(processor: Any, question: str, suffix: str = "", with_image: bool = True) -> str:
    """The chat-templated prompt string of one question: the image first, then the text."""
    content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": question_text(question, suffix)}]
    return chat_text(processor, [{"role": "user", "content": content}])


def response_as_written(prompt: str, generated: str) -> str:
    """The completion as the model wrote it: when the template already opened `<think>` in the prompt, the
    generated text continues inside that block, so the tag is put back for the format reward to see."""
    return THINK_OPEN + generated if prompt.rstrip().endswith(THINK_OPEN) else generated


def encode_prompt(processor: Any, text: str, image: Any | None) -> dict[str, torch.Tensor]:
    """Token ids with images expanded, plus the vision tensors, batch dimension 1."""
    images = [[image]] if image is not None else None
    enc = processor(text=[text], images=images, return_tensors="pt")
    return dict(enc)


def response_ids(processor: Any, response: str, add_eos: bool = True) -> list[int]:
    tok = processor.tokenizer
    ids = tok(response, add_special_tokens=False)["input_ids"]
    return ids + [tok.eos_token_id] if add_eos else ids


@dataclass
class Example:
    """One training sequence: prompt + response token ids, which tokens learn, and the vision inputs."""

    input_ids: torch.Tensor  # [T]
    labels: torch.Tensor  # [T], IGNORE on prompt tokens
    loss_weights: torch.Tensor  # [T] float, 0 on prompt tokens
    vision: dict[str, torch.Tensor]  # e.g. pixel_values [1, n_img, 3, H, W]


def encode_example(
    processor: Any, question: str, suffix: str, image: Any | None, response: str, max_len: int,
    response_weight: float = 1.0,
) -> Example | None:
    """Prompt and assistant response as one sequence; loss on the response and its end token only.

    Returns None when the expanded sequence is longer than `max_len`: a sequence is never cut, because cutting
    after image expansion can split an image's tokens from its pixels.
    """
    prompt = encode_prompt(processor, prompt_text(processor, question, suffix, image is not None), image)
    p_ids = prompt.pop("input_ids")[0]
    prompt.pop("attention_mask", None)
    r_ids = torch.tensor(response_ids(processor, response), dtype=torch.long)
    if len(p_ids) + len(r_ids) > max_len:
        return None
    ids = torch.cat([p_ids, r_ids])
    labels = torch.cat([torch.full_like(p_ids, IGNORE), r_ids])
    weights = torch.cat([torch.zeros(len(p_ids)), torch.full((len(r_ids),), float(response_weight))])
    return Example(input_ids=ids, labels=labels, loss_weights=weights, vision=prompt)


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence; vision tensors are concatenated along their leading dimension.

    Concatenation fits both Idefics3 ([1, n_img, 3, H, W] per example) and Qwen2.5-VL (flattened patches with
    an image_grid_thw row per image).
    """
    width = max(len(e.input_ids) for e in examples)
    n = len(examples)
    batch = {
        "input_ids": torch.full((n, width), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros((n, width), dtype=torch.long),
        "labels": torch.full((n, width), IGNORE, dtype=torch.long),
        "loss_weights": torch.zeros((n, width)),
    }
    for i, e in enumerate(examples):
        t = len(e.input_ids)
        batch["input_ids"][i, :t] = e.input_ids
        batch["attention_mask"][i, :t] = 1
        batch["labels"][i, :t] = e.labels
        batch["loss_weights"][i, :t] = e.loss_weights
    for key in examples[0].vision:
        batch[key] = torch.cat([e.vision[key] for e in examples], dim=0)
    return batch


def image_placeholder_ids(processor: Any) -> set[int]:
    """Token ids that stand for image content (Idefics3 `<image>`, Qwen2-VL `<|image_pad|>`).

    A model can generate these as ordinary tokens; left in a completion they would make the vision merge count
    more placeholders than images, so generators replace them by the pad token before anyone re-reads them.
    """
    tok = processor.tokenizer
    names = {getattr(processor, "image_token", None), "<image>", "<|image_pad|>"}
    ids = {tok.convert_tokens_to_ids(n) for n in names if n}
    return {i for i in ids if isinstance(i, int) and i != tok.unk_token_id}


def pad_token_id(processor: Any) -> int:
    """The id every loss masks out: the pad token, or EOS when there is none (a processor or a tokenizer)."""
    tok = getattr(processor, "tokenizer", processor)
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
