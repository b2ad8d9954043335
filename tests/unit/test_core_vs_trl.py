"""The learner's production objective (`core.objective.grpo_sft_loss`, as `Learner._loss` calls it) against TRL
1.16's own code on identical inputs.

We run TRL's real `GRPOTrainer._compute_loss` (trl/trainer/grpo_trainer.py) as an unbound function with a stand-in
`self` that carries only the attributes it reads, and its real `_get_per_token_logps_and_entropies` on a tiny
model patched with TRL's `add_fused_lm_head` (so TRL also computes the log-probs its own way). Settings:
importance_sampling_level="token", beta > 0 (TRL's KL is k3), epsilon_low=0.2, epsilon_high=0.28 (clip-higher),
one process, gradient accumulation 1, steps_per_generation 1, delta=None, no entropy mask/bonus, no off-policy mask.
loss_type "dapo" and "bnpo" = our token_mean; "grpo" = our seq_mean. The TIS case uses TRL's vLLM correction
(use_vllm=True, vllm_importance_sampling_correction=True) with the ratio its "token_truncate" mode builds.
Our side is one shard holding the whole batch (total_tokens / total_sequences are the batch's own), every
completion token a policy token and none given (no SFT), so the objective reduces to TRL's.
"""

import contextlib
import sys
import types
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from synergy_ray.core.logprobs import gather_token_logprobs, shift_for_next_token
from synergy_ray.core.objective import grpo_sft_loss

# Importing trl.trainer.grpo_trainer pulls in vLLM and Ray when present (~10 s, and both would then live in this
# process). Hiding them while importing keeps it at a few seconds; the loss code does not depend on them.
_hidden = [name for name in ("vllm", "ray", "deepspeed") if name not in sys.modules]
sys.modules.update({name: None for name in _hidden})
try:
    pytest.importorskip("trl")
    from trl.trainer.grpo_trainer import GRPOTrainer
    from trl.trainer.utils import add_fused_lm_head
finally:
    for name in _hidden:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]

VOCAB, HIDDEN, BATCH, PROMPT_LEN, COMPLETION_LEN = 13, 8, 4, 3, 6
CLIP_LOW, CLIP_HIGH, BETA, TIS_CAP = 0.2, 0.28, 0.04, 2.0


