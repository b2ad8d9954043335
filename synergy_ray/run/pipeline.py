"""Run-level orchestration that happens before any actor starts: building the model and the data set.

`prepare` is idempotent: a model directory or data set already on disk is reused, so the demo, the tests and
later phases of a run share one copy.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from synergy_ray import strategies
from synergy_ray.cluster.ray_session import connect
from synergy_ray.config import ConfigError, SynergyConfig, write_resolved
from synergy_ray.console import log
from synergy_ray.evaluation.endpoint_eval import evaluate_endpoint
from synergy_ray.evaluation.evaluator import build_eval_llm, evaluate, format_table, save_report
from synergy_ray.model.engine import release_llm
from synergy_ray.records import PreparedRun
from synergy_ray.run import run_inputs, stages
from synergy_ray.strategies import build
from synergy_ray.strategies.phases import GRPO, LongCotSFT


def ensure_model(cfg: SynergyConfig) -> str:
    """Build the tiny VLM at `model.path` when the config asks for one and it is not there yet."""
    path = Path(cfg.model.path)
    if cfg.model.build_tiny is not None and not (path / "config.json").exists():
        from synergy_ray.model.tiny_vlm import build_tiny_vlm  # defers torch

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


def ensure_data(cfg: SynergyConfig, run_dir: Path) -> tuple[Path, Path, Path | None, dict[str, list[str]]]:
    """Write the train, eval (and, synthetic, val) sets under `run_dir/data` (a user source is split 90/10)."""
    import datasets

    train_path, eval_path, val_path = (run_dir / "data" / name for name in ("train", "eval", "val"))
    d = cfg.data
    synthetic_val = d.source == "synthetic" and d.val_per_level > 0
    have = lambda p: (p / "dataset_info.json").exists()  # noqa: E731
    if have(train_path) and have(eval_path) and (have(val_path) or not synthetic_val):
        return train_path, eval_path, val_path if have(val_path) else None, {}
    skipped: dict[str, list[str]] = {}
    if d.source == "synthetic":
        from synergy_ray.data.synthetic import build_splits  # defers datasets

        splits = build_splits(d.num_per_level, d.eval_per_level, seed=d.seed, image_size=d.image_size,
                              num_val_per_level=d.val_per_level, trace_style=d.trace_style)
        if synthetic_val:
            splits["val"].save_to_disk(str(val_path))
        if have(train_path) and have(eval_path):  # an older run without a val split: leave the rest alone
            return train_path, eval_path, val_path, {}
        train, held_out = splits["train"], splits["eval"]
    else:
        from synergy_ray.data.loader import load_user_dataset  # defers datasets

        try:
            full, report = load_user_dataset(d.source, column_map=dict(d.column_map) or None,
                                             image_root=d.image_root)
        except (ValueError, OSError, RuntimeError) as err:  # unreadable, empty, all rows bad, hub unreachable
            raise ConfigError(f"data.source: {err}") from None
        skipped = report.skipped
        if len(full) < 2:
            raise ConfigError(f"data.source: {len(full)} usable row(s) cannot be split into train and eval; "
                              f"{report.summary()}")
        parts = full.train_test_split(test_size=0.1, seed=d.seed)
        train, held_out = parts["train"], parts["test"]
    assert isinstance(train, datasets.Dataset)
    train.save_to_disk(str(train_path))
    held_out.save_to_disk(str(eval_path))
    return train_path, eval_path, val_path if have(val_path) else None, skipped


def _steps_counts(path: Path) -> dict[int, int]:
    import datasets

    return dict(sorted(Counter(datasets.load_from_disk(str(path))["steps"]).items()))


def prepare(cfg: SynergyConfig) -> PreparedRun:
    """The run's model and data sets, built or reused. A run directory built from other inputs is refused
    (`run_inputs`, a ConfigError naming the field) before anything is written, the resolved config included."""

    start = time.perf_counter()
    run_dir = cfg.run_dir.resolve()
    location = run_inputs.model_location(cfg)
    run_inputs.check(cfg, run_dir, location)
    model_path = ensure_model(cfg)
    train_path, eval_path, val_path, skipped = ensure_data(cfg, run_dir)
    if cfg.eval.split == "validation":
        if val_path is None:
            raise ConfigError(f"eval.split: {cfg.data.source} gave no validation split to evaluate on")
        eval_path = val_path  # every evaluation of this run (and its stored levels) is on the validation split
    run_inputs.record(cfg, run_dir, location)
    write_resolved(cfg, run_dir)
    return PreparedRun(
        run_dir=run_dir, model_path=model_path,
        num_parameters=count_model_parameters(model_path, cfg.model.trust_remote_code),
        train_path=train_path, eval_path=eval_path, val_path=val_path,
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


class StageClock:
    """Prints one header line per stage and its wall time, so a long run shows where it is."""

    def __init__(self, total: int, label: str = ""):
        self.total, self.index, self.start = total, 0, time.perf_counter()
        self.prefix = f"{label} " if label else ""  # which of several side-by-side runs prints
        self.timings: dict[str, float] = {}
        self._t = self.start

    def next(self, title: str) -> None:
        self._close()
        self.index += 1
        self.title, self._t = title, time.perf_counter()
        log().info(f"\n== {self.prefix}[{self.index}/{self.total}] {title}")

    def _close(self) -> None:
        if self.index:
            self.timings[self.title] = time.perf_counter() - self._t
            log().info(f"   {self.prefix}done in {self.timings[self.title]:.0f} s")

    def finish(self) -> float:
        self._close()
        return time.perf_counter() - self.start


def study(cfg: SynergyConfig, plan: list[tuple]) -> list:
    """Base model, L1-L5 levels from its pass rates, then each (config, strategy, phase) of `plan` in order,
    every model evaluated on the same stored level buckets."""

    clock = StageClock(total=3 + 2 * len(plan))
    prepared, base, base_report = start_study(cfg, clock)
    reports = [base_report]
    models = {"base": base}
    for phase_cfg, strategy, phase in plan:
        for name, model in run_phase(phase_cfg, prepared, strategy, phase, models, clock):
            models[phase.makes] = model
            clock.next(f"evaluate {name} on the same levels")
            reports.append(stages.evaluate_model(phase_cfg, prepared, model, name))
    total = clock.finish()
    print("\nAccuracy by difficulty level (levels from the base model's pass@%d):" % reports[0].k)
    print(format_table(reports, "level"))
    print("\nBy design difficulty (reasoning steps):")
    print(format_table(reports, "steps"))
    print(f"\nreports in {prepared.run_dir / 'eval'}; total {total / 60:.1f} min")
    return reports


def start_study(cfg: SynergyConfig, clock: StageClock):
    """Prepare, make the base model, evaluate it and store the levels; returns (prepared, base, base report)."""

    clock.next("prepare: model and data")
    prepared = prepare(cfg)
    print_summary(prepared)
    connect(cfg)
    clock.next("base model: SFT on short answers (Ray Train + DeepSpeed)")
    base = stages.make_base(cfg, prepared)
    clock.next(f"evaluate base, k={cfg.eval.k}, and store L1-L5 levels from its pass rates")
    return prepared, base, stages.assign_levels(prepared, stages.evaluate_model(cfg, prepared, base, "base"))


def run_phase(cfg: SynergyConfig, prepared: PreparedRun, strategy, phase, models: dict, clock: StageClock):
    """One of the strategy's training phases (`strategies.phases`); returns [(report name, model directory)]."""
    clock.next(phase.title(cfg))
    return phase.run(cfg, prepared, models, strategy)


