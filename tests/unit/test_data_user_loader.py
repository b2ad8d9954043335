import io
import json
import os

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from synergy_ray.data.loader import LoadReport, NoUsableRows, load_user_dataset
from synergy_ray.data.synthetic import FEATURES, build_dataset, save_dataset


def png_bytes(colour=(200, 10, 10), size=(8, 6), mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, format="PNG")
    return buf.getvalue()


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def messy_dir(tmp_path):
    """Images on disk: one good RGBA, one corrupt; the rows also point at a file that does not exist."""
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "good.png").write_bytes(png_bytes(colour=(1, 2, 3, 255), mode="RGBA"))
    (tmp_path / "img" / "bad.png").write_bytes(os.urandom(64))
    return tmp_path


MESSY_ROWS = [
    {"id": "good", "image": "img/good.png", "question": "What colour?", "answer": "red", "steps": 2},
    {"id": "nofile", "image": "img/nope.png", "question": "Q", "answer": "1"},
    {"id": "corrupt", "image": "img/bad.png", "question": "Q", "answer": "1"},
    {"id": "empty", "image": "img/good.png", "question": "Q", "answer": "  "},
    {"id": "absent", "image": "img/good.png", "question": "Q"},
    {"id": "noimage", "question": "Q", "answer": "3"},
    {"image": "img/good.png", "question": "Sum?", "answer": 17.0, "choices": ["16", "17"]},
]


def test_jsonl_keeps_good_rows_and_reports_skips_by_reason(messy_dir):
    ds, report = load_user_dataset(write_jsonl(messy_dir / "data.jsonl", MESSY_ROWS))
    assert report.kept == len(ds) == 2
    assert report.skipped == {
        "missing_image": ["nofile", "noimage"],
        "unreadable_image": ["corrupt"],
        "missing_answer": ["empty", "absent"],
    }
    assert ds.features == FEATURES
    assert ds["id"] == ["good", "row-000006"]  # id from the row index when absent
    assert ds["answer"] == ["red", "17"]
    assert ds["choices"] == [[], ["16", "17"]] and ds["steps"] == [2, 0] and ds["long_cot"] == ["", ""]
    assert ds[0]["image"].mode == "RGB" and ds[0]["image"].size == (8, 6)
    assert ds[0]["image"].getpixel((0, 0)) == (1, 2, 3)
    assert report.summary() == (
        "kept 2 of 7 rows; skipped 2 missing_answer (empty, absent); skipped 2 missing_image (nofile, noimage); "
        "skipped 1 unreadable_image (corrupt)"
    )


def test_json_list_and_image_root(tmp_path, messy_dir):
    rows = [{"question": "Q", "answer": "4", "image": "good.png"}]
    path = tmp_path / "elsewhere.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(NoUsableRows, match="no usable rows: kept 0 of 1 rows; skipped 1 missing_image") as err:
        load_user_dataset(str(path))  # every row is bad: an error that carries the report
    assert err.value.report.skipped == {"missing_image": ["row-000000"]}
    ds, report = load_user_dataset(str(path), image_root=str(messy_dir / "img"))
    assert report.kept == 1 and ds["answer"] == ["4"]


