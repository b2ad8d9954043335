import json

import numpy as np
import pytest

from synergy_ray.core.curriculum import CurriculumSampler, PassRateTable, curriculum_weights


def test_pass_rate_table_discounted_beta_by_hand():
    table = PassRateTable(prior_correct=1.0, prior_wrong=1.0, decay=0.5)
    assert table.pass_rate("unseen") == 0.5
    table.update("q", 3, 4)  # c = 3, w = 1
    assert table.pass_rate("q") == pytest.approx(4 / 6)
    table.update("q", 0, 4)  # c = 1.5, w = 0.5 + 4
    assert table.pass_rate("q") == pytest.approx(2.5 / 8)


def test_decay_one_is_the_plain_posterior():
    table = PassRateTable(decay=1.0)
    table.update(7, 3, 4)
    table.update(7, 0, 4)
    assert table.pass_rate(7) == pytest.approx((1 + 3) / (2 + 8))


def test_weights_by_hand():
    # (1 - p)^2 = [1, .25, 0] -> q = [.8, .2, 0]; w = .1 / 3 + .9 q
    w = curriculum_weights([0.0, 0.5, 1.0], focus=2.0, floor=0.1)
    assert w.tolist() == pytest.approx([0.1 / 3 + 0.72, 0.1 / 3 + 0.18, 0.1 / 3])
    assert w.sum() == pytest.approx(1.0)


def test_floor_keeps_every_question_at_least_its_share():
    w = curriculum_weights([0.0] + [1.0] * 9, focus=4.0, floor=0.2)
    assert w.min() == pytest.approx(0.2 / 10)  # the always-solved questions keep 20% of their uniform weight
    assert w[0] == pytest.approx(0.02 + 0.8)


@pytest.mark.parametrize("rates, focus, floor", [([0.0, 0.3, 1.0], 0.0, 0.1), ([0.0, 0.3, 1.0], 3.0, 1.0),
                                                  ([1.0, 1.0, 1.0], 2.0, 0.1)])
def test_uniform_cases(rates, focus, floor):
    assert curriculum_weights(rates, focus, floor).tolist() == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("rates, focus, floor", [([], 1, 0.1), ([1.2], 1, 0.1), ([0.5], -1, 0.1), ([0.5], 1, 0.0)])
def test_invalid_weights_inputs(rates, focus, floor):
    with pytest.raises(ValueError):
        curriculum_weights(rates, focus, floor)


def _sampler(seed=0, ids=range(10)):
    return CurriculumSampler(list(ids), focus=2.0, floor=0.1, seed=seed)


def test_sampler_favours_hard_questions():
    sampler = _sampler()
    for qid in range(10):
        sampler.update(qid, 16 if qid < 5 else 0, 16)  # 0-4 easy (p = 17/18), 5-9 hard (p = 1/18)
    # hard mass = .1 * .5 + .9 * (17/18)^2 / ((17/18)^2 + (1/18)^2) = .05 + .9 * 289/290 = .947
    draws = [sampler.sample(1)[0] for _ in range(2000)]
    hard_share = sum(qid >= 5 for qid in draws) / len(draws)
    assert 0.92 < hard_share < 0.97


def test_batches_have_no_repeats():
    batch = _sampler().sample(10)
    assert sorted(batch) == list(range(10))
    with pytest.raises(ValueError, match="distinct"):
        _sampler().sample(11)


def test_same_seed_same_batches_different_seed_different_batches():
    a, b, c = _sampler(seed=3), _sampler(seed=3), _sampler(seed=4)
    batches_a = [a.sample(4) for _ in range(3)]
    assert batches_a == [b.sample(4) for _ in range(3)]
    assert batches_a != [c.sample(4) for _ in range(3)]


def test_state_dict_round_trip_draws_the_identical_next_batch():
    ids = [f"q{i}" for i in range(12)]
    original = CurriculumSampler(ids, focus=2.0, floor=0.1, seed=11)
    original.sample(5)
    original.update("q3", 0, 8)
    original.update("q4", 8, 8)
    state = json.loads(json.dumps(original.state_dict()))  # must survive JSON
    restored = CurriculumSampler(ids, focus=2.0, floor=0.1, seed=999)
    restored.load_state_dict(state)
    assert restored.pass_rate("q3") == original.pass_rate("q3") == pytest.approx(1 / 10)
    assert restored.sample(6) == original.sample(6)
    assert restored.sample(6) == original.sample(6)


def test_sampler_rejects_unknown_ids_and_foreign_state():
    sampler = _sampler()
    with pytest.raises(KeyError, match="unknown question id 42"):
        sampler.update(42, 1, 2)
    with pytest.raises(ValueError, match="different list of question ids"):
        _sampler(ids=range(9)).load_state_dict(sampler.state_dict())
    with pytest.raises(ValueError, match="unique"):
        CurriculumSampler([1, 1])


def test_weights_follow_updates():
    sampler = _sampler(ids=range(3))
    sampler.update(0, 0, 8)
    w = sampler.weights()
    assert w[0] > w[1] == w[2]
    assert isinstance(w, np.ndarray)