def run_demo(cfg: SynergyConfig) -> int:
    """The embedded demo: the base model, then long-CoT SFT, GRPO and our adaptive GRPO from it, all measured
    by level."""

    plain = build(cfg)
    adaptive_cfg = strategies.strategy_config(cfg, "adaptive")
    adaptive = build(adaptive_cfg)
    study(cfg, [(cfg, plain, LongCotSFT()), (cfg, plain, GRPO()),
                *((adaptive_cfg, adaptive, phase) for phase in adaptive.phases)])
    return 0


def train(cfg: SynergyConfig) -> int:
    """Run the config's strategy: its phases in order, each evaluated by level against the base."""

    strategy = strategies.build(cfg)
    study(cfg, [(cfg, strategy, phase) for phase in strategy.phases])
    return 0


def sft_only(cfg: SynergyConfig) -> int:
    prepared = prepare(cfg)
    connect(cfg)
    out = stages.long_cot_sft(cfg, prepared, Path(prepared.model_path))
    print(f"SFT model exported to {out}")
    return 0


def eval_only(cfg: SynergyConfig, model: str, name: str | None, k: int | None) -> int:
    prepared = prepare(cfg)
    name = name or Path(model).name
    report = evaluate(model, prepared.eval_path, cfg, name=name, k=k, out_json=prepared.run_dir / "eval" / f"{name}.json")
    print(format_table([report], "level" if report.per_level_by_level else "steps"))
    return 0


def eval_benchmarks(cfg: SynergyConfig, model: str, name: str | None, k: int | None, llm=None) -> int:
    """Evaluate one checkpoint on each of `eval.benchmarks` (the authors' level tags), one vLLM engine for all.

    Each benchmark is converted into `run_dir/benchmarks/<benchmark>` and reported in
    `run_dir/eval/<benchmark>/<name>.json`, by the published levels. A given `llm` is used and left running.
    """
    from synergy_ray.data.benchmarks import prepare_benchmark  # defers datasets

    import sys

    run_dir = cfg.run_dir.resolve()
    name = name or Path(model).name
    prepared = []
    for bench in cfg.eval.benchmarks:  # convert all first: a missing directory fails before the engine starts
        try:
            path, report = prepare_benchmark(bench.name, bench.path, run_dir / "benchmarks" / bench.name,
                                             bench.limit)
        except (FileNotFoundError, ValueError) as err:
            print(f"synergy-ray eval: {err}", file=sys.stderr)
            return 2
        print(f"[{bench.name}] {report.summary()}")
        prepared.append((bench.name, path))
    write_resolved(cfg, run_dir)
    engine = llm if llm is not None else build_eval_llm(model, cfg)
    try:
        for bench_name, path in prepared:
            report = evaluate(model, path, cfg, name=name, k=k, llm=engine,
                              out_json=run_dir / "eval" / bench_name / f"{name}.json")
            print(f"\n{bench_name}: {len(report.per_question)} questions x {report.k} samples")
            print(format_table([report], "level"))
    finally:
        if llm is None:
            release_llm(engine)
    return 0


def eval_endpoint(cfg: SynergyConfig, endpoint: str, model: str | None, name: str | None, k: int | None,
                  concurrency: int | None) -> int:
    """`eval --endpoint`: the held-out set through a served model, reported like `eval_only`."""
    import sys

    from openai import APIError

    prepared = prepare(cfg)
    try:
        report = evaluate_endpoint(endpoint, prepared.eval_path, cfg, model=model, name=name, k=k,
                                   concurrency=concurrency)
    except (ValueError, APIError) as err:
        print(f"synergy-ray: {endpoint}: {err}", file=sys.stderr)
        return 1
    out = save_report(report, prepared.run_dir / "eval" / f"{report.name.replace('/', '_')}.json")
    print(format_table([report], "level" if report.per_level_by_level else "steps"))
    print(f"report in {out}")
    return 0
