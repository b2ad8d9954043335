"""The DeepSpeed learner on its own: a GRPO step moves log-probs the way the advantages say, SFT-routed tokens
learn without entering the policy ratio, and the group shape (ranks, ZeRO stage, checkpointing) changes how the
step is computed, never what it computes."""

import math

import pytest
import torch


def _cfg(smoke_run, *overrides):
    from synergy_ray.config import load_config

    cfg, prepared = smoke_run
    return load_config("configs/smoke_cpu.yaml", [f"run.output_dir={cfg.run.output_dir}",
                                                  f"model.path={prepared.model_path}", *overrides])


def _group(smoke_run, *overrides, num_cpus=0.5):
    from synergy_ray.learner import LearnerGroup

    _, prepared = smoke_run
    return LearnerGroup(_cfg(smoke_run, *overrides), prepared.model_path, str(prepared.train_path),
                        num_cpus=num_cpus)


@pytest.fixture(scope="module")
def learner(ray_local, smoke_run):
    # micro-batch 1: two micro-batches, accumulation must keep both
    group = _group(smoke_run, "learner.lr=1e-3", "rl.kl_coef=0", "learner.micro_batch_size=1")
    yield group, smoke_run[1]
    group.kill()


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


def test_grpo_step_raises_positive_and_lowers_negative_advantage(learner):
    group, prepared = learner
    good, bad = _samples(prepared)
    # The two completions differ only in their answer digits; the shared tokens get +1 and -1 and cancel.
    digits = [i for i, (a, b) in enumerate(zip(good.completion_ids, bad.completion_ids)) if a != b]
    assert len(digits) == 2
    before = group.logprobs([good, bad])
    tokens = len(good.completion_ids) + len(bad.completion_ids)
    stats = group.train_step([good, bad], tokens)  # micro-batch 1: two accumulate
    after = group.logprobs([good, bad])
    assert stats.policy_tokens == tokens and stats.sft_tokens == 0
    for i in digits:
        assert after[0][i] > before[0][i] + 1e-3, (i, before[0][i], after[0][i])  # positive advantage
        assert after[1][i] < before[1][i] - 1e-3, (i, before[1][i], after[1][i])  # negative advantage


def test_sft_routed_tokens_learn_and_skip_the_ratio(learner):
    group, prepared = learner
    good, _ = _samples(prepared)
    n = len(good.completion_ids)
    expert = type(good)(row=0, prompt_ids=good.prompt_ids, completion_ids=good.completion_ids,
                        sampler_logprobs=[math.nan] * n, advantage=0.0, policy_from=n, sft_weight=1.0)
    before = _mean(group.logprobs([expert])[0])
    stats = group.train_step([expert], n)
    after = _mean(group.logprobs([expert])[0])
    assert stats.policy_tokens == 0 and stats.sft_tokens == n
    assert after > before + 1e-3


def test_the_token_mean_divides_by_the_tokens_the_mask_keeps(learner):
    """A pad-id token inside a completion (a replaced image placeholder) carries no loss and is not counted:
    with advantage +1 on-policy every kept token's surrogate is -1, so the token mean is exactly -1 (dividing
    by all completion tokens would give -(n - 1) / n)."""
    from transformers import AutoProcessor

    from synergy_ray.model.prompting import pad_token_id

    group, prepared = learner
    good, _ = _samples(prepared)
    pad = pad_token_id(AutoProcessor.from_pretrained(prepared.model_path))
    ids = list(good.completion_ids)
    ids[1] = pad
    padded = type(good)(**{**good.__dict__, "completion_ids": ids})
    kept = padded.loss_tokens(pad)
    assert kept == len(ids) - 1
    stats = group.train_step([padded], kept)
    assert stats.policy_tokens == kept
    assert stats.loss == pytest.approx(-1.0, abs=1e-6)


