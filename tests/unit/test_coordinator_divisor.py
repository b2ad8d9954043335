"""The coordinator's token-mean divisor for each mini-batch counts exactly the completion tokens the learner's
loss mask keeps: pad-id tokens (placeholders the generators replaced, EOS when the tokenizer has no pad) are left
out. The learner side of the same rule is tested in tests/integration/test_learner.py."""

from synergy_ray.config import load_config
from synergy_ray.coordinator import Coordinator
from synergy_ray.records import TrainSample, TrainTotals

PAD = 0


class _Learner:
    def __init__(self):
        self.calls: list[tuple[int, int]] = []  # (sequences, divisor) per optimiser step

    def logprobs(self, samples):  # later mini-batches need the pre-update log-probs
        return [[-1.0] * len(s.completion_ids) for s in samples]

    def train_step(self, samples, total_tokens):
        self.calls.append((len(samples), total_tokens))
        return TrainTotals(loss=-1.0, policy_tokens=float(total_tokens), clipped_sum=1.0, grad_norm=2.0)


def _sample(ids):
    return TrainSample(row=0, prompt_ids=[5, 6], completion_ids=ids, sampler_logprobs=[-1.0] * len(ids))


def test_the_divisor_leaves_out_pad_tokens():
    coordinator = Coordinator.__new__(Coordinator)  # only the mini-batch split and the divisor are exercised
    coordinator.cfg = load_config("configs/smoke_cpu.yaml", ["rl.prompt_batch=2", "rl.mini_batch=1"])
    coordinator.pad_id, coordinator.learner = PAD, _Learner()
    groups = [[_sample([7, PAD, 8, 9]), _sample([7, 8])],  # 4 + 2 tokens, 1 of them pad
              [_sample([PAD, PAD, 3]), _sample([4, PAD])]]  # 3 + 2 tokens, 3 of them pad
    out = coordinator._train_minibatches(groups)
    assert coordinator.learner.calls == [(2, 5), (2, 2)]
    # The step's summary: two updates, per-token means over both mini-batches' 7 policy tokens.
    assert (out.updates, out.loss, out.policy_tokens, out.clip_frac, out.grad_norm) == (2.0, -1.0, 7.0, 2 / 7, 2.0)


def test_rescue_subgroups_join_the_steps_updates_instead_of_adding_one():
    # one update per step (prompt_batch = mini_batch): a rescue subgroup beyond the drawn questions rides along
    coordinator = Coordinator.__new__(Coordinator)
    coordinator.cfg = load_config("configs/smoke_cpu.yaml", ["rl.prompt_batch=2", "rl.mini_batch=2"])
    coordinator.pad_id, coordinator.learner = PAD, _Learner()
    drawn = [[_sample([7, 8])], [_sample([9])]]
    hinted = TrainSample(row=0, prompt_ids=[5, 6], completion_ids=[3, 4, 5], sampler_logprobs=[float("nan")] * 2
                         + [-1.0], policy_from=2, sft_weight=0.0)  # a two-token hint, context only
    out = coordinator._train_minibatches(drawn + [[hinted]])
    assert coordinator.learner.calls == [(3, 2 + 1 + 1)] and out.updates == 1.0  # the hint is not in the divisor
    # two updates per step: three groups go 2 + 1, never three updates
    coordinator.cfg = load_config("configs/smoke_cpu.yaml", ["rl.prompt_batch=2", "rl.mini_batch=1"])
    coordinator.learner = _Learner()
    coordinator._train_minibatches(drawn + [[hinted]])
    assert [n for n, _ in coordinator.learner.calls] == [2, 1]
