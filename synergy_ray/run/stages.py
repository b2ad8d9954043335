"""The stages a run is made of, each a function from the config and what came before to a model or a report.

Each stage writes its output under the run directory and is skipped when that output already exists, so a
re-run (or a run resumed after a crash) continues from the first stage that did not finish.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from synergy_ray.config import SynergyConfig
from synergy_ray.console import log
from synergy_ray.coordinator import Coordinator
from synergy_ray.core.difficulty import assign_level
from synergy_ray.core.eval_stats import summarize_by_level
from synergy_ray.core.mixing import mix_rows
from synergy_ray.core.rewards import score_completion
from synergy_ray.evaluation.evaluator import assign_levels_to_dataset, evaluate, load_report, sample_completions, save_report
from synergy_ray.model.engine import build_llm, release_llm
from synergy_ray.records import PreparedRun
from synergy_ray.run.merging import merge_checkpoints
from synergy_ray.run.rl_checkpoints import latest_checkpoint


def _done(model_dir: Path) -> bool:
    return (model_dir / "config.json").exists() and any(model_dir.glob("*.safetensors"))


def _run_sft_stage(cfg: SynergyConfig, start_model: str, train_path: Path, out: Path, name: str, **changes) -> Path:
    from synergy_ray.sft_job import run_sft, spec_from_config  # defers torch

    if _done(out):
        log().info(f"[{name}] reusing {out}")
        return out
    spec = spec_from_config(cfg, start_model, str(train_path), str(out),
                            metrics_path=str(out.parent / f"{name}_metrics.jsonl"), **changes)
    result = run_sft(spec, storage_dir=str(out.parent / "ray_train"), name=name)
    losses = [row["loss"] for row in result.history]
    if losses:
        log().info(f"[{name}] {len(losses)} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}"
              f"{f', {result.dropped_too_long} too-long examples dropped' if result.dropped_too_long else ''}")
    return out


def make_base(cfg: SynergyConfig, prepared: PreparedRun) -> Path:
    """Warm the configured model up on short answers into the run's base model (`model.make_base`)."""
    w = cfg.model.make_base
    if w is None:
        return Path(prepared.model_path)
    return _run_sft_stage(cfg, prepared.model_path, prepared.train_path, prepared.run_dir / "base", "base",
                          target="short_solution", lr=w.lr, epochs=w.epochs, batch_size=w.batch_size,
                          micro_batch_size=w.micro_batch_size)


def long_cot_sft(cfg: SynergyConfig, prepared: PreparedRun, start_model: Path) -> Path:
    """The paper's long-CoT SFT from `start_model` with the `sft` section's settings (and each epoch's model)."""
    epochs_dir = str(prepared.run_dir / "sft_epochs") if cfg.sft.export_every_epoch else None
    return _run_sft_stage(cfg, str(start_model), prepared.train_path, prepared.run_dir / "sft", "sft",
                          epochs_dir=epochs_dir)


def best_sft_epoch(cfg: SynergyConfig, prepared: PreparedRun, sft_model: Path, k: int) -> Path:
    """The SFT epoch with the best validation accuracy (ties: the earlier epoch), for two-stage's RL start.

    Falls back to the final SFT model, saying why, when there is no validation split or no per-epoch export.
    The choice and every epoch's accuracy are written to `sft_selection.json`.
    """

    record_path = prepared.run_dir / "sft_selection.json"
    if record_path.exists():
        return Path(json.loads(record_path.read_text())["chosen"])
    epochs = sorted((prepared.run_dir / "sft_epochs").glob("epoch_*"), key=lambda p: int(p.name.split("_")[1]))
    if prepared.val_path is None or not epochs:
        why = "no validation split" if prepared.val_path is None else "no per-epoch SFT exports"
        log().warning(f"[two_stage] {why}: RL starts from the final SFT model")
        return sft_model
    scores = {}
    for epoch in epochs:
        report = evaluate(str(epoch), prepared.val_path, cfg, name=f"sft_{epoch.name}", k=k)
        scores[str(epoch)] = report.per_level_by_steps["all"].accuracy
        log().info(f"[two_stage] {epoch.name}: validation accuracy {100 * scores[str(epoch)]:.1f}% (k={k})")
    chosen = max(epochs, key=lambda p: scores[str(p)])  # max keeps the first of equal scores
    record_path.write_text(json.dumps({"chosen": str(chosen), "validation_accuracy": scores, "k": k}, indent=1))
    return chosen


def evaluate_model(cfg: SynergyConfig, prepared: PreparedRun, model: Path, name: str):
    """Offline evaluation on the held-out set; the report is written to run_dir/eval/<name>.json."""

    out = prepared.run_dir / "eval" / f"{name}.json"
    if out.exists():
        report = load_report(out)
        if report.per_level_by_level is not None or not _has_levels(prepared.eval_path):
            log().info(f"[eval:{name}] reusing {out}")
            return report
    start = time.perf_counter()
    report = evaluate(str(model), prepared.eval_path, cfg, name=name, out_json=out)
    log().info(f"[eval:{name}] {len(report.per_question)} questions x {report.k} samples in "
          f"{time.perf_counter() - start:.0f} s")
    return report


