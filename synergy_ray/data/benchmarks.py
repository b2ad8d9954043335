"""The five benchmarks of the paper in the difficulty-tagged copies its authors published, read from local files.

Chen et al. (arXiv 2507.07562) released each benchmark on the Hugging Face Hub as the benchmark's own columns plus
two tags computed from Qwen2.5-VL-7B's 16 samples per question: `passrate_for_qwen2.5_vl_7b` and
`difficulty_level_for_qwen2.5_vl_7b` (`AUTHORS_HUB` below; github.com/JierunChen/SFT-RL-SynergyDilemma). Each
loader maps one benchmark's columns into our row schema (`synthetic.FEATURES`) plus a `level` column, then hands
the rows to the user-data loader (`loader.convert_rows`), so images, empty answers and the skip-and-count report
work exactly as for user data.

What we rely on and what we chose:
- The level tag is read as 1-5 (also "L3" / "level 3"); a row without it falls back to the pass-rate tag and
  the paper's thresholds (`core.difficulty`); a row with neither is skipped as `missing_level`. MathVision's own
  `level` column is the competition's grade, not the paper's level, and is ignored.
- Multiple choice: the options are written into the question (MathVision, MathVista, MMMU list them in a column;
  MathVerse and MMStar already embed them in the question text, from where we parse them), and `choices` holds
  them, so `core.rewards` scores the option letter (a gold given as option text is mapped to its letter).
- One image per question: MMMU questions with more than one image are skipped as `multiple_images`.
- Images: the embedded image column when it holds bytes, else the path column, relative to the benchmark
  directory (the authors' `images.zip` unpacked there).
"""

from __future__ import annotations

import ast
import re
import shutil
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import datasets

from synergy_ray.core.difficulty import NUM_LEVELS, level_from_pass_rate
from synergy_ray.data.loader import LoadReport, convert_rows, read_rows

LEVEL_TAG = "difficulty_level_for_qwen2.5_vl_7b"
PASS_RATE_TAG = "passrate_for_qwen2.5_vl_7b"
LEVEL_FEATURES = datasets.Features({"level": datasets.Value("int32")})

MISSING_LEVEL = "missing_level"
MULTIPLE_IMAGES = "multiple_images"


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub: str  # the authors' level-tagged copy
    original: str  # the benchmark's own Hub dataset, whose columns the copy keeps
    files: tuple[str, ...]  # glob patterns under the local directory, tried in order; the first that matches wins
    to_row: Callable[[dict], dict]  # one published row -> our columns (id, image, question, answer, choices)


# ---------------------------------------------------------------- helpers shared by the benchmarks


def _first_image(row: dict, *names: str):
    """The first non-empty image value among `names` (an embedded {bytes, path} dict counts when it has either)."""
    for name in names:
        value = row.get(name)
        if isinstance(value, dict):
            if value.get("bytes") or value.get("path"):
                return value
        elif value not in (None, ""):
            return value
    return None


def with_choices(question: str, choices: list[str]) -> str:
    """The question followed by its options as "(A) ...", one per line."""
    if not choices:
        return question
    lines = [f"({letter}) {choice}" for letter, choice in zip(string.ascii_uppercase, choices)]
    return question.rstrip() + "\nChoices:\n" + "\n".join(lines)


_CHOICES_MARKER = re.compile(r"(?i)\b(?:choices|options)\s*:")


def inline_choices(question: str) -> list[str]:
    """Options written into the question after "Choices:" / "Options:", as "A: x", "A. x", "(A) x" or "A) x".

    Letters must appear in order A, B, C, ...; fewer than two found (or no marker) gives [].
    """
    marker = _CHOICES_MARKER.search(question)
    if marker is None:
        return []
    body, marks, start = question[marker.end():], [], 0
    for letter in string.ascii_uppercase:
        found = re.compile(rf"(?<![^\s,;(]){letter}(?:\)|\s*[:.])\s*|\({letter}\)\s*").search(body, start)
        if found is None:
            break
        marks.append(found)
        start = found.end()
    if len(marks) < 2:
        return []
    ends = [m.start() for m in marks[1:]] + [len(body)]
    return [body[m.end():end].strip().rstrip(",;").strip().removesuffix("(").strip() for m, end in zip(marks, ends)]


def _letters_up_to(gold: str, at_least: int = 4) -> list[str]:
    """Option letters for a question whose options are only in the image: A-D, or up to the gold letter."""
    gold = gold.strip().strip("()").upper()
    last = string.ascii_uppercase.index(gold) + 1 if len(gold) == 1 and gold.isalpha() else 0
    return list(string.ascii_uppercase[: max(at_least, last)])


def _as_list(value) -> list[str]:
    """A list column that may arrive as a list, a numpy array, None, or its Python repr ("['a', 'b']")."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else []


def parse_level(row: dict) -> int | None:
    """The paper's level from the level tag, else from the pass-rate tag; None when neither is usable."""
    value = row.get(LEVEL_TAG)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(?:l|level)?\s*(\d+)\s*", value, flags=re.IGNORECASE)
        value = int(match.group(1)) if match else None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= NUM_LEVELS:
        return value
    rate = row.get(PASS_RATE_TAG)
    try:
        return level_from_pass_rate(float(rate)) if rate is not None else None
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- one mapping per benchmark


def _mathvision(row: dict) -> dict:
    # MathVision: id, question, options (list), image (path), decoded_image, answer (a letter when options exist),
    # solution, level (competition grade 1-5, not ours), subject.
    choices = _as_list(row.get("options"))
    return {"id": row.get("id"), "image": _first_image(row, "decoded_image", "image"),
            "question": with_choices(row.get("question") or "", choices), "answer": row.get("answer"),
            "choices": choices}


