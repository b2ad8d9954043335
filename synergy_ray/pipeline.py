"""Run-level orchestration that happens before any actor starts: building the model and the data set.

`prepare` is idempotent: a model directory or data set already on disk is reused, so the demo, the tests and
later phases of a run share one copy.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from synergy_ray.config import SynergyConfig, write_resolved


@dataclass(frozen=True)
class PreparedRun:
    run_dir: Path
    model_path: str
    num_parameters: int
    train_path: Path
    eval_path: Path
    train_steps: dict[int, int]  # design difficulty (reasoning steps) -> item count
    eval_steps: dict[int, int]
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> ids of rows the loader skipped
    seconds: float = 0.0


def ensure_model(cfg: SynergyConfig) -> str:
    """Build the tiny VLM at `model.path` when the config asks for one and it is not there yet."""
    path = Path(cfg.model.path)
    if cfg.model.build_tiny is not None and not (path / "config.json").exists():
        from synergy_ray.model.tiny_vlm import build_tiny_vlm

        build_tiny_vlm(cfg.model.build_tiny, path)
    # Ray workers run in their own working directories: hand them absolute paths for local checkpoints.
    return str(path.resolve()) if path.exists() else cfg.model.path


def count_model_parameters(model_path: str, trust_remote_code: bool = False) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):  # shapes only, no weights in memory
        model = AutoModelForImageTextToText.from_config(config, trust_remote_code=trust_remote_code)
    return sum(p.numel() for p in model.parameters())


def ensure_data(cfg: SynergyConfig, run_dir: Path) -> tuple[Path, Path, dict[str, list[str]]]:
    """Write the train and eval sets under `run_dir/data` (synthetic, or the user's source split 90/10)."""
    import datasets

    train_path, eval_path = run_dir / "data" / "train", run_dir / "data" / "eval"
    if (train_path / "dataset_info.json").exists() and (eval_path / "dataset_info.json").exists():
        return train_path, eval_path, {}
    d = cfg.data
    skipped: dict[str, list[str]] = {}
    if d.source == "synthetic":
        from synergy_ray.data.synthetic import build_splits

        splits = build_splits(d.num_per_level, d.eval_per_level, seed=d.seed, image_size=d.image_size)
        train, held_out = splits["train"], splits["eval"]
    else:
        from synergy_ray.data.loader import load_user_dataset

        full, report = load_user_dataset(d.source, column_map=dict(d.column_map) or None, image_root=d.image_root)
        skipped = report.skipped
        parts = full.train_test_split(test_size=0.1, seed=d.seed)
        train, held_out = parts["train"], parts["test"]
    assert isinstance(train, datasets.Dataset)
    train.save_to_disk(str(train_path))
    held_out.save_to_disk(str(eval_path))
    return train_path, eval_path, skipped


def _steps_counts(path: Path) -> dict[int, int]:
    import datasets

    return dict(sorted(Counter(datasets.load_from_disk(str(path))["steps"]).items()))


def prepare(cfg: SynergyConfig) -> PreparedRun:
    start = time.perf_counter()
    run_dir = cfg.run_dir.resolve()
    write_resolved(cfg, run_dir)
    model_path = ensure_model(cfg)
    train_path, eval_path, skipped = ensure_data(cfg, run_dir)
    return PreparedRun(
        run_dir=run_dir, model_path=model_path,
        num_parameters=count_model_parameters(model_path, cfg.model.trust_remote_code),
        train_path=train_path, eval_path=eval_path,
        train_steps=_steps_counts(train_path), eval_steps=_steps_counts(eval_path),
        skipped=skipped, seconds=time.perf_counter() - start,
    )


def print_summary(p: PreparedRun) -> None:
    print(f"run dir      {p.run_dir}")
    print(f"model        {p.model_path}  ({p.num_parameters:,} parameters)")
    for name, counts in (("train", p.train_steps), ("eval", p.eval_steps)):
        per_level = "  ".join(f"L{k}:{v}" for k, v in counts.items())
        print(f"{name:<12} {sum(counts.values())} items by reasoning steps  {per_level}")
    for reason, ids in p.skipped.items():
        print(f"skipped      {len(ids)} rows ({reason}): {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")
    print(f"prepared in  {p.seconds:.1f} s")


def run_demo(cfg: SynergyConfig) -> int:
    """The embedded demo. Today: build the tiny VLM and the data set and summarise them."""
    print_summary(prepare(cfg))
    return 0


def train(cfg: SynergyConfig) -> int:
    import sys

    prepared = prepare(cfg)
    print_summary(prepared)
    print(
        f"synergy-ray: strategy '{cfg.strategy.name}' has no training loop in this version yet; "
        "the model and data above are ready for it",
        file=sys.stderr,
    )
    return 3
