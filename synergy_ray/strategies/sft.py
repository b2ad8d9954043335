"""`sft`: long-CoT SFT from the base model as a Ray Train job; no RL phase."""

from synergy_ray.strategies.base import Strategy


class SFT(Strategy):
    name = "sft"
    phases = ("sft",)
