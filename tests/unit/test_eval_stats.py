"""Evaluation statistics on hand-made completions: every expected number is worked out in the comments."""

import datasets
import pytest

from synergy_ray.core.eval_stats import (
    Completion, count_reasoning_words, score_questions, summarize_by_level,
)

WORDS = ("wait", "check", "alternatively", "verify", "however")

ROWS = [
    {"id": "q1", "steps": 1, "level": 1, "answer": "7", "choices": []},
    {"id": "q2", "steps": 3, "level": 4, "answer": "12", "choices": []},
    {"id": "q3", "steps": 3, "level": 4, "answer": "B", "choices": ["1", "2", "3"]},
]
COMPLETIONS = [
    [  # 3 of 4 correct; tokens 10, 6, 4, 12 -> mean 8; formatted a, b -> 0.5; rewards 1, 1, .9, 0 -> .725
        Completion("<think>Wait, the red one.</think>\\boxed{7}", 10),  # wait 1
        Completion("<think>check it</think>\\boxed{7}", 6),  # check 1
        Completion("\\boxed{7}", 4),  # correct but no think block
        Completion("<think>However, checking and checked", 12, "length"),  # however 1, check 2; cut off
    ],
    [  # 1 of 4; tokens 2, 2, 6, 2 -> mean 3; all formatted
        Completion("<think>x</think>\\boxed{5}", 2),
        Completion("<think>x</think>\\boxed{5}", 2),
        Completion("<think>Alternatively 12</think>\\boxed{12}", 6),  # alternatively 1
        Completion("<think>x</think>\\boxed{5}", 2),
    ],
    [  # 2 of 2 (multiple choice: "2" is option B's text); tokens 4, 8 -> mean 6
        Completion("<think>verify</think>\\boxed{B}", 4),  # verify 1
        Completion("<think>recheck</think>\\boxed{2}", 8),  # "recheck" does not start with "check"
    ],
]


@pytest.fixture(scope="module")
def results():
    return score_questions(ROWS, COMPLETIONS, 0.9, 0.1, WORDS)


def test_reasoning_words_are_case_insensitive_prefix_matches():
    text = "Wait, wait... I CHECKED; let me recheck. Verified? verifying. However, howeverly"
    assert count_reasoning_words(text, WORDS) == {
        "wait": 2, "check": 1, "alternatively": 0, "verify": 1, "however": 2,
    }


def test_per_question_counts(results):
    q1, q2, q3 = results
    assert (q1.num_correct, q1.num_samples, q2.num_correct, q3.num_correct, q3.num_samples) == (3, 4, 1, 2, 2)
    assert q1.mean_tokens == 8.0 and q2.mean_tokens == 3.0 and q3.mean_tokens == 6.0
    assert q1.mean_reward == pytest.approx(0.725)
    assert (q1.format_rate, q2.format_rate, q3.format_rate) == (0.5, 1.0, 1.0)
    assert (q1.num_truncated, q2.num_truncated) == (1, 0)
    assert q1.reasoning_words == {"wait": 1, "check": 3, "alternatively": 0, "verify": 0, "however": 1}
    assert q3.reasoning_words["check"] == 0 and q3.reasoning_words["verify"] == 1
    assert q2.example == "<think>Alternatively 12</think>\\boxed{12}"  # the first correct one is kept
    assert (q1.level, q3.steps, q3.id) == (1, 3, "q3")


def test_level_accuracy_is_a_mean_over_questions_not_over_samples(results):
    by_level = summarize_by_level(results, "level")
    assert list(by_level) == [1, 4, "all"]
    assert by_level[1].accuracy == 0.75 and by_level[1].mean_tokens == 8.0
    assert by_level[1].reasoning_per_response == 1.25  # 5 words / 4 responses
    assert by_level[1].truncated_rate == 0.25
    l4 = by_level[4]
    assert l4.n_questions == 2
    assert l4.accuracy == 0.625  # (1/4 + 2/2) / 2; pooled samples would give 3/6
    assert l4.mean_tokens == 4.5  # (3 + 6) / 2
    assert l4.reasoning_per_response == pytest.approx(0.375)  # (1/4 + 1/2) / 2
    assert l4.reasoning_words["alternatively"] == 0.125 and l4.reasoning_words["verify"] == 0.25
    everything = by_level["all"]
    assert everything.n_questions == 3
    assert everything.accuracy == pytest.approx(2 / 3)  # (3/4 + 1/4 + 1) / 3
    assert everything.mean_tokens == pytest.approx(17 / 3)


