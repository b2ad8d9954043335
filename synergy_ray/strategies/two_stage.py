"""`two_stage`: long-CoT SFT, then GRPO from its best epoch with its own generation limit.

As in the paper, RL starts from the SFT epoch with the best validation accuracy: the SFT stage exports every
epoch's model (`sft.export_every_epoch`), each is evaluated with `val_k` samples per question on the
validation split (disjoint from train and the held-out test set), and the first best one is kept
(`stages.best_sft_epoch`, recorded in `sft_selection.json`). `rl_max_tokens` replaces `rollout.max_tokens`
for the RL stage, since SFT lengthens answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from synergy_ray.config import TwoStageStrategy
from synergy_ray.console import log
from synergy_ray.run import stages
from synergy_ray.strategies.base import Strategy
from synergy_ray.strategies.phases import LongCotSFT, Made, Phase, with_rollout


class TwoStage(Strategy):
    name = "two_stage"
    builds_on = ("sft",)

    def __init__(self, section: TwoStageStrategy):
        super().__init__(section)
        self.phases = (LongCotSFT(), GRPOFromBestSFT(rl_max_tokens=section.rl_max_tokens, val_k=section.val_k))

    @classmethod
    def fitted_to(cls, cfg) -> dict:
        """As long as the run lets answers be, within the engine's context."""
        room = (cfg.rollout.max_model_len or 10**9) - cfg.data.max_prompt_tokens
        return {"rl_max_tokens": min(max(cfg.rollout.max_tokens, cfg.eval.max_tokens), room)}


@dataclass(frozen=True, kw_only=True)
class GRPOFromBestSFT(Phase):
    rl_max_tokens: int = 16384
    val_k: int = 4
    name: str = "rl_after_sft"
    makes: str = "two_stage"
    rl_roles: bool = True

    def title(self, cfg) -> str:
        return (f"GRPO from the best SFT epoch (validation, k={self.val_k}): {cfg.rl.steps} steps, "
                f"max {self.rl_max_tokens} tokens")

    def run(self, cfg, prepared, models, strategy) -> Made:
        start = stages.best_sft_epoch(cfg, prepared, models["sft"], self.val_k)
        log().info(f"[two_stage] RL starts from {start.name}")
        rl_cfg = with_rollout(cfg, max_tokens=self.rl_max_tokens)
        return [(self.makes, stages.grpo(rl_cfg, prepared, start, self.makes, strategy))]