def _has_levels(data_path: Path) -> bool:
    import datasets

    return "level" in datasets.load_from_disk(str(data_path)).column_names


def assign_levels(prepared: PreparedRun, base_report):
    """Store each held-out question's L1-L5 level from the base model's pass@k, once, and relabel the report.

    Later models are measured on these stored buckets, never on their own pass rates.
    """

    if not _has_levels(prepared.eval_path):
        counts = assign_levels_to_dataset(prepared.eval_path, base_report.per_question)
        log().info("[levels] from the base model's pass@%d: %s" % (
            base_report.k, "  ".join(f"L{lvl}:{n}" for lvl, n in sorted(counts.items()))))
    results = [dataclasses.replace(q, level=assign_level(q.num_correct, q.num_samples))
               for q in base_report.per_question]
    report = dataclasses.replace(base_report, per_question=results,
                                 per_level_by_level=summarize_by_level(results, "level"))
    save_report(report, prepared.run_dir / "eval" / f"{report.name}.json")
    return report


def grpo(cfg: SynergyConfig, prepared: PreparedRun, start_model: Path, name: str, strategy) -> Path:
    """The distributed GRPO loop from `start_model`, guided by `strategy`; resumes from the run's latest RL
    checkpoint if there is one."""
    import ray

    out = prepared.run_dir / name
    if _done(out):
        log().info(f"[{name}] reusing {out}")
        return out
    work = prepared.run_dir / f"{name}_work"
    coordinator = ray.remote(Coordinator).options(num_cpus=0, max_concurrency=1).remote(
        cfg, str(start_model), str(prepared.train_path), str(work), strategy)
    latest = latest_checkpoint(work / "checkpoints")
    if latest is not None:
        ray.get(coordinator.load_checkpoint.remote(str(latest)))
        log().info(f"[{name}] resumed from {latest.name}")
    history = ray.get(coordinator.run.remote())
    ray.get(coordinator.export.remote(str(out)))
    if history:
        first, last = history[0], history[-1]
        log().info(f"[{name}] {len(history)} steps: reward {first['reward_mean']:.3f} -> {last['reward_mean']:.3f}")
    ray.get(coordinator.shutdown.remote())  # frees its placement groups
    ray.kill(coordinator)
    return out


def data_mix(cfg: SynergyConfig, prepared: PreparedRun, rl_model: Path, base: Path, samples_per_question: int,
             epochs: int) -> Path:
    """The data-mixing combination: the RL model's correct samples plus long-CoT traces for the questions it
    never solves, then SFT from the base on that mix."""
    import datasets

    out = prepared.run_dir / "data_mix"
    if _done(out):
        log().info(f"[data_mix] reusing {out}")
        return out
    mix_path = prepared.run_dir / "data" / "mix"
    if not (mix_path / "dataset_info.json").exists():
        from transformers import AutoProcessor

        k = samples_per_question
        train = datasets.load_from_disk(str(prepared.train_path))
        rows = list(train)
        processor = AutoProcessor.from_pretrained(str(rl_model))
        llm = build_llm(str(rl_model), cfg.rollout, dtype=cfg.model.dtype, seed=cfg.run.seed)
        try:
            samples = sample_completions(llm, processor, rows, cfg.data.prompt_suffix, k, cfg.rollout.temperature,
                                         cfg.rollout.top_p, cfg.rollout.top_k, cfg.rollout.max_tokens)
        finally:
            release_llm(llm)
        texts = [[c.text for c in s] for s in samples]
        correct = [[score_completion(t, r["answer"], r["choices"]).correct for t in ts] for r, ts in zip(rows, texts)]
        index = {r["id"]: i for i, r in enumerate(rows)}
        mix, stats = mix_rows([{"id": r["id"], "long_cot": r["long_cot"]} for r in rows], texts, correct)
        mixed = train.select([index[m["id"]] for m in mix]).add_column("mix_response", [m["mix_response"] for m in mix])
        mixed.save_to_disk(str(mix_path))
        log().info(f"[data_mix] {stats['questions']} questions x {k} samples: {stats['solved']} solved "
              f"({stats['correct_answers']} distinct correct answers kept), {stats['long_cot_added']} long-CoT added")
    return _run_sft_stage(cfg, str(base), mix_path, out, "data_mix", target="mix_response",
                          epochs=epochs)


def merge(prepared: PreparedRun, sft_model: Path, rl_model: Path, base: Path, method: str, weight: float) -> Path:
    out = prepared.run_dir / f"merge_{method}_{weight:g}"
    if _done(out):
        log().info(f"[merge] reusing {out}")
        return out
    merge_checkpoints(sft_model, rl_model, out, method, weight, base=base if method == "ties" else None)
    log().info(f"[merge] {method} with SFT weight {weight:g} -> {out}")
    return out