def test_a_hint_of_weight_zero_is_context_only(learner):
    """Rescue hints (adaptive): the given tokens carry no loss and are not in the token mean, so the sampled
    tokens' mean surrogate at advantage +1 on-policy is exactly -1."""
    group, prepared = learner
    good, _ = _samples(prepared)
    hinted = type(good)(**{**good.__dict__, "policy_from": 2, "sft_weight": 0.0, "advantage": 1.0,
                           "sampler_logprobs": [math.nan] * 2 + list(good.sampler_logprobs[2:])})
    kept = hinted.loss_tokens(-1)
    assert kept == len(good.completion_ids) - 2
    stats = group.train_step([hinted], kept)
    assert stats.sft_tokens == 0 and stats.policy_tokens == kept
    assert stats.loss == pytest.approx(-1.0, abs=1e-6)


def _mixed_batch(prepared):
    good, bad = _samples(prepared)
    long_good = type(good)(**{**good.__dict__, "completion_ids": good.completion_ids * 4,
                              "sampler_logprobs": good.sampler_logprobs * 4})
    return [good, long_good, bad]  # three rows: two ranks get 2 and 1 (+ a filler)


def _one_step(smoke_run, samples, *overrides, export_to):
    """Train one step on `samples`, export; returns (stats, exported tensors)."""
    from safetensors.torch import load_file

    group = _group(smoke_run, "learner.lr=1e-3", "rl.kl_coef=0", *overrides, num_cpus=0.25)
    try:
        stats = group.train_step(samples, sum(len(s.completion_ids) for s in samples))
        group.export(str(export_to))
    finally:
        group.kill()
    return stats, load_file(str(export_to / "model.safetensors"))


def test_two_ranks_give_the_one_rank_update_under_zero2_and_zero3(ray_local, smoke_run, tmp_path):
    """Same mini-batch, same seed: 1 rank vs 2 ranks (ZeRO-2, ZeRO-3) end with the same parameters; the
    odd row count makes one rank run a filler, and the gradient norm shows the loss is not rescaled."""
    samples = _mixed_batch(smoke_run[1])
    base_stats, base = _one_step(smoke_run, samples, "learner.micro_batch_size=1", export_to=tmp_path / "one")
    # The last arm plans micro-batches by a token budget: rank 1's long row needs a micro-batch of its own, so
    # rank 0 must run as many (ZeRO-3 collectives) though its two rows would fit in one.
    arms = [(2, ["learner.micro_batch_size=1"]), (3, ["learner.micro_batch_size=1"]),
            (3, ["learner.micro_batch_size=2", "learner.micro_batch_tokens=120"])]
    for stage, micro in arms:
        stats, other = _one_step(smoke_run, samples, "learner.num_workers=2", f"learner.zero_stage={stage}",
                                 *micro, export_to=tmp_path / f"two_z{stage}_{len(micro[-1])}")
        assert other.keys() == base.keys()
        diff = max((other[k].float() - base[k].float()).abs().max().item() for k in base)
        assert diff <= 1e-5, (stage, diff)
        assert stats.policy_tokens == base_stats.policy_tokens
        assert stats.grad_norm == pytest.approx(base_stats.grad_norm, rel=1e-4), stage
        assert stats.loss == pytest.approx(base_stats.loss, rel=1e-5, abs=1e-7), stage


def test_micro_batch_accumulation_equals_one_big_batch(ray_local, smoke_run):
    """Mixed long and short sequences: micro-batches of one give the same update as one batch of all."""
    samples = _mixed_batch(smoke_run[1]) + [_samples(smoke_run[1])[1]]
    tokens = sum(len(s.completion_ids) for s in samples)
    after = {}
    for micro in (4, 1):
        group = _group(smoke_run, "learner.lr=1e-3", f"learner.micro_batch_size={micro}")
        group.train_step(samples, tokens)
        after[micro] = group.logprobs(samples)
        group.kill()
    diff = max(abs(a - b) for x, y in zip(after[4], after[1]) for a, b in zip(x, y) if not math.isnan(a))
    assert diff < 1e-4, diff