def test_parquet_with_column_map_and_image_bytes(tmp_path):
    table = pa.table(
        {
            "uid": ["a", "b", "c"],
            "img": [{"bytes": png_bytes(), "path": None}, {"bytes": b"not a png", "path": None}, None],
            "problem": ["What is 2+2?", "Q", "Q"],
            "solution": ["4", "5", "6"],
            "trace": ["<think>2+2=4</think>\\boxed{4}", "", ""],
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    column_map = {"id": "uid", "image": "img", "question": "problem", "answer": "solution", "long_cot": "trace"}
    ds, report = load_user_dataset(str(tmp_path / "d.parquet"), column_map=column_map)
    assert report.kept == 1 and report.skipped == {"unreadable_image": ["b"], "missing_image": ["c"]}
    row = ds[0]
    assert (row["id"], row["question"], row["answer"]) == ("a", "What is 2+2?", "4")
    assert row["long_cot"].endswith("\\boxed{4}") and row["image"].getpixel((0, 0)) == (200, 10, 10)


def test_image_folder_with_metadata(tmp_path):
    for name, colour in (("a.png", (9, 9, 9)), ("b.png", (0, 255, 0))):
        (tmp_path / name).write_bytes(png_bytes(colour))
    write_jsonl(
        tmp_path / "metadata.jsonl",
        [
            {"file_name": "a.png", "question": "Q1", "answer": "1"},
            {"file_name": "b.png", "question": "Q2", "answer": "2"},
            {"file_name": "c.png", "question": "Q3", "answer": "3"},
        ],
    )
    ds, report = load_user_dataset(str(tmp_path))
    assert report.kept == 2 and report.skipped == {"missing_image": ["row-000002"]}
    assert [img.getpixel((0, 0)) for img in ds["image"]] == [(9, 9, 9), (0, 255, 0)]


def test_save_to_disk_directory_round_trip(tmp_path):
    original = build_dataset(2, seed=5)
    save_dataset(original, str(tmp_path / "syn"))
    ds, report = load_user_dataset(str(tmp_path / "syn"))
    assert report.kept == 10 and report.skipped == {}
    assert ds["id"] == original["id"] and ds["short_solution"] == original["short_solution"]
    assert ds["steps"] == original["steps"]
    assert ds[3]["image"].tobytes() == original[3]["image"].tobytes()


def test_dataset_dict_split_selection(tmp_path):
    dd = datasets.DatasetDict(train=build_dataset(1, seed=0), eval=build_dataset(1, seed=1, prefix="ev"))
    dd.save_to_disk(str(tmp_path / "dd"))
    ds, _ = load_user_dataset(str(tmp_path / "dd"), split="eval")
    assert ds["id"][0] == "ev-s1-000000"
    with pytest.raises(ValueError, match=r"split 'test' not in .*\['eval', 'train'\]"):
        load_user_dataset(str(tmp_path / "dd"), split="test")


def test_missing_required_column_is_named(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"image": "x.png", "problem": "Q", "answer": "1"}])
    with pytest.raises(ValueError, match=r"required column 'question' not found.*\['answer', 'image', 'problem'\]"):
        load_user_dataset(path)
    with pytest.raises(ValueError, match="no column 'prompt'"):
        load_user_dataset(path, column_map={"question": "prompt"})
    with pytest.raises(ValueError, match="column_map key 'reasoning' is not one of our columns"):
        load_user_dataset(path, column_map={"reasoning": "problem"})


def test_unknown_sources_fail_clearly(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_user_dataset(str(tmp_path / "missing.jsonl"))
    (tmp_path / "d.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="unsupported file type '.csv'"):
        load_user_dataset(str(tmp_path / "d.csv"))
    (tmp_path / "blank.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="blank.jsonl has no rows"):
        load_user_dataset(str(tmp_path / "blank.jsonl"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ValueError, match="neither a save_to_disk dataset"):
        load_user_dataset(str(tmp_path / "empty_dir"))

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"'someone/vqa'.*Hugging Face Hub.*ConnectionError: no network"):
        load_user_dataset("someone/vqa")


def test_report_summary_without_skips():
    assert LoadReport(kept=3).summary() == "kept 3 of 3 rows"


def test_bad_lines_are_bad_rows_and_duplicate_ids_are_skipped(messy_dir):
    """A non-UTF-8 line, a line that is not JSON and one that is not an object cost their own row only."""
    good = {"id": "good", "image": "img/good.png", "question": "Q", "answer": "1"}
    lines = [json.dumps(good).encode(), b"\xff\xfe not utf-8", b"{not json", b"[1, 2]", b"",
             json.dumps({**good, "answer": "2"}).encode(), json.dumps({**good, "id": "other"}).encode()]
    path = messy_dir / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    ds, report = load_user_dataset(str(path))
    assert ds["id"] == ["good", "other"] and ds["answer"] == ["1", "1"]
    assert report.skipped == {"not_utf8": ["line 2"], "invalid_json": ["line 3"], "not_an_object": ["line 4"],
                              "duplicate_id": ["good"]}
    (messy_dir / "list.json").write_text(json.dumps([good, "text", 3]))
    ds, report = load_user_dataset(str(messy_dir / "list.json"))
    assert len(ds) == 1 and report.skipped == {"not_an_object": ["item 1", "item 2"]}


def test_an_all_bad_file_reports_every_skip(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\xff\n[1]\n")
    with pytest.raises(NoUsableRows, match=r"kept 0 of 2 rows; skipped 1 not_an_object \(line 2\); "
                                           r"skipped 1 not_utf8 \(line 1\)"):
        load_user_dataset(str(path))
