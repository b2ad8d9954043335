"""Where an RL run's step statistics go: `metrics.jsonl` (one JSON object per step, the record `report` and
tests read), TensorBoard scalars, W&B when `run.wandb_project` is set and wandb is installed, and one console
line per step. The coordinator hands each step's `StepStats` to `MetricsSink.write` and nothing else."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from synergy_ray.config import SynergyConfig
from synergy_ray.console import log
from synergy_ray.records import StepStats


class MetricsSink:
    def __init__(self, cfg: SynergyConfig, run_dir: Path, bucket_label: str):
        self.cfg, self.run_dir, self.bucket_label = cfg, run_dir, bucket_label
        self._writer = None  # TensorBoard and W&B start at the first step, not when the run is built
        self._wandb = None

    def write(self, s: StepStats) -> None:
        row = asdict(s)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
            self._wandb = _start_wandb(self.cfg, self.run_dir)
        scalars = {k: v for k, v in flatten(row).items() if isinstance(v, (int, float))}
        for key, value in scalars.items():
            self._writer.add_scalar(key, value, s.step)
        self._writer.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=s.step)
        log().info(self.line(s))

    def line(self, s: StepStats) -> str:
        levels = " ".join(f"{self.bucket_label}{k}:{v:.2f}" for k, v in s.pass_rate_by_level.items())
        split = "/".join(f"{s.timings.get(k, 0):.1f}" for k in ("generate", "score", "train", "sync"))
        gap = f" sync_gap {s.sync_logprob_gap:.1e}" if s.sync_logprob_gap is not None else ""
        sizes = f" groups {min(s.group_sizes)}-{max(s.group_sizes)}" if len(set(s.group_sizes)) > 1 else ""
        c = s.counters
        rescue = f" rescued {c.rescued_groups} ({c.rescue_rollouts} hinted rollouts)" if c.rescue_rollouts else ""
        return (f"[rl] step {s.step}/{self.cfg.rl.steps} reward {s.reward_mean:.3f} pass {s.pass_rate:.2f} "
                f"({levels}) len {s.response_tokens_mean:.0f}{sizes}{rescue} time gen/score/train/sync {split}s{gap}")


def _start_wandb(cfg: SynergyConfig, run_dir: Path):
    """A W&B run when `run.wandb_project` is set and wandb is installed; otherwise None (said once)."""
    if not cfg.run.wandb_project:
        return None
    try:
        import wandb
    except ImportError:
        log().warning("[rl] run.wandb_project is set but wandb is not installed; logging to TensorBoard and JSONL only")
        return None
    return wandb.init(project=cfg.run.wandb_project, name=cfg.run.name, dir=str(run_dir),
                      config=cfg.model_dump(mode="json"))


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dicts as one level, keys joined by "/" (TensorBoard's grouping)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "/"))
        else:
            out[key] = v
    return out
