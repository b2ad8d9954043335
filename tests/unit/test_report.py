"""`synergy-ray report` on a small run directory written here with the project's own writers: evaluation reports
through `score_questions` + `save_report`, RL metrics as the coordinator writes them (`asdict(StepStats)` per
line), SFT metrics through the SFT job's logger. The figures are inspected before saving (axes labelled, levels
in order L1..L5, bar heights equal to the reports' numbers), then the written pages are checked."""

import base64
import io
import json
import re
from dataclasses import asdict

import pytest
from PIL import Image

from synergy_ray.cli import main
from synergy_ray.config import ModelConfig, SFTConfig
from synergy_ray.core.eval_stats import Completion, score_questions, summarize_by_level
from synergy_ray.evaluation.evaluator import EvalReport, save_report
from synergy_ray.records import StepStats
from synergy_ray.evaluation.report import build_page, read_run, write_report
from synergy_ray.sft_job import SFTJobSpec, _log

LEVELS = ["L1", "L2", "L3", "L4", "L5"]
K = 4


def eval_report(name: str, correct_by_level: dict[int, int], tokens: int) -> EvalReport:
    """One question per level; `correct_by_level[lv]` of K samples right; sample i has tokens + i tokens."""
    rows = [{"id": f"q{lv}", "steps": lv, "level": lv, "answer": "7", "choices": []} for lv in correct_by_level]
    samples = [[Completion(("<think>wait</think>\\boxed{7}" if i < n else "<think>x</think>\\boxed{1}"), tokens + i)
                for i in range(K)] for n in correct_by_level.values()]
    results = score_questions(rows, samples, 0.9, 0.1, ["wait", "check"])
    return EvalReport(name, f"/m/{name}", K, 0.6, 0.95, 20, 64, results, summarize_by_level(results, "steps"),
                      summarize_by_level(results, "level"), 1.0, 1.0)


BASE = {1: 4, 2: 3, 3: 2, 4: 1, 5: 0}
RL = {1: 4, 2: 4, 3: 3, 4: 1, 5: 1}
SFT = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")  # build_page leaves its figures open for inspection


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    for name, correct, tokens in (("base", BASE, 10), ("rl", RL, 12), ("sft", SFT, 300)):
        save_report(eval_report(name, correct, tokens), run / "eval" / f"{name}.json")
    save_report(eval_report("base", BASE, 10), run / "eval" / "mathvista" / "base.json")
    save_report(eval_report("rl", RL, 12), run / "eval" / "mathvista" / "rl.json")
    work = run / "rl_work"
    work.mkdir()
    steps = [StepStats(step=s, weight_version=s, reward_mean=0.1 * s, pass_rate=0.05 * s, response_tokens_mean=30 + s,
                       clip_ratio=0.0, learner={"loss": 0.1, "kl": 0.01 * s}) for s in (1, 2, 3)]
    resumed = StepStats(step=2, weight_version=2, reward_mean=0.9, pass_rate=0.5, response_tokens_mean=40,
                        clip_ratio=0.0, learner={"kl": 0.5})
    with open(work / "metrics.jsonl", "w") as f:
        for s in steps[:2] + [resumed, steps[2]]:  # resumed from step 1: step 2 logged twice, the last wins
            f.write(json.dumps(asdict(s)) + "\n")
        f.write('{"step": 4, "reward_')  # a line still being written
    spec = SFTJobSpec(model_path="m", data_path="d", export_dir="e", model=ModelConfig(), sft=SFTConfig(),
                      metrics_path=str(run / "sft_metrics.jsonl"), log_every=100)
    for step, loss in ((1, 9.0), (2, 3.0), (3, 0.2)):
        _log(spec, {"step": step, "epoch": 0, "loss": loss})
    return run


def labelled(ax) -> bool:
    return bool(ax.get_xlabel().strip()) and bool(ax.get_ylabel().strip())


