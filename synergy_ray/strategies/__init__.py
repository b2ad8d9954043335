"""One small module per strategy, behind the interface in `base.py`; `build` picks one from the config."""

from __future__ import annotations

from synergy_ray.config import SynergyConfig
from synergy_ray.strategies.base import GroupOutcome, Strategy

__all__ = ["GroupOutcome", "Strategy", "build"]


def build(cfg: SynergyConfig) -> Strategy:
    s = cfg.strategy
    if s.name == "rl":
        from synergy_ray.strategies.rl import RL

        return RL()
    if s.name == "sft":
        from synergy_ray.strategies.sft import SFT

        return SFT()
    if s.name == "two_stage":
        from synergy_ray.strategies.two_stage import TwoStage

        return TwoStage(s.rl_max_tokens)
    if s.name == "interleaved":
        from synergy_ray.strategies.interleaved import Interleaved

        return Interleaved(s.sft_weight)
    if s.name == "progressive":
        from synergy_ray.strategies.progressive import Progressive

        return Progressive(s.prefix_weight, s.schedule, s.schedule_steps, s.num_stages)
    if s.name == "adaptive":
        from synergy_ray.strategies.adaptive import Adaptive

        return Adaptive(s.hint_below, s.hint_weight, s.length_penalty, s.easy_above)
    if s.name == "merge":
        from synergy_ray.strategies.merge import Merge

        return Merge(s.method, s.sft_weight, s.sweep)
    if s.name == "data_mix":
        from synergy_ray.strategies.data_mix import DataMix

        return DataMix(s.samples_per_question, s.epochs)
    raise NotImplementedError(f"strategy '{s.name}' is not available in this version yet")
