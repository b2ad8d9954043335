"""Results over seeds: each strategy's mean +- sd per level group, and paired differences against a baseline.

A level group is a set of stored levels (L1 ... L5, "L1-L2", "L4-L5", all). Per report and group:
- accuracy: mean over the group's questions of num_correct / num_samples (as `core.eval_stats`), in %;
- pass@k: share of the group's questions with at least one correct sample among its k, in %;
- tokens: mean over the group's questions of their mean completion length.
Across seeds: the mean and the sample standard deviation (n - 1; 0 for one seed). A paired difference takes,
seed by seed, the strategy's value minus the baseline's at the same seed, and reports the mean difference and
its standard error, sd of the differences / sqrt(n) (None for one seed).
"""

from __future__ import annotations

import math
from statistics import fmean, stdev
from typing import Sequence

GROUPS: dict[str, tuple[int, ...] | None] = {
    "L1": (1,), "L2": (2,), "L3": (3,), "L4": (4,), "L5": (5,), "L1-L2": (1, 2), "L4-L5": (4, 5), "all": None}
METRICS = ("accuracy", "pass_at_k", "tokens")


def group_metrics(per_question: Sequence) -> dict[str, dict[str, float | None]]:
    """group -> metric -> value for one report's questions (`QuestionResult`s with stored levels)."""
    out = {}
    for name, levels in GROUPS.items():
        qs = [q for q in per_question if levels is None or q.level in levels]
        if not qs:
            out[name] = dict.fromkeys(METRICS)
            continue
        out[name] = {"accuracy": 100 * fmean(q.num_correct / q.num_samples for q in qs),
                     "pass_at_k": 100 * fmean(q.num_correct > 0 for q in qs),
                     "tokens": fmean(q.mean_tokens for q in qs), "questions": len(qs)}
    return out


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return fmean(values), (stdev(values) if len(values) > 1 else 0.0)


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> tuple[float, float | None]:
    """(mean of values[i] - baseline[i], its standard error); the lists are paired by seed."""
    if len(values) != len(baseline) or not values:
        raise ValueError(f"pair {len(values)} values with {len(baseline)} baseline values, at least one each")
    diffs = [a - b for a, b in zip(values, baseline)]
    return fmean(diffs), (stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None)


def seed_summary(metrics: dict[str, list[dict]], baseline: str | None) -> dict:
    """From strategy -> [group_metrics of each seed, seed order], the JSON the seeds table is written from:
    {"strategies": {name: {group: {metric: [mean, sd]}}}, "paired": {name: {group: {metric: [mean, se]}}}}.
    Strategies with another seed count than the baseline are not paired."""
    summary: dict = {"strategies": {}, "paired": {}, "baseline": baseline,
                     "seeds": {name: len(runs) for name, runs in metrics.items()}}
    for name, runs in metrics.items():
        summary["strategies"][name] = {
            g: {m: list(mean_sd([r[g][m] for r in runs])) if all(r[g][m] is not None for r in runs) else None
                for m in METRICS} for g in GROUPS}
    base = metrics.get(baseline) if baseline else None
    for name, runs in metrics.items():
        if base is None or name == baseline or len(runs) != len(base):
            continue
        summary["paired"][name] = {
            g: {m: list(paired_difference([r[g][m] for r in runs], [b[g][m] for b in base]))
                if all(r[g][m] is not None for r in runs + base) else None for m in METRICS} for g in GROUPS}
    return summary


def _pm(pair, spec: str = ".1f") -> str:
    if pair is None:
        return "-"
    mean, spread = pair
    return f"{mean:{spec}}" if spread is None else f"{mean:{spec}} ± {spread:{spec}}"


def seeds_markdown(summary: dict) -> str:
    """Two tables: accuracy / pass@k / tokens as mean ± sd per strategy, then the paired differences."""
    from synergy_ray.evaluation.tables import markdown_table

    head = ["strategy", "seeds", *GROUPS, "pass@k L4-L5", "tokens"]
    rows = [[name, str(summary["seeds"][name]), *(_pm(s[g]["accuracy"]) for g in GROUPS),
             _pm(s["L4-L5"]["pass_at_k"]), _pm(s["all"]["tokens"], ".0f")]
            for name, s in summary["strategies"].items()]
    text = ("Accuracy (%) by level over seeds, mean ± sd (sample sd); pass@k and tokens likewise.\n\n"
            + markdown_table(head, rows) + "\n")
    if summary["paired"]:
        rows = [[name, *(_pm(p[g]["accuracy"]) for g in GROUPS), _pm(p["L4-L5"]["pass_at_k"]),
                 _pm(p["all"]["tokens"], ".1f")] for name, p in summary["paired"].items()]
        text += (f"\nPaired by seed against `{summary['baseline']}`: mean difference ± its standard error.\n\n"
                 + markdown_table(["strategy", *GROUPS, "pass@k L4-L5", "tokens"], rows) + "\n")
    return text
