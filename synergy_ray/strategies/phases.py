"""The training phases strategies are made of. A strategy lists its phases in order; `pipeline` runs each one
and evaluates what it made, `compare` runs several strategies' phases over shared models, and the placement
check asks which roles the phases start. None of them tests a strategy's name.

A phase reads the models made before it from `models` ("base", then each earlier phase's `makes` key), is
handed the strategy it belongs to (whose decisions guide the RL loop), and returns [(report name, exported model directory)], usually one pair (a merge sweep gives several). The stages
it calls (`synergy_ray.run.stages`) hold the Ray, vLLM and DeepSpeed work and the reuse of finished outputs;
they are imported when a phase runs, so declaring phases stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synergy_ray.config import SynergyConfig
    from synergy_ray.records import PreparedRun
    from synergy_ray.strategies.base import Strategy

Made = list[tuple[str, Path]]  # (report name, exported model directory) for each model a phase made


@dataclass(frozen=True, kw_only=True)
class Phase:
    name: str  # what the phase is ("sft", "rl", ...): progress lines and tests
    makes: str  # the key its model is stored under for later phases, and for strategies that build on it
    rl_roles: bool = False  # starts the RL roles (vLLM generators, verifiers, the DeepSpeed learner)
    sft_job: bool = False  # runs a Ray Train SFT job

    def title(self, cfg: SynergyConfig) -> str:
        raise NotImplementedError

    def run(self, cfg: SynergyConfig, prepared: PreparedRun, models: dict[str, Path], strategy: Strategy) -> Made:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class LongCotSFT(Phase):
    """Long-CoT SFT from the base model, as a Ray Train job (the `sft` section)."""

    name: str = "sft"
    makes: str = "sft"
    sft_job: bool = True

    def title(self, cfg: SynergyConfig) -> str:
        return "long-CoT SFT from base (Ray Train + DeepSpeed)"

    def run(self, cfg: SynergyConfig, prepared: PreparedRun, models: dict[str, Path], strategy: Strategy) -> Made:
        from synergy_ray.run import stages  # defers yaml

        return [("sft", stages.long_cot_sft(cfg, prepared, models["base"]))]


@dataclass(frozen=True, kw_only=True)
class GRPO(Phase):
    """The distributed GRPO loop from the base model, guided by the strategy (hints, losses, rewards).

    Plain RL is made under "rl" and shared by every strategy that needs it; a strategy that changes the loop
    makes its own model under its own name."""

    name: str = "rl"
    makes: str = "rl"
    rl_roles: bool = True

    def title(self, cfg: SynergyConfig) -> str:
        return (f"GRPO ({self.makes}) from base: {cfg.rl.steps} steps "
                "(vLLM generators, verifiers, DeepSpeed learner)")

    def run(self, cfg: SynergyConfig, prepared: PreparedRun, models: dict[str, Path], strategy: Strategy) -> Made:
        from synergy_ray.run import stages  # defers yaml

        return [(self.makes, stages.grpo(cfg, prepared, models["base"], self.makes, strategy))]


def with_rollout(cfg: SynergyConfig, **fields: Any) -> SynergyConfig:
    """`cfg` with some rollout fields replaced (a phase that samples differently, e.g. longer after SFT)."""
    return cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update=fields)})
