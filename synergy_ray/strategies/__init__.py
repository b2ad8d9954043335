"""One module per strategy, behind the interface in `base.py`; `build` picks one from the config.

Every module of this package is imported here, and each `Strategy` subclass registers itself under its
`name`, the tag of its config section: adding a strategy means adding its module and its section, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil

from synergy_ray.config import SynergyConfig
from synergy_ray.strategies.base import GroupOutcome, Strategy

__all__ = ["GroupOutcome", "Strategy", "build", "roles_in_use", "strategy_class", "strategy_config"]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def strategy_class(name: str) -> type[Strategy]:
    return Strategy.registry[name]


def build(cfg: SynergyConfig) -> Strategy:
    return strategy_class(cfg.strategy.name)(cfg.strategy)


def strategy_config(cfg: SynergyConfig, name: str) -> SynergyConfig:
    """`cfg` with `strategy: name` (or the section of the variant so named, `compare.variants`) and that
    strategy's defaults fitted to this run's length and context; a variant's own fields win."""
    from synergy_ray.config import validate_tree

    section = dict(cfg.compare.variants.get(name) or {"name": name})
    tree = cfg.model_dump(mode="json")
    tree["strategy"] = {**strategy_class(section["name"]).fitted_to(cfg), **section}
    return validate_tree(tree)


def roles_in_use(cfg: SynergyConfig) -> tuple[bool, bool]:
    """(the run starts the RL roles, it runs a Ray Train SFT job: base warm-up, long-CoT SFT, data mixing),
    from the strategy's phases."""
    phases = build(cfg).phases
    uses_rl = any(p.rl_roles for p in phases)
    uses_sft = cfg.model.make_base is not None or any(p.sft_job for p in phases)
    return uses_rl, uses_sft
