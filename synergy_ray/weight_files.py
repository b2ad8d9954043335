"""The learner's side of the shared-memory weight sync: a bucket of tensors written to one safetensors file
that the engines on the same node read (`weight_sync` loads it into vLLM), and the file deleted afterwards.

Kept apart from `weight_sync` because that module imports vLLM at the top (its backend subclasses vLLM's
weight-transfer engine). Learner ranks import only this one: loading vLLM into a rank that never runs it
cost ~270 MiB of resident memory and ~4 s per rank, measured on this CPU.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

ENV_DIR = "SYNERGY_RAY_WEIGHT_SYNC_DIR"  # where the files go instead of /dev/shm, when set


def _default_dir(nbytes: int) -> Path:
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        try:
            if shutil.disk_usage(shm).free > 1.2 * nbytes + (64 << 20):
                return shm
        except OSError:
            pass
    return Path(tempfile.gettempdir())  # e.g. a container with a 64 MiB /dev/shm


def send_weights(named_tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
                 directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write `named_tensors` (HF checkpoint names -> tensors) to a shared-memory file.

    Returns the update info to hand to `apply_weight_update` (a small, msgpack/JSON-safe dict). The file must
    be reachable from the engine's workers (same node); the caller deletes it afterwards (`release_update`).
    """
    from safetensors.torch import save_file

    items = list(named_tensors.items() if isinstance(named_tensors, Mapping) else named_tensors)
    if not items:
        raise ValueError("send_weights: no tensors to send")
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in items:
        if name in tensors:
            raise ValueError(f"send_weights: duplicate name {name!r}")
        t = tensor.detach()
        t = t.to("cpu") if t.device.type != "cpu" else t
        t = t.contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel():  # safetensors refuses tensors that share memory (e.g. tied weights)
            t = t.clone()
        seen.add(ptr)
        tensors[name] = t
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    folder = Path(directory) if directory is not None else _default_dir(nbytes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"synergy_ray_weights_{os.getpid()}_{uuid.uuid4().hex}.safetensors"
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)  # readers never see a half-written file
    return {"path": str(path), "num_tensors": len(tensors), "num_bytes": nbytes}


def release_update(update_info: Mapping[str, Any]) -> None:
    """Delete the file behind `update_info` (after every engine that needed it has applied it)."""
    try:
        os.unlink(update_info["path"])
    except FileNotFoundError:
        pass
