"""`synergy-ray compare cfg.yaml`: base, SFT, RL and every combination on the same data and level buckets,
one table in the paper's layout (accuracy per level and overall, mean response length, reasoning words,
training wall time), written as Markdown, JSON and a PNG of per-level gain over the base.

Strategies (`compare.strategies`) run one after another on the local Ray (or the connected cluster); models
that several strategies share (the base, the SFT and the plain-RL checkpoints) are trained once and reused,
so a strategy's wall time counts only the phases it added. With `compare.parallel` each strategy is a Ray task
of its own, started as soon as the strategies whose models it reuses (its `builds_on`) have finished: on a cluster
they run side by side wherever their placement groups fit (submit the comparison itself with
`synergy-ray submit CFG --command compare compare.parallel=true`). Each task asks Ray for one generator's
GPUs (`cluster.gpus_per_generator`), where its evaluation engine runs.

With `compare.seeds` N > 1, every strategy made only of GRPO from the base (`seeded`) also runs with seeds
run.seed + 1 ... + N - 1, under its name with `_seed<i>` (its own RL work directory, model and report), on the
same base and levels; `compare/seeds.md` and `seeds.json` hold mean +- sd over the seeds per level (and the
level groups L1-L2, L4-L5) and the difference to `rl` paired by seed (`evaluation.seeds`), for one seed too.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from synergy_ray.config import SynergyConfig
from synergy_ray.console import log
from synergy_ray.core.difficulty import LEVELS
from synergy_ray.evaluation.tables import cell, markdown_table
from synergy_ray.run import pipeline, stages
from synergy_ray.strategies import build, strategy_class, strategy_config
from synergy_ray.strategies.phases import GRPO

SEED_BASELINE = "rl"  # what seeded strategies are paired against

def _kind(variants: dict, name: str) -> str:
    """The strategy a compared name runs: itself, or the strategy of the variant so named."""
    return variants[name]["name"] if name in variants else name


def seeded(cfg: SynergyConfig) -> list[str]:
    """The chosen strategies that `compare.seeds` repeats: those whose every phase is GRPO from the base."""
    return [n for n in cfg.compare.strategies if not strategy_class(_kind(cfg.compare.variants, n)).builds_on
            and all(isinstance(p, GRPO) for p in build(strategy_config(cfg, n)).phases)]


def run_compare(cfg: SynergyConfig) -> int:
    names = cfg.compare.strategies
    extra = [(n, s) for s in range(1, cfg.compare.seeds) for n in seeded(cfg)]  # (strategy, seed offset)
    clock = pipeline.StageClock(total=3 + 2 * len(extra) + (0 if cfg.compare.parallel else sum(
        2 * len(build(strategy_config(cfg, n)).phases) for n in names)))
    start = time.perf_counter()
    prepared, base, base_report = pipeline.start_study(cfg, clock)
    models, reports, seconds = {"base": base}, {"base": base_report}, {"base": time.perf_counter() - start}
    if cfg.compare.parallel:
        run_side_by_side(cfg, prepared, models, reports, seconds)
    else:
        for name in names:
            added, evaluated, took = run_strategy(cfg, name, prepared, models, reports, clock)
            credit_seconds(seconds, name, evaluated, took)
            models.update(added)
            reports.update(evaluated)
    for name, offset in extra:
        _, evaluated, took = run_strategy(cfg, name, prepared, {"base": base}, reports, clock, seed_offset=offset)
        credit_seconds(seconds, f"{name}_seed{offset}", evaluated, took)
        reports.update(evaluated)
    clock.finish()
    out = prepared.run_dir / "compare"
    write_outputs(list(reports.values()), _keep_earlier_wall_times(seconds, out / "compare.json"), out,
                  rl_seconds={name: rl_step_seconds(prepared.run_dir, name) for name in reports})
    print((out / "compare.md").read_text())
    if seeded(cfg):
        print(write_seeds(cfg, reports, out))
    return 0


def write_seeds(cfg: SynergyConfig, reports: dict, out: Path) -> str:
    """`seeds.json` and `seeds.md` from every seeded strategy's reports (seed order); returns the Markdown."""
    from synergy_ray.evaluation.seeds import group_metrics, seed_summary, seeds_markdown

    names = seeded(cfg)
    runs = {n: [group_metrics(reports[r].per_question) for r in
                [n, *(f"{n}_seed{s}" for s in range(1, cfg.compare.seeds))] if r in reports] for n in names}
    summary = seed_summary(runs, SEED_BASELINE if SEED_BASELINE in names else None)
    summary["first_seed"] = cfg.run.seed
    (out / "seeds.json").write_text(json.dumps(summary, indent=1))
    text = seeds_markdown(summary)
    (out / "seeds.md").write_text(text)
    return text


