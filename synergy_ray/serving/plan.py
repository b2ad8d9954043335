"""What to serve and how: model names from directories, Serve deployment options from the `serve` section.

`synergy-ray serve DIR...` takes checkpoint directories (a `config.json` next to weights) and run directories,
whose checkpoint subdirectories are all served, each under its folder name (`base`, `sft`, `rl`, ...).
"""

from __future__ import annotations

from pathlib import Path

from synergy_ray.config import ServeConfig

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


def is_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file() and any(any(path.glob(p)) for p in WEIGHT_PATTERNS)


def find_models(paths: list[str], names: list[str] | None = None) -> dict[str, str]:
    """Model name -> absolute checkpoint path, in the order given.

    `names`, when given, pairs with `paths` one to one: it names a checkpoint directory, and prefixes the models
    of a run directory (`name/base`, `name/rl`), so two runs' models can be served side by side.
    """
    if names and len(names) != len(paths):
        raise ValueError(f"--name: got {len(names)} names for {len(paths)} directories; give one per directory")
    models: dict[str, str] = {}
    for i, raw in enumerate(paths):
        path = Path(raw).expanduser().resolve()
        given = names[i] if names else None
        if not path.is_dir():
            raise ValueError(f"{raw}: no such directory")
        if is_checkpoint(path):
            found = {given or path.name: path}
        else:
            found = {(f"{given}/{d.name}" if given else d.name): d
                     for d in sorted(path.iterdir()) if d.is_dir() and is_checkpoint(d)}
            if not found:
                raise ValueError(f"{raw}: neither a checkpoint (config.json with weights) nor a run directory "
                                 "with checkpoints in its subdirectories")
        for name, checkpoint in found.items():
            if name in models:
                raise ValueError(f"model name {name!r} is used by both {models[name]} and {checkpoint}; "
                                 "tell them apart with --name")
            models[name] = str(checkpoint)
    return models


def server_options(serve: ServeConfig) -> tuple[dict, dict]:
    """One model's `LLMConfig.deployment_config` and `placement_group_config`: a fixed replica count or Serve
    autoscaling (when min_replicas < max_replicas, starting from num_replicas), and each replica's resources.

    The replica's whole share is its placement bundle (where vLLM's engine processes run); the replica actor
    itself takes nothing beyond it, so `cpus_per_replica` is what one replica costs, as the config says."""
    deployment: dict = {"max_ongoing_requests": serve.max_ongoing_requests,
                        "ray_actor_options": {"num_cpus": 0}}
    if serve.min_replicas == serve.max_replicas:
        deployment["num_replicas"] = serve.num_replicas
    else:
        deployment["autoscaling_config"] = {
            "min_replicas": serve.min_replicas, "max_replicas": serve.max_replicas,
            "initial_replicas": serve.num_replicas, "target_ongoing_requests": serve.target_ongoing_requests,
        }
    bundle = {"CPU": serve.cpus_per_replica, **({"GPU": serve.gpus_per_replica} if serve.gpus_per_replica else {})}
    return deployment, {"bundles": [bundle]}


def experimental_configs(serve: ServeConfig) -> dict:
    """`LLMConfig.experimental_configs`: the streaming batch interval when the config sets one (else
    ray.serve.llm keeps its own default)."""
    if serve.stream_batching_interval_ms is None:
        return {}
    return {"stream_batching_interval_ms": serve.stream_batching_interval_ms}


def check_fits(num_models: int, serve: ServeConfig, cluster_cpus: float, cluster_gpus: float) -> None:
    """Refuse up front a plan whose starting replicas cannot all be placed (Serve would wait for ever)."""
    replicas = num_models * serve.num_replicas
    for what, per_replica, have in (("CPUs", serve.cpus_per_replica, cluster_cpus),
                                    ("GPUs", serve.gpus_per_replica, cluster_gpus)):
        need = replicas * per_replica
        if need > have + 1e-9:
            raise ValueError(f"{num_models} models x {serve.num_replicas} replicas x {per_replica:g} {what} = "
                             f"{need:g} {what}, but the cluster has {have:g}; serve fewer models or lower "
                             f"serve.{what.lower()[:3]}s_per_replica")