def ticks(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def bar_heights(ax) -> dict[str, list[float]]:
    return {c.get_label(): [round(p.get_height(), 6) for p in c.patches] for c in ax.containers}


def test_figures_are_labelled_levels_ordered_and_show_the_reports_numbers(run_dir):
    sections, figures = build_page([read_run(run_dir)])
    assert [s.title for s in sections] == [
        "Accuracy by level: held-out set", "Gain over base: held-out set", "Response length: held-out set",
        "Reasoning words: held-out set", "Accuracy by level: benchmark mathvista", "Gain over base: benchmark mathvista",
        "Response length: benchmark mathvista", "Reasoning words: benchmark mathvista", "RL training curves",
        "SFT loss"]
    for fig in figures.values():
        assert all(labelled(ax) for ax in fig.axes if ax.has_data())

    (acc,) = figures["held_out_accuracy"].axes
    assert ticks(acc) == LEVELS
    assert bar_heights(acc) == {"base": [100.0, 75.0, 50.0, 25.0, 0.0], "sft": [50.0] * 5,
                                "rl": [100.0, 100.0, 75.0, 25.0, 25.0]}  # models in order base, sft, rl
    (gain,) = figures["held_out_gain"].axes
    assert ticks(gain) == LEVELS
    assert bar_heights(gain) == {"sft": [-50.0, -25.0, 0.0, 25.0, 50.0], "rl": [0.0, 25.0, 25.0, 0.0, 25.0]}

    box, by_level = figures["held_out_lengths"].axes[:2]
    assert ticks(box) == ["base", "sft", "rl"] and ticks(by_level) == LEVELS
    assert box.get_yscale() == "log"  # 10-13 against 300-303 tokens: more than a factor of 20
    sft_line = next(line for line in by_level.get_lines() if line.get_label() == "sft")
    assert list(sft_line.get_ydata()) == [301.5] * 5  # mean of 300..303 at every level

    (words,) = figures["held_out_words"].axes
    assert ticks(words) == ['"wait"', '"check"']
    assert bar_heights(words)["base"] == [pytest.approx((4 + 3 + 2 + 1 + 0) / 20), 0.0]  # "wait" in correct samples

    assert ticks(figures["mathvista_accuracy"].axes[0]) == LEVELS
    curves = figures["rl_curves"].axes
    assert [ax.get_ylabel() for ax in curves] == [
        "mean reward", "pass rate of the step's samples", "mean response length (tokens)", "KL to the reference"]
    raw_reward = curves[0].get_lines()[0]
    assert list(raw_reward.get_xdata()) == [1, 2, 3] and list(raw_reward.get_ydata()) == pytest.approx([0.1, 0.9, 0.3])
    assert list(curves[3].get_lines()[0].get_ydata()) == pytest.approx([0.01, 0.5, 0.03])
    (loss,) = figures["sft_loss"].axes
    assert list(loss.get_lines()[0].get_ydata()) == [9.0, 3.0, 0.2] and loss.get_yscale() == "log"


def test_html_page_embeds_every_plot_as_a_png(run_dir, tmp_path):
    page = write_report([run_dir], tmp_path / "out", "html")
    text = page.read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert len(images) == 10 and not list((tmp_path / "out").glob("*.png"))
    for data in images:
        with Image.open(io.BytesIO(base64.b64decode(data))) as img:
            assert img.format == "PNG" and img.width > 400 and img.height > 200
    assert "<td>rl</td><td>100.0</td><td>100.0</td><td>75.0</td><td>25.0</td><td>25.0</td>" in text


def test_markdown_page_links_png_files_beside_it(run_dir, tmp_path):
    assert main(["report", str(run_dir), "--out", str(tmp_path / "md"), "--format", "md"]) == 0
    text = (tmp_path / "md" / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(linked) == 10
    for name in linked:
        with Image.open(tmp_path / "md" / name) as img:
            assert img.format == "PNG" and img.width > 400
    assert "| rl | 100.0 | 100.0 | 75.0 | 25.0 | 25.0 | 65.0 |" in text
    assert "predate per-sample lengths" not in text


def test_reports_without_per_sample_lengths_fall_back_to_question_means(run_dir):
    for path in (run_dir / "eval").glob("*.json"):
        raw = json.loads(path.read_text())
        for q in raw["per_question"]:
            del q["token_counts"]  # as written before the field existed
        path.write_text(json.dumps(raw))
    sections, figures = build_page([read_run(run_dir)])
    assert "predate per-sample lengths" in next(s.text for s in sections if s.title.startswith("Response length: h"))
    assert figures["held_out_lengths"].axes[0].get_ylabel().startswith("per-question mean")


def test_several_runs_are_prefixed_and_compared_with_their_own_base(run_dir, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    save_report(eval_report("base", SFT, 10), other / "eval" / "base.json")  # a different base
    _, figures = build_page([read_run(run_dir), read_run(other)])
    gains = bar_heights(figures["held_out_gain"].axes[0])
    assert gains["run/rl"] == [0.0, 25.0, 25.0, 0.0, 25.0]
    assert gains["other/rl"] == [50.0, 50.0, 25.0, -25.0, -25.0]


def test_a_directory_that_is_not_a_run_is_refused(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "neither eval/*.json reports nor *_work/metrics.jsonl" in capsys.readouterr().err