def run_strategy(cfg: SynergyConfig, name: str, prepared, models: dict, reports: dict, clock=None,
                 seed_offset: int = 0):
    """One strategy's phases from the models there are, each new model evaluated once.

    Returns (models it made, reports it added, seconds). Phases whose output exists are reused by the stages.
    A variant's GRPO phase makes its model under the variant's name. `seed_offset` > 0 runs it with
    run.seed + seed_offset, its GRPO phases' models under `<name>_seed<offset>`.
    """

    scfg = strategy_config(cfg, name)
    strategy = build(scfg)
    if seed_offset:
        scfg = scfg.model_copy(update={"run": scfg.run.model_copy(update={"seed": cfg.run.seed + seed_offset})})
    if seed_offset or name in cfg.compare.variants:
        tag = f"_seed{seed_offset}" if seed_offset else ""
        strategy.phases = tuple(dataclasses.replace(p, makes=f"{name}{tag}") if isinstance(p, GRPO) else p
                                for p in strategy.phases)
    phases = strategy.phases
    own_clock = clock is None
    clock = clock or pipeline.StageClock(total=2 * len(phases), label=name)
    models, added, evaluated = dict(models), {}, {}
    start = time.perf_counter()
    for phase in phases:
        for model_name, model in pipeline.run_phase(scfg, prepared, strategy, phase, models, clock):
            models[phase.makes] = added[phase.makes] = model
            if model_name not in reports and model_name not in evaluated:
                clock.next(f"evaluate {model_name} on the same levels")
                evaluated[model_name] = stages.evaluate_model(scfg, prepared, model, model_name)
    if own_clock:
        clock.finish()
    return added, evaluated, time.perf_counter() - start


def side_by_side_order(names: list[str], finished: set[str], started: set[str],
                       variants: dict | None = None) -> list[str]:
    """The strategies that may start now: not started, and every chosen strategy they build on finished."""

    return [n for n in names if n not in started
            and all(d in finished for d in strategy_class(_kind(variants or {}, n)).builds_on if d in names)]


def run_side_by_side(cfg: SynergyConfig, prepared, models: dict, reports: dict, seconds: dict) -> None:
    """`compare.parallel`: one Ray task per strategy, each started once the strategies it builds on finished."""
    import ray

    task = ray.remote(run_strategy).options(num_cpus=0, num_gpus=cfg.cluster.gpus_per_generator,
                                            max_retries=0)
    names, finished, running = cfg.compare.strategies, set(), {}
    while len(finished) < len(names):
        for name in side_by_side_order(names, finished, set(running.values()) | finished,
                                       cfg.compare.variants):
            log().info(f"[compare] starting {name} as a Ray task")
            running[task.remote(cfg, name, prepared, models, reports)] = name
        done, _ = ray.wait(list(running), num_returns=1)
        name = running.pop(done[0])
        added, evaluated, took = ray.get(done[0])  # a failed strategy stops the comparison here
        credit_seconds(seconds, name, evaluated, took)
        models.update(added)
        reports.update(evaluated)
        finished.add(name)
        log().info(f"[compare] {name} finished in {took:.0f} s ({len(running)} still running)")


