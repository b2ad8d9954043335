"""Benchmark loaders on small fixtures written here in each published layout (the authors' Hub copies keep the
benchmark's own columns and add `passrate_for_qwen2.5_vl_7b` / `difficulty_level_for_qwen2.5_vl_7b`).

Each fixture holds a malformed row that must be skipped and counted by reason; multiple-choice rows must score
through the training reward (core.rewards via core.eval_stats), as the evaluator scores them.
"""

import io
import os

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from synergy_ray.cli import EXIT_BAD_CONFIG, main
from synergy_ray.config import BENCHMARK_NAMES
from synergy_ray.core.eval_stats import Completion, score_question
from synergy_ray.data.benchmarks import (
    BENCHMARKS, LEVEL_TAG, PASS_RATE_TAG, benchmark_files, inline_choices, load_benchmark, prepare_benchmark,
)


def png(colour=(10, 120, 200), size=(20, 12)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def embedded(data: bytes | None, path: str | None = None) -> dict:
    """An image cell as `datasets` writes it to parquet."""
    return {"bytes": data, "path": path}


def tags(level, rate=None) -> dict:
    return {PASS_RATE_TAG: rate, LEVEL_TAG: level}


def write_parquet(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def boxed(answer: str) -> list[Completion]:
    return [Completion(f"<think>r</think>\\boxed{{{answer}}}", 9)]


def correct(row: dict, answer: str) -> bool:
    return score_question(row, boxed(answer)).num_correct == 1


# ---------------------------------------------------------------- MathVision


@pytest.fixture
def mathvision_dir(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "3.png").write_bytes(png((1, 2, 3)))
    common = {"solution": "", "subject": "geometry"}
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", [
        {"id": "1", "question": "<image1>\nWhich shape has the most sides?", "options": ["A", "B", "C", "D", "E"],
         "image": "images/1.jpg", "decoded_image": embedded(png()), "answer": "C", "level": 2, **common,
         **tags(1, 0.8125)},
        {"id": "2", "question": "<image1>\nHow many squares?", "options": [], "image": "images/2.jpg",
         "decoded_image": embedded(png()), "answer": "7", "level": 5, **common, **tags(4, 0.25)},
        {"id": "3", "question": "What is x?", "options": [], "image": "images/3.png",  # only the unzipped file
         "decoded_image": embedded(None), "answer": "12", "level": 1, **common, **tags(5, 0.0)},
        {"id": "4", "question": "Untagged?", "options": [], "image": "images/4.jpg",
         "decoded_image": embedded(png()), "answer": "1", "level": 3, **common, **tags(None)},
    ])
    return tmp_path


def test_mathvision_uses_the_paper_level_not_the_competition_grade(mathvision_dir):
    ds, report = load_benchmark("mathvision", mathvision_dir)
    assert ds["id"] == ["1", "2", "3"] and ds["level"] == [1, 4, 5]  # the tags; MathVision's own levels were 2, 5, 1
    assert report.skipped == {"missing_level": ["4"]} and report.kept == 3
    assert ds[2]["image"].getpixel((0, 0)) == (1, 2, 3)  # from images/ when the parquet has no bytes
    first = ds[0]
    assert first["choices"] == ["A", "B", "C", "D", "E"]
    assert first["question"].endswith("Choices:\n(A) A\n(B) B\n(C) C\n(D) D\n(E) E")
    assert correct(first, "C") and correct(first, "(C)") and not correct(first, "B")
    assert correct(ds[1], "7") and ds[1]["choices"] == []


def test_level_falls_back_to_the_pass_rate_tag(mathvision_dir):
    rows = pq.read_table(benchmark_files("mathvision", mathvision_dir)[0]).to_pylist()
    for row, level in zip(rows, [None, "L4", "level 5", None]):  # a text column this time
        row[LEVEL_TAG] = level  # row 1: no level, pass rate 0.8125 = 13/16 -> L1
    write_parquet(mathvision_dir / "data" / "test-00000-of-00001.parquet", rows)
    assert load_benchmark("mathvision", mathvision_dir)[0]["level"] == [1, 4, 5]


# ---------------------------------------------------------------- MathVerse