class TinyLM(nn.Module):
    """Embedding -> tanh -> LM head: just the surface `add_fused_lm_head` needs."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(get_text_config=lambda: SimpleNamespace(model_type="tiny"))
        self.base_model = _Backbone()
        self.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids, attention_mask=None, **_):
        return SimpleNamespace(logits=self.lm_head(self.base_model(input_ids).last_hidden_state))


class _Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)

    def forward(self, input_ids, attention_mask=None, **_):
        return SimpleNamespace(last_hidden_state=torch.tanh(self.embed(input_ids)))


def _make_inputs(model):
    g = torch.Generator().manual_seed(0)
    prompt_ids = torch.randint(0, VOCAB, (BATCH, PROMPT_LEN), generator=g)
    completion_ids = torch.randint(0, VOCAB, (BATCH, COMPLETION_LEN), generator=g)
    completion_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4, [1] * 5 + [0]])
    with torch.no_grad():
        logp = _our_logprobs(model, prompt_ids, completion_ids)
    noise = lambda scale: scale * torch.randn(BATCH, COMPLETION_LEN, generator=g)  # noqa: E731
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones(BATCH, PROMPT_LEN, dtype=torch.long),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.tensor([1.2, -0.7, 0.4, -1.5]),
        "old_per_token_logps": logp + noise(0.5),  # ratios on both sides of [0.8, 1.28]
        "ref_per_token_logps": logp + noise(0.5),
        "sampling_per_token_logps": logp + noise(0.8),  # used only by the TIS case
        "num_items_in_batch": completion_mask.sum(),
    }


def _our_logprobs(model, prompt_ids, completion_ids):
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    logits, targets, _ = shift_for_next_token(model(input_ids).logits, input_ids)
    return gather_token_logprobs(logits[:, PROMPT_LEN - 1:], targets[:, PROMPT_LEN - 1:])


def _trl_loss(model, inputs, loss_type, tis):
    accelerator = SimpleNamespace(
        autocast=contextlib.nullcontext, gather=lambda x: x, reduce=lambda x, reduction: x,
        num_processes=1, is_main_process=True,
    )
    trainer = SimpleNamespace(
        model=model, accelerator=accelerator, loss_type=loss_type, beta=BETA,
        epsilon_low=CLIP_LOW, epsilon_high=CLIP_HIGH, importance_sampling_level="token",
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, aux_loss_enabled=False,
        _entropy_bonus_enabled=False, use_vllm=tis, vllm_importance_sampling_correction=tis,
        current_gradient_accumulation_steps=1, max_completion_length=COMPLETION_LEN,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
    )
    trainer._get_per_token_logps_and_entropies = types.MethodType(
        GRPOTrainer._get_per_token_logps_and_entropies, trainer
    )
    if tis:  # built as in GRPOTrainer._generate_and_score_completions, vllm_importance_sampling_mode="token_truncate"
        diff = (inputs["old_per_token_logps"] - inputs["sampling_per_token_logps"]) * inputs["completion_mask"]
        inputs = {**inputs, "importance_sampling_ratio": torch.clamp(torch.exp(diff), max=TIS_CAP)}
    return GRPOTrainer._compute_loss(trainer, model, inputs), trainer._metrics["train"]


def _our_loss(model, inputs, aggregation, tis):
    logp = _our_logprobs(model, inputs["prompt_ids"], inputs["completion_ids"])
    mask = inputs["completion_mask"].float()
    return grpo_sft_loss(
        logp, inputs["old_per_token_logps"], inputs["ref_per_token_logps"], inputs["advantages"], mask,
        torch.zeros_like(mask), torch.zeros_like(mask), clip_low=CLIP_LOW, clip_high=CLIP_HIGH, kl_coef=BETA,
        kl_estimator="k3", aggregation=aggregation, total_tokens=int(mask.sum()), total_sequences=BATCH,
        sampler_logprobs=inputs["sampling_per_token_logps"] if tis else None, tis_cap=TIS_CAP if tis else None,
    )


def _loss_and_grads(model, compute):
    model.zero_grad()
    loss, extra = compute()
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()], extra


@pytest.mark.parametrize(
    "loss_type, aggregation, tis",
    [("dapo", "token_mean", False), ("bnpo", "token_mean", False), ("grpo", "seq_mean", False),
     ("dapo", "token_mean", True), ("grpo", "seq_mean", True)],
)
def test_loss_and_gradients_match_trl(loss_type, aggregation, tis):
    torch.manual_seed(0)
    model = TinyLM()
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))  # as GRPOTrainer.__init__ does
    inputs = _make_inputs(model)

    trl_loss, trl_grads, metrics = _loss_and_grads(model, lambda: _trl_loss(model, inputs, loss_type, tis))
    our_loss, our_grads, stats = _loss_and_grads(model, lambda: _our_loss(model, inputs, aggregation, tis))

    assert our_loss == pytest.approx(trl_loss, abs=1e-6)
    for ours, theirs in zip(our_grads, trl_grads):
        assert torch.allclose(ours, theirs, atol=1e-6)
    # the objective reports clipped tokens as one sum over both sides; TRL reports each side's share of tokens
    trl_low, trl_high = metrics["clip_ratio/low_mean"][0], metrics["clip_ratio/high_mean"][0]
    assert stats["policy_tokens"] == int(inputs["completion_mask"].sum()) and stats["sft_tokens"] == 0
    assert stats["clipped_sum"] / stats["policy_tokens"] == pytest.approx(trl_low + trl_high, abs=1e-6)
    assert 0 < trl_low and 0 < trl_high  # both clip sides are exercised


def test_token_mean_and_seq_mean_really_differ_here():
    torch.manual_seed(0)
    model = TinyLM()
    inputs = _make_inputs(model)
    token, _ = _our_loss(model, inputs, "token_mean", tis=False)
    seq, _ = _our_loss(model, inputs, "seq_mean", tis=False)
    assert abs(token.item() - seq.item()) > 1e-3  # so the TRL comparison can tell the two apart
