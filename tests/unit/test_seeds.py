"""Results over seeds (evaluation.seeds): level groups, mean +- sd, and differences paired by seed."""

import math

import pytest

from synergy_ray.core.eval_stats import QuestionResult
from synergy_ray.evaluation.seeds import group_metrics, paired_difference, seed_summary, seeds_markdown


def _q(level, correct, samples=4, tokens=10.0):
    return QuestionResult(id=f"q{level}{correct}", steps=level, level=level, answer="1", num_correct=correct,
                          num_samples=samples, mean_reward=0.0, mean_tokens=tokens, format_rate=1.0,
                          num_truncated=0, reasoning_words={}, example="")


def test_group_metrics_by_hand():
    m = group_metrics([_q(1, 4), _q(1, 2), _q(4, 0, tokens=30.0), _q(5, 1, tokens=50.0)])
    assert m["L1"]["accuracy"] == pytest.approx(75.0) and m["L1"]["pass_at_k"] == 100.0
    assert m["L4-L5"]["accuracy"] == pytest.approx(12.5) and m["L4-L5"]["pass_at_k"] == 50.0
    assert m["L4-L5"]["tokens"] == 40.0 and m["all"]["questions"] == 4
    assert m["L2"] == {"accuracy": None, "pass_at_k": None, "tokens": None}


def test_paired_difference_and_its_standard_error_by_hand():
    mean, se = paired_difference([12.0, 10.0, 14.0], [10.0, 10.0, 10.0])  # diffs 2, 0, 4: sd 2
    assert mean == pytest.approx(2.0) and se == pytest.approx(2.0 / math.sqrt(3))
    assert paired_difference([1.0], [0.5]) == (0.5, None)
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [1.0])


def test_the_summary_pairs_each_strategy_with_the_baseline_seed_by_seed():
    runs = {"rl": [group_metrics([_q(5, 0)]), group_metrics([_q(5, 1)])],
            "adaptive": [group_metrics([_q(5, 2)]), group_metrics([_q(5, 2)])]}
    s = seed_summary(runs, "rl")
    assert s["strategies"]["rl"]["L5"]["accuracy"] == pytest.approx([12.5, math.sqrt(2 * 12.5 ** 2)])  # 0 and 25: sample sd
    assert s["paired"]["adaptive"]["L5"]["accuracy"] == pytest.approx([37.5, 12.5])  # diffs 50, 25
    assert "rl" not in s["paired"] and s["strategies"]["adaptive"]["L1"]["accuracy"] is None
    text = seeds_markdown(s)
    assert "37.5 ± 12.5" in text and "| adaptive | 2 |" in text