def test_grouping_by_steps_and_unlevelled_questions(results):
    by_steps = summarize_by_level(results, "steps")
    assert list(by_steps) == [1, 3, "all"] and by_steps[3].accuracy == 0.625
    unlevelled = score_questions([{**ROWS[0], "level": None}], COMPLETIONS[:1], reasoning_words=WORDS)
    assert list(summarize_by_level(unlevelled, "level")) == ["all"]  # only the overall row
    with pytest.raises(ValueError, match="key must be"):
        summarize_by_level(results, "difficulty")


def test_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError, match="3 questions but 2"):
        score_questions(ROWS, COMPLETIONS[:2])
    with pytest.raises(ValueError, match="no completions"):
        score_questions(ROWS[:1], [[]])


def _result(qid: str, correct: int, samples: int = 16):
    (result,) = score_questions(
        [{"id": qid, "steps": 1, "answer": "1", "choices": []}],
        [[Completion("\\boxed{1}", 1)] * correct + [Completion("\\boxed{0}", 1)] * (samples - correct)],
    )
    return result


def test_assign_levels_writes_the_papers_buckets_into_the_saved_dataset(tmp_path):
    from synergy_ray.evaluation.evaluator import assign_levels_to_dataset

    # correct of 16 at each side of every threshold: L1 12-16, L2 8-11, L3 5-7, L4 2-4, L5 0-1
    passes = {"a": 12, "b": 11, "c": 8, "d": 7, "e": 5, "f": 4, "g": 2, "h": 1, "i": 0}
    expected = {"a": 1, "b": 2, "c": 2, "d": 3, "e": 3, "f": 4, "g": 4, "h": 5, "i": 5}
    path = tmp_path / "eval"
    datasets.Dataset.from_list([{"id": i, "question": "?"} for i in passes]).save_to_disk(str(path))
    results = [_result(i, n) for i, n in passes.items()]

    counts = assign_levels_to_dataset(path, results)  # in place
    assert counts == {1: 1, 2: 2, 3: 2, 4: 2, 5: 2}
    saved = datasets.load_from_disk(str(path))
    assert dict(zip(saved["id"], saved["level"])) == expected

    counts = assign_levels_to_dataset(path, [_result(i, 16) for i in passes], out_path=tmp_path / "easy")
    assert counts == {1: 9, 2: 0, 3: 0, 4: 0, 5: 0}  # an existing level column is replaced...
    assert datasets.load_from_disk(str(path))["level"] == [expected[i] for i in passes]  # ...in the copy only

    with pytest.raises(ValueError, match="1 of 9 questions .* have no evaluation result"):
        assign_levels_to_dataset(path, results[:-1])


def _report(name, results):
    from synergy_ray.evaluation.evaluator import EvalReport

    by_level = summarize_by_level(results, "level")
    return EvalReport(name=name, model_path=f"/m/{name}", k=4, temperature=0.6, top_p=0.95, top_k=20,
                      max_tokens=64, per_question=list(results), per_level_by_level=by_level,
                      per_level_by_steps=summarize_by_level(results, "steps"), wall_s=1.5, generate_s=1.0)


def test_report_json_round_trip_and_table(results, tmp_path):
    from synergy_ray.evaluation.evaluator import format_table, load_report, save_report

    base = _report("base", results)
    sft = _report("sft", results[1:])  # has no L1 question
    assert load_report(save_report(base, tmp_path / "base.json")) == base
    table = format_table([base, sft], "level")
    lines = {line.split()[0]: line for line in table.splitlines()[3:]}
    assert list(lines) == ["L1", "L4", "all"]
    assert lines["L1"].split()[1:5] == ["1", "75.0", "8.0", "1.25"]  # n, then base: acc %, tokens, words
    assert lines["L1"].split()[-3:] == ["-", "-", "-"]  # sft has no L1 row
    assert lines["L4"].split()[1:5] == ["2", "62.5", "4.5", "0.38"]
    assert "S3" in format_table([base], "steps")
