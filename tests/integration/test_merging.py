"""Model merging with mergekit on real checkpoints of the tiny VLM: numbers by hand, and a clear refusal."""

import pytest
import torch
from safetensors.torch import load_file

from synergy_ray.config import TinyVLMConfig
from synergy_ray.run.merging import merge_checkpoints
from synergy_ray.model.tiny_vlm import build_tiny_vlm


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    return build_tiny_vlm(TinyVLMConfig(seed=1), root / "sft"), build_tiny_vlm(TinyVLMConfig(seed=2), root / "rl")


def test_linear_merge_is_the_weighted_sum(pair, tmp_path):
    sft, rl = pair
    out = merge_checkpoints(sft, rl, tmp_path / "merged", "linear", sft_weight=0.25)
    a, b, m = (load_file(str(p / "model.safetensors")) for p in (sft, rl, out))
    assert m.keys() == a.keys()
    for name in a:
        assert torch.allclose(m[name], 0.25 * a[name] + 0.75 * b[name], atol=1e-6), name
    from transformers import AutoModelForImageTextToText, AutoProcessor

    AutoModelForImageTextToText.from_pretrained(out)  # a loadable checkpoint, processor included
    AutoProcessor.from_pretrained(out)


def test_slerp_endpoints(pair, tmp_path):
    sft, rl = pair
    a, b = load_file(str(sft / "model.safetensors")), load_file(str(rl / "model.safetensors"))
    at_rl = load_file(str(merge_checkpoints(sft, rl, tmp_path / "t0", "slerp", 0.0) / "model.safetensors"))
    name = next(n for n in a if a[n].dim() == 2)
    assert torch.allclose(at_rl[name], b[name], atol=1e-5)


def test_different_architectures_are_refused_with_a_clear_message(pair, tmp_path):
    sft, _ = pair
    other = build_tiny_vlm(TinyVLMConfig(text_hidden=256, text_heads=4), tmp_path / "big")
    with pytest.raises(ValueError, match=r"cannot merge .* is \("):
        merge_checkpoints(sft, other, tmp_path / "out")
