"""synergy-ray: long-CoT SFT and GRPO for reasoning VLMs on Ray, measured by difficulty level."""

__version__ = "0.1.0"
