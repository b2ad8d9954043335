"""`rl`: plain GRPO from the base model (the paper's RL setting). Everything is the interface's default."""

from synergy_ray.strategies.base import Strategy


class RL(Strategy):
    name = "rl"
