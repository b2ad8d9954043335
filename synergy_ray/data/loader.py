"""Load a user's visual question set into the synthetic set's schema (`synthetic.FEATURES`).

Sources, tried in this order: a .jsonl / .json / .parquet file; a directory written by `save_to_disk`; an image
folder (images plus a metadata.jsonl whose `file_name` names each image, as in HF imagefolder); otherwise a Hub
dataset name through `datasets.load_dataset`, which needs a network.

Bad rows never stop a load: a row whose image is missing or unreadable, whose answer or question is empty, or
whose id repeats an earlier row's, is skipped and its id recorded under the reason in `LoadReport.skipped`. In a
.jsonl file a line that is not UTF-8, not JSON, or not a JSON object is a bad row too (recorded as `line N`), as
is an item of a .json list that is not an object (`item N`). A source with no usable row at all is an error
(`NoUsableRows`) that carries the report. Images are converted to RGB, not resized.
"""

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from PIL import Image

from synergy_ray.data.synthetic import FEATURES

REQUIRED = ("image", "question", "answer")
OPTIONAL_DEFAULTS = {"id": None, "choices": [], "steps": 0, "short_solution": "", "long_cot": ""}
IMAGE_ALIASES = ("file_name", "image_path", "img")  # used when no column is called "image" and none is mapped
SAVED_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")

MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"
MISSING_ANSWER = "missing_answer"
MISSING_QUESTION = "missing_question"
DUPLICATE_ID = "duplicate_id"
NOT_UTF8 = "not_utf8"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"


@dataclass
class LoadReport:
    kept: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, row_id: str) -> None:
        self.skipped.setdefault(reason, []).append(row_id)

    def summary(self) -> str:
        total = self.kept + sum(len(ids) for ids in self.skipped.values())
        parts = [f"kept {self.kept} of {total} rows"]
        for reason, ids in sorted(self.skipped.items()):
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            parts.append(f"skipped {len(ids)} {reason} ({shown})")
        return "; ".join(parts)


class NoUsableRows(ValueError):
    def __init__(self, source: str, report: LoadReport):
        super().__init__(f"{source} has no usable rows: {report.summary()}")
        self.report = report


def load_user_dataset(
    source: str,
    column_map: dict[str, str] | None = None,
    image_root: str | None = None,
    split: str = "train",
) -> tuple[datasets.Dataset, LoadReport]:
    """Rows of `source` in our schema. `column_map` maps our column names to the user's, e.g. {"answer": "solution"}.

    Relative image paths resolve against `image_root`, else the source file's (or folder's) directory.
    """
    report = LoadReport()
    rows, base_dir = read_rows(source, split, report)
    if not rows and not report.skipped:
        raise ValueError(f"{source} has no rows")
    if not rows:
        raise NoUsableRows(source, report)
    ds, report = convert_rows(rows, column_map or {}, Path(image_root) if image_root else base_dir, report)
    if report.kept == 0:
        raise NoUsableRows(source, report)
    return ds, report


def convert_rows(
    rows: list[dict],
    column_map: dict[str, str],
    root: Path | None,
    report: LoadReport | None = None,
    extra: datasets.Features | None = None,
) -> tuple[datasets.Dataset, LoadReport]:
    """Rows already read into memory, in our schema; the skip-and-count rules of `load_user_dataset`.

    `report` may already hold skips made by the caller (e.g. a benchmark's own checks). `extra` names columns
    copied verbatim from each row after ours (e.g. a benchmark's `level`), with their features.
    """
    columns = _resolve_columns(rows, column_map)
    report = report if report is not None else LoadReport()
    features = datasets.Features({**FEATURES, **(extra or {})})
    kept, seen = [], set()
    for index, row in enumerate(rows):
        item = _convert_row(row, index, columns, root, report)
        if item is not None and item["id"] in seen:  # RL and evaluation key their tables by id
            report.skip(DUPLICATE_ID, item["id"])
        elif item is not None:
            seen.add(item["id"])
            kept.append({**item, **{name: row.get(name) for name in extra or {}}})
    report.kept = len(kept)
    columns_of_kept = {name: [item[name] for item in kept] for name in features}  # from_list fails on []
    return datasets.Dataset.from_dict(columns_of_kept, features=features), report


def read_rows(source: str, split: str = "train", report: LoadReport | None = None) -> tuple[list[dict], Path | None]:
    """The source's rows as dicts; lines or items that cannot be rows are skipped into `report`."""
    path = Path(source)
    report = report if report is not None else LoadReport()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            return _read_jsonl(path, report), path.parent
        if suffix == ".json":
            return _read_json(path, report), path.parent
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist(), path.parent
        raise ValueError(f"unsupported file type '{suffix}' for {source}: use .jsonl, .json or .parquet")
    if path.is_dir():
        if any((path / marker).exists() for marker in SAVED_DATASET_MARKERS):
            return _dataset_rows(_pick_split(datasets.load_from_disk(str(path)), split, source)), path
        if (path / "metadata.jsonl").exists():
            return _read_jsonl(path / "metadata.jsonl", report), path
        raise ValueError(
            f"directory {source} is neither a save_to_disk dataset ({' / '.join(SAVED_DATASET_MARKERS)}) "
            "nor an image folder with a metadata.jsonl"
        )
    if path.suffix.lower() in (".jsonl", ".json", ".parquet") or source.startswith((".", "/", "~")):
        raise FileNotFoundError(f"no such file or directory: {source}")
    try:
        hub = datasets.load_dataset(source, split=split)
    except Exception as e:  # noqa: BLE001 - any failure here means the same thing to the user
        raise RuntimeError(
            f"'{source}' is not a local file or directory, and loading it from the Hugging Face Hub "
            f"(split '{split}') failed: {type(e).__name__}: {e}"
        ) from e
    return _dataset_rows(hub), None