def test_gradient_checkpointing_changes_memory_not_the_step(ray_local, smoke_run, tmp_path):
    """Checkpointing on vs off: the same loss, gradient norm and parameters after the step."""
    samples = _mixed_batch(smoke_run[1])
    off_stats, off = _one_step(smoke_run, samples, export_to=tmp_path / "off")
    on_stats, on = _one_step(smoke_run, samples, "learner.gradient_checkpointing=true", export_to=tmp_path / "on")
    assert on_stats.loss == pytest.approx(off_stats.loss, abs=1e-6)
    assert on_stats.grad_norm == pytest.approx(off_stats.grad_norm, rel=1e-5)
    assert max((on[k] - off[k]).abs().max().item() for k in off) <= 1e-5


def test_checkpointing_is_really_on(smoke_run):
    """The knob reaches the model: a decoder layer's forward runs again in backward (recomputation), and
    only when the knob is on."""
    from synergy_ray.model.training import EngineSetup, load_trainable_model

    cfg, prepared = smoke_run
    for enabled, expected in ((True, 2), (False, 1)):
        learner = cfg.learner.model_copy(update={"gradient_checkpointing": enabled})
        model = load_trainable_model(EngineSetup(prepared.model_path, cfg.model, learner))
        calls = []
        model.model.text_model.layers[0].register_forward_pre_hook(lambda *a: calls.append(1))
        model.train()
        model.model.text_model(input_ids=torch.tensor([[1, 2, 3, 4]])).last_hidden_state.sum().backward()
        assert len(calls) == expected, enabled


def test_length_order_and_skipped_prompt_logits_leave_every_logprob_unchanged(ray_local, smoke_run):
    """The learner's log-probs (micro-batches sorted by length, the head run only from the first completion
    position) equal a plain full-logits forward of the same model, row by row, in the caller's order."""
    import datasets
    from transformers import AutoProcessor

    from synergy_ray.model.loading import load_policy
    from synergy_ray.model.prompting import encode_prompt, prompt_text
    from synergy_ray.records import TrainSample

    _, prepared = smoke_run
    processor = AutoProcessor.from_pretrained(prepared.model_path)
    data = datasets.load_from_disk(str(prepared.train_path))
    answer = processor.tokenizer("<think>3+4</think>\\boxed{7}", add_special_tokens=False)["input_ids"]
    samples, inputs = [], []
    for row, repeats in zip(range(4), (3, 1, 4, 2)):  # lengths out of order, prompts of the rows' own lengths
        enc = encode_prompt(processor, prompt_text(processor, data[row]["question"], ""), data[row]["image"])
        prompt = enc.pop("input_ids")[0].tolist()
        enc.pop("attention_mask", None)
        samples.append(TrainSample(row=row, prompt_ids=prompt, completion_ids=answer * repeats,
                                   sampler_logprobs=[-1.0] * len(answer) * repeats))
        inputs.append(enc)
    plans = {}
    for overrides in (["learner.micro_batch_size=2"], ["learner.micro_batch_size=4", "learner.micro_batch_tokens=1"],
                      ["learner.micro_batch_size=2", "learner.sort_by_length=false"]):
        group = _group(smoke_run, *overrides)  # a budget of 1 token: every row is a micro-batch of its own
        try:
            plans[tuple(overrides)] = group.logprobs(samples)
        finally:
            group.kill()
    model = load_policy(prepared.model_path).eval()
    for s, enc, *lps in zip(samples, inputs, *plans.values()):
        for lp in lps:
            ids = torch.tensor([s.prompt_ids + s.completion_ids])
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **enc).logits[0, :-1].float()
            full = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None])[:, 0]
            p = len(s.prompt_ids)
            expected = full[p - 1:p - 1 + len(s.completion_ids)]
            assert len(lp) == len(s.completion_ids)
            assert max(abs(a - b) for a, b in zip(lp, expected.tolist())) < 1e-5, s.row
