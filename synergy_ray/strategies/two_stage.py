"""`two_stage`: long-CoT SFT to its end checkpoint, then GRPO from that model with its own generation limit.

The paper keeps the best SFT epoch by validation; here the SFT stage's final export is the starting point
(simplified: the demo trains few epochs, so final and best coincide more often than not).
"""

from synergy_ray.strategies.base import Strategy


class TwoStage(Strategy):
    name = "two_stage"
    phases = ("sft", "rl_after_sft")

    def __init__(self, rl_max_tokens: int):
        self.rl_max_tokens = rl_max_tokens