def _mathverse(row: dict) -> dict:
    # MathVerse: sample_index, problem_index, problem_version, question (options inline for multi-choice), image,
    # answer (a letter for multi-choice), question_type, query_wo / query_cot. Vision-only versions have no
    # question text (it is in the image); query_wo then carries the instruction.
    question = (row.get("question") or "").strip() or (row.get("query_wo") or "").strip()
    choices: list[str] = []
    if str(row.get("question_type", "")).startswith("multi"):
        choices = inline_choices(question) or _letters_up_to(str(row.get("answer") or ""))
    return {"id": row.get("sample_index"), "image": _first_image(row, "image"), "question": question,
            "answer": row.get("answer"), "choices": choices}


def _mathvista(row: dict) -> dict:
    # MathVista: pid, question, image (path), decoded_image, choices (list or None), unit, precision, answer (the
    # option's text for multi_choice), question_type, answer_type, metadata, query.
    choices = _as_list(row.get("choices")) if row.get("question_type") == "multi_choice" else []
    return {"id": row.get("pid"), "image": _first_image(row, "decoded_image", "image"),
            "question": with_choices(row.get("question") or "", choices), "answer": row.get("answer"),
            "choices": choices}


MMMU_IMAGES = tuple(f"image_{i}" for i in range(1, 8))


def _mmmu(row: dict) -> dict:
    # MMMU (validation, one directory per subject): id, question, options (repr of a list), explanation,
    # image_1 .. image_7, img_type, answer (a letter for multiple-choice), topic_difficulty, question_type, subfield.
    choices = _as_list(row.get("options")) if row.get("question_type") == "multiple-choice" else []
    images = [name for name in MMMU_IMAGES if _first_image(row, name) is not None]
    out = {"id": row.get("id"), "image": _first_image(row, "image_1"),
           "question": with_choices(row.get("question") or "", choices), "answer": row.get("answer"),
           "choices": choices}
    if len(images) > 1:
        out["skip"] = MULTIPLE_IMAGES
    return out


def _mmstar(row: dict) -> dict:
    # MMStar: index, question ("... Options: A: x, B: y, C: z, D: w"), image, answer (a letter), category,
    # l2_category, meta_info.
    question = row.get("question") or ""
    return {"id": row.get("index"), "image": _first_image(row, "image"), "question": question,
            "answer": row.get("answer"), "choices": inline_choices(question) or _letters_up_to(str(row.get("answer") or ""))}


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("mathvision", "JierunChen/MathVision_with_difficulty_level", "MathLLMs/MathVision",
              ("data/test-*.parquet", "*.parquet", "*.jsonl"), _mathvision),
    Benchmark("mathverse", "JierunChen/MathVerse_with_difficulty_level", "AI4Math/MathVerse",
              ("testmini.parquet", "*.parquet", "*.jsonl"), _mathverse),
    Benchmark("mathvista", "JierunChen/MathVista_with_difficulty_level", "AI4Math/MathVista",
              ("data/testmini-*.parquet", "*.parquet", "*.jsonl"), _mathvista),
    Benchmark("mmmu", "JierunChen/MMMU_with_difficulty_level", "MMMU/MMMU",
              ("*/validation-*.parquet", "*.parquet", "*.jsonl"), _mmmu),
    Benchmark("mmstar", "JierunChen/MMStar_with_difficulty_level", "Lin-Chen/MMStar",
              ("*.parquet", "*/*.parquet", "*.jsonl"), _mmstar),
)}


# ---------------------------------------------------------------- loading


def benchmark_files(name: str, path: str | Path) -> list[Path]:
    """The data files of benchmark `name` under `path` (a directory, or one file)."""
    spec = _spec(name)
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"benchmark {name}: no such file or directory: {path} "
                                f"(download {spec.hub} from the Hugging Face Hub there; see the README)")
    for pattern in spec.files:
        found = sorted(p for p in path.glob(pattern) if p.is_file())
        if found:
            return found
    raise FileNotFoundError(f"benchmark {name}: {path} holds none of the files {list(spec.files)} "
                            f"of {spec.hub}")


def load_benchmark(name: str, path: str | Path, limit: int | None = None) -> tuple[datasets.Dataset, LoadReport]:
    """Benchmark `name` from its local files, in our schema plus `level`; bad rows skipped and counted by reason.

    `limit` keeps the first that many published rows (before any is skipped), for a quick look.
    """
    spec = _spec(name)
    files = benchmark_files(name, path)
    raw: list[dict] = []
    for file in files:
        raw += read_rows(str(file))[0]
    if limit is not None:
        raw = raw[:limit]
    report, rows = LoadReport(), []
    for index, published in enumerate(raw):
        row = spec.to_row(published)
        row_id = str(row["id"]) if row.get("id") not in (None, "") else f"row-{index:06d}"
        row["id"] = row_id
        level = parse_level(published)
        if row.pop("skip", None) == MULTIPLE_IMAGES:
            report.skip(MULTIPLE_IMAGES, row_id)
        elif level is None:
            report.skip(MISSING_LEVEL, row_id)
        else:
            rows.append({**row, "level": level})
    if not rows:
        raise ValueError(f"benchmark {name}: no usable rows in {[str(f) for f in files]}: {report.summary()}")
    root = Path(path).expanduser()
    return convert_rows(rows, {}, root if root.is_dir() else root.parent, report, extra=LEVEL_FEATURES)


def prepare_benchmark(name: str, path: str | Path, out_dir: str | Path,
                      limit: int | None = None) -> tuple[Path, LoadReport]:
    """Load a benchmark and save it where the evaluator reads data sets (`save_to_disk`), replacing an old copy."""
    ds, report = load_benchmark(name, path, limit)
    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    ds.save_to_disk(str(out))
    return out, report


def _spec(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark '{name}'; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]