def _read_jsonl(path: Path, report: LoadReport) -> list[dict]:
    rows = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                report.skip(NOT_UTF8, f"line {n}")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                report.skip(INVALID_JSON, f"line {n}")
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                report.skip(NOT_AN_OBJECT, f"line {n}")
    return rows


def _read_json(path: Path, report: LoadReport) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a UTF-8 JSON file: {err}") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise ValueError(f"{path} must hold a list of objects (or {{'data': [...]}})")
    for n, item in enumerate(data):
        if not isinstance(item, dict):
            report.skip(NOT_AN_OBJECT, f"item {n}")
    return [item for item in data if isinstance(item, dict)]


def _pick_split(ds: datasets.Dataset | datasets.DatasetDict, split: str, source: str) -> datasets.Dataset:
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(f"split '{split}' not in {source}; it has {sorted(ds)}")
        return ds[split]
    return ds


def _dataset_rows(ds: datasets.Dataset) -> list[dict]:
    """Rows with image columns left undecoded ({bytes, path}), so one bad image cannot abort the iteration."""
    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
    return ds.to_list()


def _resolve_columns(rows: list[dict], column_map: dict[str, str]) -> dict[str, str | None]:
    """Our column name -> the user's column name (None for an absent optional column)."""
    available = sorted({key for row in rows for key in row})
    ours = set(REQUIRED) | set(OPTIONAL_DEFAULTS)
    for our_name, user_name in column_map.items():
        if our_name not in ours:
            raise ValueError(f"column_map key '{our_name}' is not one of our columns {sorted(ours)}")
        if user_name not in available:
            raise ValueError(
                f"column_map maps '{our_name}' to '{user_name}', but the source has no column '{user_name}'; "
                f"its columns are {available}"
            )
    columns = {}
    for name in (*REQUIRED, *OPTIONAL_DEFAULTS):
        user_name = column_map.get(name, name)
        if user_name not in available and name == "image" and "image" not in column_map:
            user_name = next((alias for alias in IMAGE_ALIASES if alias in available), user_name)
        if user_name not in available:
            if name in REQUIRED:
                raise ValueError(
                    f"required column '{name}' not found; the source has columns {available}. "
                    f"Map it with column_map={{'{name}': '<your column>'}}"
                )
            user_name = None
        columns[name] = user_name
    return columns


def _convert_row(
    row: dict, index: int, columns: dict[str, str | None], root: Path | None, report: LoadReport
) -> dict | None:
    def get(name):
        return row.get(columns[name]) if columns[name] else None

    raw_id = get("id")
    row_id = str(raw_id) if raw_id not in (None, "") else f"row-{index:06d}"
    answer, question = _text(get("answer")), _text(get("question"))
    if not answer:
        report.skip(MISSING_ANSWER, row_id)
        return None
    if not question:
        report.skip(MISSING_QUESTION, row_id)
        return None
    image, problem = _open_image(get("image"), root)
    if image is None:
        report.skip(problem, row_id)
        return None
    return {
        "id": row_id,
        "image": image,
        "question": question,
        "answer": answer,
        "choices": _choices(get("choices")),
        "steps": _int_or_zero(get("steps")),
        "short_solution": _text(get("short_solution")),
        "long_cot": _text(get("long_cot")),
    }


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 17.0 from a numeric column is the answer "17"
    return str(value).strip()


def _choices(value) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return []
    return [_text(v) for v in value] if isinstance(value, (list, tuple)) else []


def _int_or_zero(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _open_image(value, root: Path | None) -> tuple[Image.Image | None, str]:
    """The image as RGB, or None with the skip reason. Accepts a path, bytes, a PIL image or an {bytes, path} dict."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, Image.Image):
        return value.convert("RGB"), ""
    if isinstance(value, (bytes, bytearray)):
        return _decode(io.BytesIO(value))
    if isinstance(value, str) and value.strip():
        path = Path(os.path.expanduser(value))
        if not path.is_absolute() and root is not None:
            path = root / path
        if not path.is_file():
            return None, MISSING_IMAGE
        return _decode(path)
    return None, MISSING_IMAGE


def _decode(fp) -> tuple[Image.Image | None, str]:
    try:
        with Image.open(fp) as image:
            return image.convert("RGB"), ""
    except Exception:  # noqa: BLE001 - PIL raises many types for bad files; all mean "unreadable"
        return None, UNREADABLE_IMAGE
