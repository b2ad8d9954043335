"""`two_stage`: long-CoT SFT, then GRPO from its best epoch with its own generation limit.

As in the paper, RL starts from the SFT epoch with the best validation accuracy: the SFT stage exports every
epoch's model (`sft.export_every_epoch`), each is evaluated with `val_k` samples per question on the
validation split (disjoint from train and the held-out test set), and the first best one is kept
(`stages.best_sft_epoch`, recorded in `sft_selection.json`). `rl_max_tokens` replaces `rollout.max_tokens`
for the RL stage, since SFT lengthens answers.
"""

from synergy_ray.strategies.base import Strategy


class TwoStage(Strategy):
    name = "two_stage"
    phases = ("sft", "rl_after_sft")

    def __init__(self, rl_max_tokens: int):
        self.rl_max_tokens = rl_max_tokens
