"""The DeepSpeed learner on its own: a GRPO step moves log-probs the way the advantages say, and SFT-routed
tokens learn without entering the policy ratio."""

import math

import pytest


@pytest.fixture(scope="module")
def learner(ray_local, smoke_run):
    from synergy_ray.learner import LearnerGroup, LearnerSpec

    cfg, prepared = smoke_run
    spec = LearnerSpec(model_path=prepared.model_path, data_path=str(prepared.train_path),
                       prompt_suffix=cfg.data.prompt_suffix, lr=1e-3, kl_coef=0.0, zero_stage=2,
                       micro_batch_size=1)  # two micro-batches: accumulation must keep both
    group = LearnerGroup(spec, num_workers=1, num_cpus=0.5)
    yield group.workers[0], prepared
    for w in group.workers:
        ray_local.kill(w)


def _samples(prepared, **kw):
    import datasets
    from transformers import AutoProcessor

    from synergy_ray.model.prompting import encode_prompt, prompt_text
    from synergy_ray.records import TrainSample

    processor = AutoProcessor.from_pretrained(prepared.model_path)
    row = datasets.load_from_disk(str(prepared.train_path))[0]
    prompt = encode_prompt(processor, prompt_text(processor, row["question"], ""), row["image"])["input_ids"][0]
    good = processor.tokenizer("<think>7</think>\\boxed{7}", add_special_tokens=False)["input_ids"]
    bad = processor.tokenizer("<think>1</think>\\boxed{1}", add_special_tokens=False)["input_ids"]
    make = lambda ids, adv: TrainSample(row=0, prompt_ids=prompt.tolist(), completion_ids=ids,  # noqa: E731
                                        sampler_logprobs=[-1.0] * len(ids), advantage=adv, **kw)
    return make(good, 1.0), make(bad, -1.0)


def _mean(values):
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values)


def test_grpo_step_raises_positive_and_lowers_negative_advantage(learner, ray_local):
    worker, prepared = learner
    good, bad = _samples(prepared)
    # The two completions differ only in their answer digits; the shared tokens get +1 and -1 and cancel.
    digits = [i for i, (a, b) in enumerate(zip(good.completion_ids, bad.completion_ids)) if a != b]
    assert len(digits) == 2
    before = ray_local.get(worker.logprobs.remote([good, bad]))
    tokens = len(good.completion_ids) + len(bad.completion_ids)
    stats = ray_local.get(worker.train_step.remote([good, bad], tokens, 2))  # micro-batch 1: two accumulate
    after = ray_local.get(worker.logprobs.remote([good, bad]))
    assert stats["policy_tokens"] == tokens and stats["sft_tokens"] == 0
    for i in digits:
        assert after[0][i] > before[0][i] + 1e-3, (i, before[0][i], after[0][i])  # positive advantage
        assert after[1][i] < before[1][i] - 1e-3, (i, before[1][i], after[1][i])  # negative advantage


def test_sft_routed_tokens_learn_and_skip_the_ratio(learner, ray_local):
    worker, prepared = learner
    good, _ = _samples(prepared)
    n = len(good.completion_ids)
    expert = type(good)(row=0, prompt_ids=good.prompt_ids, completion_ids=good.completion_ids,
                        sampler_logprobs=[math.nan] * n, advantage=0.0, policy_from=n, sft_weight=1.0)
    before = _mean(ray_local.get(worker.logprobs.remote([expert]))[0])
    stats = ray_local.get(worker.train_step.remote([expert], n, 1))
    after = _mean(ray_local.get(worker.logprobs.remote([expert]))[0])
    assert stats["policy_tokens"] == 0 and stats["sft_tokens"] == n
    assert after > before + 1e-3


def test_micro_batch_accumulation_equals_one_big_batch(ray_local, smoke_run):
    """Mixed long and short sequences: four micro-batches of one give the same update as one batch of four."""
    from synergy_ray.learner import LearnerGroup, LearnerSpec

    cfg, prepared = smoke_run
    good, bad = _samples(prepared)
    long_good = type(good)(**{**good.__dict__, "completion_ids": good.completion_ids * 4,
                              "sampler_logprobs": good.sampler_logprobs * 4})
    samples = [good, long_good, bad, bad]
    tokens = sum(len(s.completion_ids) for s in samples)
    after = {}
    for micro in (4, 1):
        spec = LearnerSpec(model_path=prepared.model_path, data_path=str(prepared.train_path),
                           prompt_suffix=cfg.data.prompt_suffix, lr=1e-3, micro_batch_size=micro)
        worker = LearnerGroup(spec, num_workers=1, num_cpus=0.5).workers[0]
        ray_local.get(worker.train_step.remote(samples, tokens, len(samples)))
        after[micro] = ray_local.get(worker.logprobs.remote(samples))
        ray_local.kill(worker)
    diff = max(abs(a - b) for x, y in zip(after[4], after[1]) for a, b in zip(x, y) if not math.isnan(a))
    assert diff < 1e-4, diff
