"""`synergy-ray report RUN_DIR [RUN_DIR ...]`: one page of tables and plots from finished (or running) runs.

Reads what the runs already wrote, nothing else: evaluation reports (`eval/*.json` for the held-out set,
`eval/<benchmark>/*.json` for benchmarks), RL metrics (`<name>_work/metrics.jsonl`) and SFT metrics
(`<name>_metrics.jsonl`). Writes either a self-contained HTML file (PNG plots embedded as base64) or a Markdown
file with the PNGs beside it. Plots: accuracy by level, gain over the base, response-length distributions,
reasoning-word frequencies, RL training curves and SFT loss (all drawn by `plots`).

With several run directories a model is named `<run>/<model>`, and its gain is measured against its own run's
base. A metrics line that does not parse (a run still writing it) is skipped; when a resumed run logged a step
twice, its last record is used.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from synergy_ray.core.difficulty import LEVELS
from synergy_ray.core.eval_stats import ALL
from synergy_ray.evaluation.evaluator import EvalReport, load_report
from synergy_ray.evaluation.tables import markdown_table
from synergy_ray.run.compare import accuracy_row

FIRST = ("base", "sft", "rl")  # then the other models alphabetically


@dataclass
class RunData:
    run_dir: Path
    reports: list[EvalReport]  # the held-out set, base first
    benchmarks: dict[str, list[EvalReport]] = field(default_factory=dict)
    rl_metrics: dict[str, list[dict]] = field(default_factory=dict)
    sft_metrics: dict[str, list[dict]] = field(default_factory=dict)


@dataclass
class Section:
    title: str
    text: str = ""
    figure: str | None = None  # key into the page's figures
    table: list[list[str]] | None = None  # header row first


def _order(names):
    return sorted(names, key=lambda n: (FIRST.index(n) if n in FIRST else len(FIRST), n))


def _read_reports(folder: Path) -> list[EvalReport]:
    reports = {r.name: r for r in (load_report(p) for p in sorted(folder.glob("*.json")))}
    return [reports[n] for n in _order(reports)]


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    # A resumed or restarted run appends steps again from an earlier point: the last record of a step wins.
    by_step = {r["step"]: r for r in rows if isinstance(r, dict) and isinstance(r.get("step"), int)}
    return [by_step[s] for s in sorted(by_step)]


def read_run(run_dir: str | Path) -> RunData:
    run_dir = Path(run_dir)
    if not (run_dir / "eval").is_dir() and not any(run_dir.glob("*_work/metrics.jsonl")):
        raise FileNotFoundError(f"{run_dir} has neither eval/*.json reports nor *_work/metrics.jsonl: "
                                "is it a run directory (run.output_dir/run.name)?")
    data = RunData(run_dir, _read_reports(run_dir / "eval") if (run_dir / "eval").is_dir() else [])
    for sub in sorted(p for p in (run_dir / "eval").glob("*") if p.is_dir()):
        if reports := _read_reports(sub):
            data.benchmarks[sub.name] = reports
    for path in sorted(run_dir.glob("*_work/metrics.jsonl")):
        if rows := _read_jsonl(path):
            data.rl_metrics[path.parent.name.removesuffix("_work")] = rows
    for path in sorted(run_dir.glob("*_metrics.jsonl")):
        if rows := [r for r in _read_jsonl(path) if "loss" in r]:
            data.sft_metrics[path.name.removesuffix("_metrics.jsonl")] = rows
    return data


# ---------------------------------------------------------------- figures


def _label(run: RunData, name: str, many: bool) -> str:
    return f"{run.run_dir.name}/{name}" if many else name


def _levels(report: EvalReport, attr: str) -> list[float | None]:
    table = report.per_level_by_level or {}
    return [None if lv not in table else getattr(table[lv], attr) for lv in LEVELS]


def _overall(report: EvalReport):
    return (report.per_level_by_level or report.per_level_by_steps)[ALL]


def model_figures(runs: list[RunData], reports_of, colours) -> tuple[dict, dict]:
    """Figures over the models that `reports_of(run)` picks, and notes about what they could not show."""
    from synergy_ray.evaluation import plots  # defers matplotlib

    many = len(runs) > 1
    labelled = [(_label(run, r.name, many), run, r) for run in runs for r in reports_of(run)]
    figures, notes = {}, {}
    accuracy = {label: [None if v is None else 100 * v for v in _levels(r, "accuracy")] for label, _, r in labelled}
    figures["accuracy"] = plots.level_accuracy_figure(accuracy, colours)
    gains = {}
    for label, run, r in labelled:
        base = next((b for b in reports_of(run) if b.name == "base"), None)
        if base is not None and r is not base:
            gains[label] = [None if a is None or b is None else 100 * (a - b)
                            for a, b in zip(_levels(r, "accuracy"), _levels(base, "accuracy"))]
    if gains:
        figures["gain"] = plots.gain_figure(gains, colours)
    else:
        notes["gain"] = "No model named 'base' next to the others, so no gain over base."
    per_sample = all(q.token_counts for _, _, r in labelled for q in r.per_question)
    lengths = {label: [n for q in r.per_question for n in (q.token_counts if per_sample else [q.mean_tokens])]
               for label, _, r in labelled}
    figures["lengths"] = plots.length_figure(lengths, {label: _levels(r, "mean_tokens") for label, _, r in labelled},
                                             colours, per_sample)
    if not per_sample:
        notes["lengths"] = ("These reports predate per-sample lengths: the distribution is over per-question means "
                            "(re-evaluate to get every sample's length).")
    figures["words"] = plots.reasoning_words_figure(
        {label: _overall(r).reasoning_words for label, _, r in labelled}, colours)
    return figures, notes


def build_page(runs: list[RunData]) -> tuple[list[Section], dict]:
    """The page's sections in order and its figures by key (unsaved matplotlib Figures)."""
    from synergy_ray.evaluation import plots  # defers matplotlib

    many = len(runs) > 1
    names = [_label(run, r.name, many) for run in runs for r in run.reports]
    names += [_label(run, n, many) for run in runs for n in list(run.rl_metrics) + list(run.sft_metrics)]
    colours = plots.colour_map(list(dict.fromkeys(names)))
    sections, figures = [], {}
    if any(run.reports for run in runs):
        held_out, notes = model_figures(runs, lambda run: run.reports, colours)
        figures.update({f"held_out_{k}": f for k, f in held_out.items()})
        sections += _model_sections("held-out set", runs, lambda run: run.reports, "held_out", held_out, notes)
    for bench in sorted({b for run in runs for b in run.benchmarks}):
        picked = lambda run, b=bench: run.benchmarks.get(b, [])  # noqa: E731
        bench_figures, notes = model_figures(runs, picked, colours)
        figures.update({f"{bench}_{k}": f for k, f in bench_figures.items()})
        sections += _model_sections(f"benchmark {bench}", runs, picked, bench, bench_figures, notes)
    rl = {_label(run, n, many): rows for run in runs for n, rows in run.rl_metrics.items()}
    if rl:
        figures["rl_curves"] = plots.training_curves_figure(rl, colours)
        sections.append(Section("RL training curves", f"From {', '.join(f'{n}_work/metrics.jsonl' for n in rl)}.",
                                "rl_curves"))
    sft = {_label(run, n, many): rows for run in runs for n, rows in run.sft_metrics.items()}
    if sft:
        figures["sft_loss"] = plots.sft_loss_figure(sft, colours)
        sections.append(Section("SFT loss", f"From {', '.join(f'{n}_metrics.jsonl' for n in sft)}.", "sft_loss"))
    if not sections:
        raise ValueError("nothing to report: no evaluation reports and no metrics in "
                         + ", ".join(str(run.run_dir) for run in runs))
    return sections, figures