def test_mathverse_parses_inline_options_and_reads_vision_only_rows(tmp_path):
    base = {"problem_index": "1", "metadata": {"split": "testmini", "source": "GeoQA"}, "query_cot": ""}
    write_parquet(tmp_path / "testmini.parquet", [
        {"sample_index": "1", "problem_version": "Text Dominant", "image": embedded(png()),
         "question": "As shown, angle ABC is\nChoices:\nA:30°\nB:45°\nC:60°\nD:90°", "answer": "B",
         "question_type": "multi-choice", "query_wo": "", **base, **tags(2, 0.5)},
        {"sample_index": "2", "problem_version": "Vision Only", "image": embedded(png()), "question": "",
         "query_wo": "According to the question shown in the image, answer it.", "answer": "E",
         "question_type": "multi-choice", **base, **tags(3)},
        {"sample_index": "3", "problem_version": "Text Lite", "image": embedded(png()),
         "question": "Find the area.", "answer": "12.5", "question_type": "free-form", "query_wo": "", **base,
         **tags(5)},
        {"sample_index": "4", "problem_version": "Text Lite", "image": embedded(os.urandom(40)),
         "question": "Broken image.", "answer": "1", "question_type": "free-form", "query_wo": "", **base,
         **tags(1)},
    ])
    ds, report = load_benchmark("mathverse", tmp_path)
    assert report.skipped == {"unreadable_image": ["4"]}
    assert ds["level"] == [2, 3, 5]
    assert ds[0]["choices"] == ["30°", "45°", "60°", "90°"]
    assert correct(ds[0], "B") and correct(ds[0], "45°") and not correct(ds[0], "A")
    assert ds[1]["question"].startswith("According to the question shown in the image")
    assert ds[1]["choices"] == ["A", "B", "C", "D", "E"]  # options only in the image: letters up to the gold
    assert correct(ds[1], "E")
    assert correct(ds[2], "25/2")  # math-verify equivalence for free-form answers


# ---------------------------------------------------------------- MathVista


def test_mathvista_gold_is_the_option_text_and_scores_by_letter(tmp_path):
    meta = {"category": "math-targeted-vqa", "grade": "high school"}
    common = {"unit": None, "precision": None, "metadata": meta, "query": "", "answer_type": "text"}
    write_parquet(tmp_path / "data" / "testmini-00000-of-00001-abc.parquet", [
        {"pid": "1", "question": "Which bar is tallest?", "image": "images/1.jpg", "decoded_image": embedded(png()),
         "choices": ["red", "green", "blue"], "answer": "green", "question_type": "multi_choice", **common,
         **tags(1, 1.0)},
        {"pid": "2", "question": "What is the total?", "image": "images/2.jpg", "decoded_image": embedded(png()),
         "choices": None, "answer": "1.45", "question_type": "free_form", **common, **tags(3, 0.375)},
        {"pid": "3", "question": "No answer here", "image": "images/3.jpg", "decoded_image": embedded(png()),
         "choices": None, "answer": "", "question_type": "free_form", **common, **tags(2, 0.5)},
    ])
    ds, report = load_benchmark("mathvista", tmp_path)
    assert report.skipped == {"missing_answer": ["3"]} and ds["level"] == [1, 3]
    mc = ds[0]
    assert mc["question"] == "Which bar is tallest?\nChoices:\n(A) red\n(B) green\n(C) blue"
    assert correct(mc, "B") and correct(mc, "green") and not correct(mc, "A")
    assert correct(ds[1], "1.45") and not correct(ds[1], "1.4")


# ---------------------------------------------------------------- MMMU