def credit_seconds(seconds: dict[str, float], strategy: str, reports_made, took: float) -> None:
    """A strategy's wall time goes to its own row and to every report it made under another name
    (`merge` -> `merge_linear_0.25`); the rows of one merge sweep share it."""
    for name in {strategy, *reports_made}:
        seconds[name] = took


REUSED_BELOW_S = 60.0  # a strategy that took less than this only re-read finished checkpoints


def _keep_earlier_wall_times(seconds: dict[str, float], previous_json: Path) -> dict[str, float]:
    """A rerun reuses finished checkpoints, so a strategy it did not retrain keeps the wall time it was trained in."""
    if not previous_json.exists():
        return seconds
    earlier = {r["model"]: r["wall_s"] for r in json.loads(previous_json.read_text()) if r.get("wall_s")}
    return {name: earlier.get(name) if s < REUSED_BELOW_S else s for name, s in seconds.items()}


def rl_step_seconds(run_dir: Path, name: str) -> float | None:
    """The summed step time of a strategy's RL loop from its metrics file (engine start-up not included).

    A resumed run can repeat steps in the file; the last record of each step counts.
    """
    path = run_dir / f"{name}_work" / "metrics.jsonl"
    if not path.exists():
        return None
    last = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut off by a crash
            continue
        last[row["step"]] = row["timings"]
    parts = ("generate", "score", "train", "sync")
    return sum(t.get("step", sum(t.get(k, 0.0) for k in parts)) for t in last.values())


def accuracy_row(report, seconds: float | None = None) -> dict:
    """One model's line of the table: accuracy (%) per level and overall, mean tokens, reasoning words."""
    levels = report.per_level_by_level or {}
    row = {"model": report.name, "wall_s": seconds}
    for lv in LEVELS:
        stats = levels.get(lv)
        row[f"L{lv}"] = None if stats is None else 100 * stats.accuracy
    overall = levels.get("all") or report.per_level_by_steps["all"]
    row.update(all=100 * overall.accuracy, tokens=overall.mean_tokens, reasoning_words=overall.reasoning_per_response)
    return row


def write_outputs(reports: list, seconds: dict[str, float | None], out: Path,
                  rl_seconds: dict[str, float | None] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [accuracy_row(r, seconds.get(r.name)) | {"rl_steps_s": (rl_seconds or {}).get(r.name)} for r in reports]
    (out / "compare.json").write_text(json.dumps(rows, indent=1))
    head = ["model", *(f"L{lv}" for lv in LEVELS), "all", "tokens", "reasoning words", "train wall s", "RL steps s"]
    table = markdown_table(head, [[r["model"], *(cell(r[f"L{lv}"], ".1f") for lv in LEVELS), cell(r["all"], ".1f"),
                                   cell(r["tokens"], ".0f"), cell(r["reasoning_words"], ".2f"),
                                   cell(r["wall_s"], ".0f"), cell(r["rl_steps_s"], ".0f")] for r in rows])
    (out / "compare.md").write_text(
        "Accuracy (%) by level (levels from the base model's pass@k). `train wall s`: the time this invocation "
        "spent on the strategy's own phases and their evaluations (`-`: every checkpoint was reused from an earlier "
        "invocation); `RL steps s`: the summed step time of its RL loop from its metrics file.\n\n"
        + table + "\n")
    plot_gain(rows, out / "gain_over_base.png")


def plot_gain(rows: list[dict], path: Path) -> None:
    """Per-level gain of every row over the first (the base), drawn by `plots.gain_figure`."""
    from synergy_ray.evaluation.plots import gain_figure, save_png  # defers matplotlib

    base = rows[0]
    gains = {r["model"]: [None if r[f"L{lv}"] is None or base[f"L{lv}"] is None else r[f"L{lv}"] - base[f"L{lv}"]
                          for lv in LEVELS] for r in rows[1:]}
    save_png(gain_figure(gains), path, dpi=120)