def _model_sections(what: str, runs, reports_of, prefix: str, figures: dict, notes: dict) -> list[Section]:
    many = len(runs) > 1
    reports = [(run, r) for run in runs for r in reports_of(run)]
    first = reports[0][1]
    header = ["model", "L1", "L2", "L3", "L4", "L5", "all", "mean tokens", "reasoning words / response"]
    table = [header]
    for run, r in reports:
        row = accuracy_row(r)
        table.append([_label(run, r.name, many)] + ["-" if row[f"L{lv}"] is None else f"{row[f'L{lv}']:.1f}"
                                                    for lv in LEVELS]
                     + [f"{row['all']:.1f}", f"{row['tokens']:.0f}", f"{row['reasoning_words']:.2f}"])
    counts = first.per_level_by_level or {}
    sized = ", ".join(f"L{lv}: {counts[lv].n_questions}" for lv in LEVELS if lv in counts)
    text = (f"Accuracy (%) by level, {len(first.per_question)} questions ({sized or 'no levels stored'}), "
            f"k={first.k} samples each at temperature {first.temperature}, top-p {first.top_p}, top-k {first.top_k}, "
            f"max {first.max_tokens} tokens.")
    out = [Section(f"Accuracy by level: {what}", text, f"{prefix}_accuracy", table)]
    out.append(Section(f"Gain over base: {what}", notes.get("gain", ""),
                       f"{prefix}_gain" if "gain" in figures else None))
    out.append(Section(f"Response length: {what}", notes.get("lengths", ""), f"{prefix}_lengths"))
    out.append(Section(f"Reasoning words: {what}", "Occurrences per response over all samples.", f"{prefix}_words"))
    return out


