"""Every plot the project draws (compare's gain chart, the report's pages), in one place so they look alike.

Each function takes plain numbers and returns a matplotlib Figure, unsaved, so a test can read its axes before
`save_png` writes it. Levels are always drawn in the order L1 (easy) .. L5 (hard); a model keeps its colour in
every figure of a page when the caller passes the same `colours`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

LEVELS = (1, 2, 3, 4, 5)
LEVEL_LABELS = [f"L{lv}" for lv in LEVELS]
LEVEL_AXIS = "difficulty level (from the base model's pass@k)"
CURVES = (  # (metrics key, axis label) of the RL training curves
    ("reward_mean", "mean reward"),
    ("pass_rate", "pass rate of the step's samples"),
    ("response_tokens_mean", "mean response length (tokens)"),
    ("learner.kl", "KL to the reference"),
)


def colour_map(models: Sequence[str]) -> dict[str, tuple]:
    """A distinct colour per model: tab20's ten strong colours first, then their light partners."""
    palette = plt.get_cmap("tab20")
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    return {m: palette(order[i % 20]) for i, m in enumerate(models)}


def _log_if_wide(ax, values: Sequence[float]) -> None:
    """Log scale with plain-number ticks when the values span more than a factor of 20."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = [v for v in values if v > 0 and not math.isnan(v)]
    if positive and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def _grouped_bars(ax, groups: Sequence[str], series: dict[str, Sequence[float | None]], colours) -> None:
    """One bar per series inside each group; None draws no bar."""
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [math.nan if v is None else v for v in values]
        ax.bar(xs, heights, width, label=name, color=colours.get(name))
    ax.set_xticks(range(len(groups)), list(groups))


def _legend(ax, n: int) -> None:
    """Outside the axes, on the right, so it never hides a bar or a line."""
    ax.legend(fontsize=8, ncol=1 if n <= 16 else 2, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0)


def level_accuracy_figure(accuracy: dict[str, Sequence[float | None]], colours=None, title: str = "") -> Figure:
    """Accuracy (%) per level for each model; `accuracy[model]` holds L1..L5 (None where a level is empty)."""
    colours = colours or colour_map(list(accuracy))
    fig, ax = plt.subplots(figsize=(11, 4.8))
    _grouped_bars(ax, LEVEL_LABELS, accuracy, colours)
    ax.set_xlabel(LEVEL_AXIS)
    ax.set_ylabel("accuracy (%, mean pass@1 over k samples)")
    ax.set_ylim(0, 105)
    ax.set_title(title or "Accuracy by difficulty level")
    _legend(ax, len(accuracy))
    fig.tight_layout()
    return fig


def gain_figure(gains: dict[str, Sequence[float | None]], colours=None, title: str = "") -> Figure:
    """Accuracy gain over the base model (points) per level for each model."""
    colours = colours or colour_map(list(gains))
    fig, ax = plt.subplots(figsize=(11, 4.8))
    _grouped_bars(ax, LEVEL_LABELS, gains, colours)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel(LEVEL_AXIS)
    ax.set_ylabel("accuracy gain over base (points)")
    ax.set_title(title or "Gain over the base model by level")
    _legend(ax, len(gains))
    fig.tight_layout()
    return fig


def length_figure(lengths: dict[str, Sequence[float]], tokens_by_level: dict[str, Sequence[float | None]],
                  colours=None, per_sample: bool = True) -> Figure:
    """Left: the distribution of response lengths per model; right: mean length per level.

    `per_sample` False means `lengths` holds per-question means (reports written before per-sample lengths).
    """
    models = list(lengths)
    colours = colours or colour_map(models)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    boxes = left.boxplot([list(lengths[m]) or [math.nan] for m in models], patch_artist=True, showfliers=True,
                         flierprops={"markersize": 2, "alpha": 0.4}, medianprops={"color": "black"})
    for patch, m in zip(boxes["boxes"], models):
        patch.set_facecolor(colours[m])
        patch.set_alpha(0.7)
    left.set_xticks(range(1, len(models) + 1), models, rotation=30, ha="right")
    left.set_xlabel("model")
    left.set_ylabel("response length (tokens)" if per_sample else "per-question mean response length (tokens)")
    values = [v for m in models for v in lengths[m]]
    _log_if_wide(left, values)
    left.set_title("Response length distribution" + ("" if per_sample else " (per-question means)"))
    for m, means in tokens_by_level.items():
        right.plot(range(len(LEVELS)), [math.nan if v is None else v for v in means], marker="o", label=m,
                   color=colours.get(m))
    right.set_xticks(range(len(LEVELS)), LEVEL_LABELS)
    right.set_xlabel(LEVEL_AXIS)
    right.set_ylabel("mean response length (tokens)")
    right.set_title("Mean length by level")
    _log_if_wide(right, values)
    _legend(right, len(tokens_by_level))
    fig.tight_layout()
    return fig


def reasoning_words_figure(rates: dict[str, dict[str, float]], colours=None) -> Figure:
    """Occurrences per response of each reasoning word ("wait", "check", ...) for each model."""
    colours = colours or colour_map(list(rates))
    words = list(dict.fromkeys(w for per_word in rates.values() for w in per_word))
    fig, ax = plt.subplots(figsize=(11, 4.8))
    _grouped_bars(ax, [f'"{w}"' for w in words], {m: [r.get(w, 0.0) for w in words] for m, r in rates.items()},
                  colours)
    ax.set_xlabel("reasoning word (counted with its inflections: check, checking, checked)")
    ax.set_ylabel("occurrences per response")
    ax.set_title("Reasoning-word frequency")
    _legend(ax, len(rates))
    fig.tight_layout()
    return fig


def _smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average that skips NaNs; the first points average what exists so far."""
    out = []
    for i in range(len(values)):
        part = [v for v in values[max(0, i - window + 1): i + 1] if not math.isnan(v)]
        out.append(sum(part) / len(part) if part else math.nan)
    return out


