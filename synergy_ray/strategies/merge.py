"""`merge`: SFT and RL checkpoints (both trained from the base) merged with mergekit (linear, TIES, SLERP) at
an SFT weight, or swept over several weights, each merge evaluated. See `synergy_ray.merging`."""

from synergy_ray.strategies.base import Strategy


class Merge(Strategy):
    name = "merge"
    phases = ("sft", "rl", "merge")

    def __init__(self, method: str, sft_weight: float, sweep: list[float] | None):
        self.method, self.sft_weight = method, sft_weight
        self.weights = list(sweep) if sweep else [sft_weight]