# ---------------------------------------------------------------- pages


def _html(sections: list[Section], images: dict[str, bytes], sources: list[Path]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>synergy-ray report</title><style>",
             "body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}",
             "</style></head><body><h1>synergy-ray report</h1>",
             "<p>Runs: " + ", ".join(f"<code>{html.escape(str(s))}</code>" for s in sources) + "</p>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        if s.table:
            head, *body = s.table
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body]
            parts.append("</table>")
        if s.figure:
            data = base64.b64encode(images[s.figure]).decode()
            parts.append(f"<img alt='{html.escape(s.title)}' src='data:image/png;base64,{data}'>")
    return "\n".join(parts + ["</body></html>"]) + "\n"


def _markdown(sections: list[Section], sources: list[Path]) -> str:
    lines = ["# synergy-ray report", "", "Runs: " + ", ".join(f"`{s}`" for s in sources), ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        if s.text:
            lines += [s.text, ""]
        if s.table:
            head, *body = s.table
            lines += [markdown_table(head, body), ""]
        if s.figure:
            lines += [f"![{s.title}]({s.figure}.png)", ""]
    return "\n".join(lines)


def write_report(run_dirs: list[str | Path], out: str | Path, fmt: str = "html") -> Path:
    """Write the page (report.html, or report.md plus one PNG per figure) into `out`; returns the page's path."""
    from synergy_ray.evaluation.plots import save_png  # defers matplotlib

    if fmt not in ("html", "md"):
        raise ValueError(f"format must be 'html' or 'md', got {fmt!r}")
    runs = [read_run(d) for d in run_dirs]
    sections, figures = build_page(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = {key: save_png(fig, out / f"{key}.png" if fmt == "md" else None) for key, fig in figures.items()}
    sources = [Path(d) for d in run_dirs]
    page = out / f"report.{fmt}"
    page.write_text(_html(sections, images, sources) if fmt == "html" else _markdown(sections, sources))
    return page


def run_report(run_dirs: list[str], out: str | None, fmt: str) -> int:
    import sys

    try:
        page = write_report(run_dirs, out or Path(run_dirs[0]) / "report", fmt)
    except (FileNotFoundError, ValueError) as err:
        print(f"synergy-ray report: {err}", file=sys.stderr)
        return 2
    print(f"report written to {page}")
    return 0