def training_curves_figure(runs: dict[str, list[dict]], colours=None) -> Figure:
    """RL curves per run (reward, pass rate, response length, KL) against the step: raw faint, smoothed solid."""
    colours = colours or colour_map(list(runs))
    fig, axes = plt.subplots(2, 2, figsize=(13, 7.5), sharex=False)
    for ax, (key, label) in zip(axes.flat, CURVES):
        for name, rows in runs.items():
            steps = [r["step"] for r in rows]
            values = [_metric(r, key) for r in rows]
            ax.plot(steps, values, color=colours.get(name), alpha=0.25, linewidth=0.8)
            ax.plot(steps, _smooth(values, max(1, len(rows) // 15)), color=colours.get(name), label=name)
        ax.set_xlabel("RL step")
        ax.set_ylabel(label)
    _legend(axes.flat[1], len(runs))
    fig.suptitle("RL training curves (faint: per step; solid: moving average)")
    fig.tight_layout()
    return fig


def _metric(row: dict, dotted: str) -> float:
    value: object = row
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, (int, float)) else math.nan


def sft_loss_figure(runs: dict[str, list[dict]], colours=None) -> Figure:
    """SFT loss against the optimiser step for each SFT job (base warm-up, long-CoT SFT, data mixing)."""
    colours = colours or colour_map(list(runs))
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for name, rows in runs.items():
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=name, color=colours.get(name))
    ax.set_xlabel("SFT optimiser step")
    ax.set_ylabel("training loss (token cross-entropy)")
    _log_if_wide(ax, [r["loss"] for rows in runs.values() for r in rows])
    ax.set_title("SFT loss")
    _legend(ax, len(runs))
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: str | Path | None = None, dpi: int = 100) -> bytes:
    """PNG bytes of `fig` (written to `path` too when given); closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")  # keeps the outside legends
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data
