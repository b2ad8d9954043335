"""Checks that run before Ray starts: the paths a run reads and writes, and whether its roles fit the cluster.

Each failure is a `ConfigError` naming the field, which the command line prints as `synergy-ray: <field>: ...`
(exit 2) in well under a second, with no Ray, torch or network. A path that does not exist here and does not
read as a hub name (`org/name`) is refused at once instead of being retried against the hub.

Resources are checked against the local Ray a command would start (`cluster.address` and RAY_ADDRESS unset):
its CPUs (`cluster.num_cpus`, else this machine's) and GPUs. On a real cluster the nodes are only known once
connected; `synergy-ray plan --cluster SHAPE` checks a config against a described one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from synergy_ray.cluster.placement import placement_failures
from synergy_ray.config import ConfigError, SynergyConfig
from synergy_ray.core.placement import Node
from synergy_ray.strategies import roles_in_use

HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # what the Hugging Face hub accepts as a repo id
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow")


def looks_like_hub_name(text: str) -> bool:
    return (bool(HUB_NAME.match(text)) and not text.startswith((".", "~"))
            and not text.lower().endswith(DATA_SUFFIXES))


def check_paths(cfg: SynergyConfig) -> None:
    """model.path, data.source, data.image_root and run.output_dir, as far as they can be known here."""
    m, d = cfg.model, cfg.data
    model = Path(m.path).expanduser()
    if m.build_tiny is None:  # otherwise the run builds the model there
        if model.exists() and not (model / "config.json").is_file():
            raise ConfigError(f"model.path: {m.path} holds no config.json (not a Hugging Face checkpoint)")
        if not model.exists() and not looks_like_hub_name(m.path):
            raise ConfigError(f"model.path: {m.path}: no such directory (and not a hub name like org/model)")
    if d.source != "synthetic" and not Path(d.source).expanduser().exists() and not looks_like_hub_name(d.source):
        raise ConfigError(f"data.source: {d.source}: no such file or directory (and not a hub name like org/data)")
    if d.image_root is not None and not Path(d.image_root).expanduser().is_dir():
        raise ConfigError(f"data.image_root: {d.image_root}: no such directory")
    _check_writable("run.output_dir", Path(cfg.run.output_dir).expanduser())


def _check_writable(field: str, path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{field}: {path} is a file, not a directory")
    existing = path
    while not existing.exists():  # the run creates the rest
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{field}: {existing} is a file, so {path} cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{field}: {existing} is not writable")


def local_ray(cfg: SynergyConfig) -> bool:
    """True when a command would start its own Ray on this machine rather than join a cluster."""
    return cfg.cluster.address is None and not os.environ.get("RAY_ADDRESS")


def local_gpus() -> int:
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def check_resources(cfg: SynergyConfig) -> None:
    """Refuse roles that the local Ray could never schedule (they would wait for resources that never come)."""

    if not local_ray(cfg):
        return
    c = cfg.cluster
    wants_gpus = max(c.gpus_per_learner, c.gpus_per_generator, cfg.sft.gpus_per_worker) > 0
    node = Node("this machine", gpus=local_gpus() if wants_gpus else 0, cpus=float(c.num_cpus or os.cpu_count() or 1))
    failed = placement_failures(cfg, [node], *roles_in_use(cfg))
    if failed:
        cpus = f"cluster.num_cpus {c.num_cpus}" if c.num_cpus else f"{node.cpus:g} CPUs here"
        raise ConfigError(f"{'; '.join(failed)} (a local Ray with {cpus} and {node.gpus} GPUs; set cluster.address "
                          "to run on a cluster, or check one with `synergy-ray plan --cluster`)")


def check_run(cfg: SynergyConfig) -> None:
    check_paths(cfg)
    check_resources(cfg)