def test_mmmu_reads_every_subject_and_skips_multi_image_questions(tmp_path):
    def row(i, images, **kw):
        cells = {f"image_{n}": (embedded(png()) if n <= images else None) for n in range(1, 8)}
        return {"id": f"validation_Art_{i}", "explanation": "", "img_type": "['Photos']", "topic_difficulty": "Easy",
                "subfield": "x", **cells, **kw}

    write_parquet(tmp_path / "Art" / "validation-00000-of-00001.parquet", [
        row(1, 1, question="<image 1> Which period?", options="['Baroque', 'Gothic', 'Modern']", answer="B",
            question_type="multiple-choice", **tags(2, 0.5625)),
        row(2, 2, question="<image 1> <image 2> Same artist?", options="['yes', 'no']", answer="A",
            question_type="multiple-choice", **tags(3, 0.375)),
    ])
    write_parquet(tmp_path / "Math" / "validation-00000-of-00001.parquet", [
        row(3, 1, question="<image 1> Compute the sum.", options="[]", answer="24", question_type="open",
            **tags(5, 0.0625)),
    ])
    ds, report = load_benchmark("mmmu", tmp_path)
    assert [f.parent.name for f in benchmark_files("mmmu", tmp_path)] == ["Art", "Math"]
    assert report.skipped == {"multiple_images": ["validation_Art_2"]}
    assert ds["id"] == ["validation_Art_1", "validation_Art_3"] and ds["level"] == [2, 5]
    assert ds[0]["choices"] == ["Baroque", "Gothic", "Modern"]
    assert correct(ds[0], "B") and correct(ds[0], "Gothic") and not correct(ds[0], "C")
    assert correct(ds[1], "24") and ds[1]["choices"] == []


# ---------------------------------------------------------------- MMStar


def test_mmstar_options_from_the_question_and_a_bad_level_is_counted(tmp_path):
    meta = {"source": "MMBench", "split": "val", "image_path": "x.jpg"}
    common = {"category": "coarse perception", "l2_category": "image scene", "meta_info": meta}
    write_parquet(tmp_path / "mmstar.parquet", [
        {"index": 0, "question": "Where is this? Options: A: a beach, B: a forest, C: a city, D: a desert",
         "image": embedded(png()), "answer": "C", **common, **tags(1, 0.9375)},
        {"index": 1, "question": "What colour? Options: A: red, B: blue", "image": embedded(png()), "answer": "A",
         **common, **tags(9)},  # out of range, no pass rate
    ])
    ds, report = load_benchmark("mmstar", tmp_path)
    assert report.skipped == {"missing_level": ["1"]} and ds["id"] == ["0"]
    assert ds[0]["choices"] == ["a beach", "a forest", "a city", "a desert"]
    assert correct(ds[0], "C") and correct(ds[0], "a city") and not correct(ds[0], "D")


# ---------------------------------------------------------------- shared behaviour


def test_prepared_benchmark_is_a_saved_dataset_with_levels(mathvision_dir, tmp_path):
    out, report = prepare_benchmark("mathvision", mathvision_dir, tmp_path / "prepared", limit=2)
    ds = datasets.load_from_disk(str(out))
    assert ds["id"] == ["1", "2"] and ds["level"] == [1, 4] and report.kept == 2
    assert ds.features["level"] == datasets.Value("int32")


def test_bad_names_and_paths_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark 'mathvistaa'"):
        load_benchmark("mathvistaa", tmp_path)
    with pytest.raises(FileNotFoundError, match="JierunChen/MMStar_with_difficulty_level"):
        load_benchmark("mmstar", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="holds none of the files"):
        load_benchmark("mathverse", tmp_path)


def test_every_configurable_benchmark_has_a_loader():
    assert set(BENCHMARKS) == set(BENCHMARK_NAMES)


def test_inline_choices_forms():
    assert inline_choices("Q? Choices: (A) 1 (B) 2 (C) 3") == ["1", "2", "3"]
    assert inline_choices("Q? Options: A. one; B. two") == ["one", "two"]
    assert inline_choices("no marker A: x B: y") == []


def test_eval_cli_refuses_a_bad_benchmark_before_loading_anything(capsys):
    assert main(["eval", "configs/smoke_cpu.yaml", "--model", "m", "--benchmark", "mathvistaa=/tmp"]) \
        == EXIT_BAD_CONFIG
    assert "eval.benchmarks.0.name" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "configs/smoke_cpu.yaml", "--model", "m", "--benchmark", "mathvista"])
    assert exit_info.value.code == 2 and "expected NAME=PATH" in capsys.readouterr().err


def test_eval_cli_names_a_missing_benchmark_directory_before_starting_an_engine(tmp_path, capsys):
    code = main(["eval", "configs/smoke_cpu.yaml", f"run.output_dir={tmp_path}", "--model", "m",
                 "--benchmark", f"mmstar={tmp_path / 'absent'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "benchmark mmstar: no such file or directory" in err and "JierunChen/MMStar_with_difficulty_level" in err
