"""The benchmarks' pure helpers (tables, medians, ratios, the time split) and the per-role memory probe."""

import subprocess
import sys
import time

import pytest

from benchmarks.common import format_table, interleaved, median, ratio
from benchmarks.rollout_overhead import summarize
from benchmarks.step_vs_trl import block_order, measured_steps, parse_args, quantiles, time_split
from synergy_ray.processes.profiling import peak_rss_mib


def test_median_ratio_and_interleaving():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    with pytest.raises(ValueError, match="no measurements"):
        median([])
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(1.0, 0.0) is None  # nothing to compare against, not a division error
    assert interleaved(["a", "b"], 2) == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]


def test_table_formats_floats_and_missing_values():
    table = format_table(["arm", "x"], [["bare", 1234.5678], ["actor", None], ["y", 0.123456]])
    assert table.splitlines() == ["| arm | x |", "| --- | --- |", "| bare | 1235 |", "| actor | - |", "| y | 0.123 |"]


def test_rollout_summary_ratios_against_bare_vllm():
    runs = {arm: [{"tokens": 100, "seconds": s} for s in seconds]
            for arm, seconds in {"bare": (1.0, 0.5, 2.0), "actor": (2.0, 1.0, 4.0)}.items()}
    s = summarize(runs)
    assert s["tokens_per_s_median"] == {"bare": 100.0, "actor": 50.0}
    assert s["ratio_to_bare"] == {"bare": 1.0, "actor": 0.5}


def test_time_split_shares_of_the_median_step():
    steps = [{"generate": 2.0, "score": 0.5, "train": 1.0, "sync": 0.1, "health_check": 0.2, "overhead": 0.2,
              "step": 4.0},
             {"generate": 4.0, "score": 0.5, "train": 3.0, "sync": 0.3, "health_check": 0.2, "overhead": 0.0,
              "step": 8.0},
             {"generate": 3.0, "score": 0.5, "train": 2.0, "sync": 0.2, "health_check": 0.2, "overhead": 0.1,
              "step": 6.0}]
    split = time_split(steps)
    assert split["step"]["seconds"] == 6.0
    assert split["generate"] == {"seconds": 3.0, "share": 0.5}
    assert split["sync"]["share"] == pytest.approx(0.2 / 6.0)


def test_quick_mode_runs_only_the_tiny_size():
    assert parse_args(["--quick"]).sizes == ["tiny"]
    assert parse_args([]).sizes == ["tiny", "small"]


def test_sides_alternate_in_abba_blocks():
    assert block_order(2) == [(0, "synergy"), (0, "trl"), (1, "trl"), (1, "synergy")]
    assert block_order(3)[-2:] == [(2, "synergy"), (2, "trl")]
    assert [s for _, s in block_order(2, ("a", "b", "c"))] == ["a", "b", "c", "c", "b", "a"]


def test_length_quantiles_and_the_split_of_each_side_from_its_own_run():
    q = quantiles(list(range(1, 11)))
    assert (q["n"], q["mean"], q["p10"], q["p50"], q["p90"], q["max"]) == (10, 5.5, 2.0, 6.0, 10.0, 10.0)
    runs = {"synergy": [{"steps": [{"wall": 9.0, "timings": {"generate": 5.0}, "completion_lengths": [1],
                                    "reward": 0.0},
                                   {"wall": 4.0, "timings": {"generate": 1.0}, "completion_lengths": [3, 5],
                                    "reward": 0.5}]}],
            "trl": [{"step_seconds": [20.0, 10.0], "generate_seconds": [8.0, 6.0], "reward": [0.0, 0.25],
                     "completion_lengths": [[7], [2, 4]]}, {"error": "crashed"}]}
    steps = measured_steps(runs, warmup=1)  # the first step of every block is dropped; a failed block adds none
    assert [(r["step"], r["generate"], r["train"], r["lengths"]) for r in steps["synergy"]] == [(4.0, 1.0, 3.0, [3, 5])]
    assert [(r["step"], r["generate"], r["train"], r["lengths"]) for r in steps["trl"]] == [(10.0, 6.0, 4.0, [2, 4])]


def test_peak_memory_counts_live_children():
    code = "b = bytearray(80 * 1024 * 1024); import time; time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            mem = peak_rss_mib()
            if mem["children"] >= 80:
                break
            time.sleep(0.1)
        assert mem["children"] >= 80, mem  # the child's 80 MiB buffer is in the tree's peak
        assert mem["total"] == pytest.approx(mem["self"] + mem["children"])
    finally:
        child.kill()
        child.wait()


def test_serve_load_percentiles_and_level_summary():
    from benchmarks.serve_load import percentile, summarize_level

    values = [float(v) for v in range(1, 101)]  # 1..100
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([3.0], 99) == 3.0 and percentile([], 50) is None
    results = [{"latency": 1.0, "ttft": 0.1, "tokens": 10}, {"latency": 3.0, "ttft": None, "tokens": 30},
               {"error": "APIConnectionError: refused"}]
    level = summarize_level(results, seconds=2.0)
    assert (level["requests"], level["errors"], level["output_tokens"], level["tokens_per_s"]) == (3, 1, 40, 20.0)
    assert (level["latency_p50_s"], level["latency_p99_s"], level["ttft_p50_s"]) == (1.0, 3.0, 0.1)
    assert level["error_samples"] == ["APIConnectionError: refused"]
