"""What a run directory was built from, so a rerun with other inputs is refused instead of reusing stale data.

`prepare` reuses the model and data set it finds under the run directory. `RUN_DIR/inputs.json` records the
settings they were built from (the data source and the fields that shape the data, the model path) and a
fingerprint of each local source. A later run on the same directory must agree, or it is refused with the
field named (exit 2) before anything is built, read or rewritten: a new `run.name` starts afresh, and deleting
the run directory rebuilds it. A run directory from before this record adopts the current inputs.

Fingerprints: a file of up to 64 MiB by its content (a copy of the same file still matches), a larger one by
size and modification time, a directory by its files' names, sizes and modification times. A hub name has
none: what the hub serves under a name is the hub's business.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from synergy_ray.config import ConfigError, SynergyConfig

RECORD = "inputs.json"
HASHED_FILE_MAX_BYTES = 64 * 1024 * 1024
DATA_FIELDS = ("source", "column_map", "image_root", "num_per_level", "eval_per_level", "seed", "image_size",
               "trace_style")  # what the stored data sets are made of (val_per_level may be added later)


def fingerprint(path: str) -> str | None:
    p = Path(path).expanduser()
    if p.is_file():
        stat = p.stat()
        if stat.st_size > HASHED_FILE_MAX_BYTES:
            return f"size {stat.st_size} mtime {stat.st_mtime_ns}"
        return "sha256 " + hashlib.sha256(p.read_bytes()).hexdigest()
    if p.is_dir():
        digest = hashlib.sha256()
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            stat = f.stat()
            digest.update(f"{f.relative_to(p)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return "listing " + digest.hexdigest()
    return None  # a hub name, or synthetic


def model_location(cfg: SynergyConfig) -> str:
    """model.path as recorded: absolute for a local (or to-be-built) directory, as given for a hub name."""
    path = Path(cfg.model.path).expanduser()
    return str(path.resolve()) if cfg.model.build_tiny is not None or path.exists() else cfg.model.path


def current(cfg: SynergyConfig, model_path: str) -> dict:
    """The inputs of `cfg` as recorded: field -> value, and field -> fingerprint of the path it names."""
    d = cfg.data.model_dump(mode="json")
    values = {f"data.{k}": d[k] for k in DATA_FIELDS}
    values["model.path"] = model_path
    values["eval.split"] = cfg.eval.split  # levels and reports of one split per run directory
    sources = {"data.source": cfg.data.source if cfg.data.source != "synthetic" else None,
               "model.path": model_path if cfg.model.build_tiny is None else None}  # a built model is ours
    prints = {k: fingerprint(v) for k, v in sources.items() if v is not None}
    return {"values": values, "fingerprints": prints}


def check(cfg: SynergyConfig, run_dir: Path, model_path: str) -> None:
    """Raise ConfigError (the field named) when `run_dir` was built from other inputs than `cfg`'s."""
    path = run_dir / RECORD
    if not path.is_file():
        return
    old, new = json.loads(path.read_text()), current(cfg, model_path)
    remedy = f"use another run.name (or run.output_dir), or delete {run_dir} to rebuild it"
    for field, value in new["values"].items():
        before = old["values"].get(field, value)
        if before != value:
            raise ConfigError(f"{field}: {run_dir} was built from {before!r}, this config says {value!r}; {remedy}")
    for field, value in new["fingerprints"].items():
        before = old["fingerprints"].get(field, value)
        if before != value:
            raise ConfigError(f"{field}: {new['values'][field]} has changed since {run_dir} was built from it; "
                              f"{remedy}")


def record(cfg: SynergyConfig, run_dir: Path, model_path: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RECORD).write_text(json.dumps(current(cfg, model_path), indent=1) + "\n")
