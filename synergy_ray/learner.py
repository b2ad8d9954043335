"""The learner role: policy (+ frozen reference) under DeepSpeed, GRPO/SFT losses from `core`, weight export.

A learner group is N `LearnerWorker` actors forming one torch.distributed group (gloo on CPU, nccl on GPU);
DeepSpeed ZeRO (stage from the config) shards across them. The coordinator gives each worker its share of a
mini-batch and calls `train_step` on all of them; one optimiser step per mini-batch.

The learner re-derives each sample's vision inputs from the saved data set with the same processor and chat
template the generators used, and checks that the prompt token ids agree (a mismatch is an error, not a
silent misalignment). Image placeholder tokens the model happened to generate arrive replaced by the pad
token (the generator does it) and are masked out of every loss.

Left out: sequence packing, logits chunking for very long sequences, and LoRA under ZeRO-3.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from synergy_ray.records import TrainSample


@dataclass(frozen=True)
class LearnerSpec:
    model_path: str
    data_path: str
    prompt_suffix: str
    dtype: str = "float32"
    trust_remote_code: bool = False
    freeze_vision: bool = True
    lora: dict | None = None
    lr: float = 1e-6
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    zero_stage: int = 2
    micro_batch_size: int = 8
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    clip_low: float = 0.2
    clip_high: float = 0.2
    aggregation: str = "token_mean"
    tis_cap: float | None = None
    seed: int = 0


class LearnerWorker:
    """One rank of the learner group (wrapped with `ray.remote` by `LearnerGroup`)."""

    def __init__(self, spec: LearnerSpec, rank: int, world_size: int, master_addr: str, master_port: int):
        import datasets
        import deepspeed
        from transformers import AutoProcessor

        from synergy_ray.model.loading import apply_lora, freeze_vision, load_policy, trainable_parameters
        from synergy_ray.model.prompting import pad_token_id

        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(rank),
                          WORLD_SIZE=str(world_size), LOCAL_RANK="0")
        self.spec, self.rank = spec, rank
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
        torch.manual_seed(spec.seed)
        self.processor = AutoProcessor.from_pretrained(spec.model_path, trust_remote_code=spec.trust_remote_code)
        model = load_policy(spec.model_path, spec.dtype, spec.trust_remote_code)
        if spec.freeze_vision:
            freeze_vision(model)
        if spec.lora:
            model = apply_lora(model, **spec.lora)
        self.reference = None
        if spec.kl_coef > 0:
            self.reference = load_policy(spec.model_path, spec.dtype, spec.trust_remote_code).eval()
            self.reference.requires_grad_(False)
        optimizer = torch.optim.AdamW(trainable_parameters(model), lr=spec.lr, betas=spec.betas,
                                      weight_decay=spec.weight_decay)
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=self._ds_config(world_size))
        self.device = self.engine.device
        self.data = datasets.load_from_disk(spec.data_path)
        self.pad_id = pad_token_id(self.processor)
        self._vision_cache: dict[int, dict[str, torch.Tensor]] = {}
        self.trainable_names = [n for n, p in self.engine.module.named_parameters() if p.requires_grad]

    def _ds_config(self, world_size: int) -> dict:
        s = self.spec
        return {
            "train_micro_batch_size_per_gpu": s.micro_batch_size,
            "gradient_accumulation_steps": 1,  # accumulation over micro-batches is ours (variable sizes)
            "train_batch_size": s.micro_batch_size * world_size,
            "gradient_clipping": s.grad_clip,
            "zero_optimization": {"stage": s.zero_stage},
            "bf16": {"enabled": s.dtype == "bfloat16"},
            "steps_per_print": 10**9,
            "zero_allow_untested_optimizer": True,
        }

    # ------------------------------------------------------------ inputs

    def _vision(self, row: int, prompt_ids: list[int]) -> dict[str, torch.Tensor]:
        """Vision tensors for a data-set row, built by the shared prompt path and checked against the ids."""
        if row not in self._vision_cache:
            from synergy_ray.model.prompting import encode_prompt, prompt_text

            item = self.data[row]
            enc = encode_prompt(self.processor, prompt_text(self.processor, item["question"], self.spec.prompt_suffix),
                                item["image"])
            ids = enc.pop("input_ids")[0].tolist()
            enc.pop("attention_mask", None)
            self._vision_cache[row] = (ids, enc)
        ids, enc = self._vision_cache[row]
        if ids != prompt_ids[:len(ids)]:
            raise ValueError(f"row {row}: the learner's prompt tokens differ from the generator's")
        return enc

    def _batch(self, samples: list[TrainSample]) -> dict[str, torch.Tensor]:
        width = max(s.num_tokens for s in samples)
        n = len(samples)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((n, width), dtype=torch.long)
        completion = torch.zeros((n, width), dtype=torch.bool)  # positions holding completion tokens
        vision = []
        for i, s in enumerate(samples):
            seq = s.prompt_ids + s.completion_ids
            ids[i, :len(seq)] = torch.tensor(seq)
            attn[i, :len(seq)] = 1
            completion[i, len(s.prompt_ids):len(seq)] = True
            vision.append(self._vision(s.row, s.prompt_ids))
        # Generators replaced generated image placeholders by the pad token; those positions learn nothing.
        batch = {"input_ids": ids, "attention_mask": attn, "completion": completion & (ids != self.pad_id)}
        for key in vision[0]:
            batch[key] = torch.cat([v[key] for v in vision], dim=0)
        return {k: v.to(self.device) for k, v in batch.items()}

    def _token_logprobs(self, model, batch) -> torch.Tensor:
        """[B, T-1] log-probs of each next token (position t scores token t + 1)."""
        from synergy_ray.core.logprobs import gather_token_logprobs, shift_for_next_token

        inputs = {k: v for k, v in batch.items() if k != "completion"}
        logits = model(**inputs).logits
        logits, targets, _ = shift_for_next_token(logits, batch["input_ids"])
        return gather_token_logprobs(logits, targets)

    @staticmethod
    def _per_token(samples: list[TrainSample], values_of, width: int, completion_mask: torch.Tensor) -> torch.Tensor:
        """Place per-completion-token values on the shifted [B, T-1] grid (the completion starts at P-1)."""
        out = torch.zeros((len(samples), width - 1), dtype=torch.float32)
        for i, s in enumerate(samples):
            vals = values_of(s)
            p = len(s.prompt_ids)
            out[i, p - 1:p - 1 + len(vals)] = torch.tensor(vals, dtype=torch.float32)
        return out.to(completion_mask.device)

    # ------------------------------------------------------------ public API

    @torch.no_grad()
    def logprobs(self, samples: list[TrainSample]) -> list[list[float]]:
        """The policy's log-probs of each sample's completion tokens (NaN at masked placeholder tokens)."""
        out = []
        for chunk in _chunks(samples, self.spec.micro_batch_size):
            batch = self._batch(chunk)
            lp = self._token_logprobs(self.engine.module, batch)
            mask = batch["completion"][:, 1:]
            for i, s in enumerate(chunk):
                p, n = len(s.prompt_ids), len(s.completion_ids)
                row = torch.where(mask[i, p - 1:p - 1 + n], lp[i, p - 1:p - 1 + n], torch.nan)
                out.append(row.tolist())
        return out

    def train_step(self, samples: list[TrainSample], total_tokens: int, total_sequences: int) -> dict[str, float]:
        """One optimiser step on this rank's share of a mini-batch.

        `total_tokens` / `total_sequences` count the whole mini-batch over all ranks, so each micro-batch's loss
        is scaled to its share and the summed gradient equals the gradient of the mini-batch loss.
        """
        self.engine.train()
        stats: dict[str, float] = {}
        chunks = list(_chunks(samples, self.spec.micro_batch_size)) or [[]]
        for k, chunk in enumerate(chunks):
            self.engine.set_gradient_accumulation_boundary(k == len(chunks) - 1)
            loss, parts = self._loss(chunk, total_tokens, total_sequences)
            self.engine.backward(loss)
            for key, v in parts.items():
                stats[key] = stats.get(key, 0.0) + v
        self.engine.step()
        return stats

    def _loss(self, samples: list[TrainSample], total_tokens: int, total_sequences: int):
        """GRPO (clipped surrogate + KL to the reference) on sampled tokens, weighted NLL on given tokens.

        All formulas come from `core`; this only lays the per-sample values onto the token grid.
        """
        from synergy_ray.core.objective import grpo_sft_loss

        s = self.spec
        batch = self._batch(samples)
        width = batch["input_ids"].shape[1]
        logp = self._token_logprobs(self.engine, batch)
        completion = batch["completion"][:, 1:].float()
        grid = lambda values_of: self._per_token(samples, values_of, width, completion)  # noqa: E731
        position = grid(lambda x: [float(i) for i in range(len(x.completion_ids))])
        policy_from = grid(lambda x: [float(x.policy_from)] * len(x.completion_ids))
        policy_mask = completion * (position >= policy_from).float()
        sft_mask = completion * (position < policy_from).float()
        # Single-update steps are on-policy: old = current (detached), ratio 1, the clip never binds.
        old = grid(lambda x: x.old_logprobs or [math.nan] * len(x.completion_ids))
        old = torch.where(torch.isnan(old), logp.detach(), old)
        sampler = grid(lambda x: x.sampler_logprobs) if s.tis_cap is not None else None
        adv = torch.tensor([x.advantage for x in samples], dtype=torch.float32, device=logp.device)
        ref = None
        if self.reference is not None:
            with torch.no_grad():
                ref = self._token_logprobs(self.reference, batch)
        sft_weight = grid(lambda x: [x.sft_weight] * len(x.completion_ids))
        loss, parts = grpo_sft_loss(
            logp, old, ref, adv, policy_mask, sft_mask, sft_weight, clip_low=s.clip_low, clip_high=s.clip_high,
            kl_coef=s.kl_coef, kl_estimator=s.kl_estimator, aggregation=s.aggregation, total_tokens=total_tokens,
            total_sequences=total_sequences, sampler_logprobs=sampler, tis_cap=s.tis_cap)
        return loss, parts

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The weights that training changes, under the checkpoint's own (HF) names, as CPU tensors.

        With LoRA the adapted projections are sent merged (W + scale * B @ A), under the base model's names.
        """
        import deepspeed

        model = self.engine.module
        params = [p for _, p in model.named_parameters()] if self.spec.zero_stage == 3 else []
        with deepspeed.zero.GatheredParameters(params, enabled=bool(params)):
            if self.spec.lora:
                return _merged_lora_state(model)
            return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}

    def save(self, path: str, client_state: dict | None = None) -> None:
        self.engine.save_checkpoint(path, tag="learner", client_state=client_state or {})

    def load(self, path: str) -> dict:
        _, state = self.engine.load_checkpoint(path, tag="learner")
        return state or {}

    def export_hf(self, path: str, processor_too: bool = True) -> None:
        import deepspeed

        model = self.engine.module
        params = list(model.parameters()) if self.spec.zero_stage == 3 else []
        with deepspeed.zero.GatheredParameters(params, enabled=bool(params)):
            if self.rank == 0:
                out = model.merge_and_unload() if self.spec.lora else model
                out.save_pretrained(path)
                if processor_too:
                    self.processor.save_pretrained(path)

    def ready(self) -> bool:
        return True

    def peak_rss(self) -> dict[str, float]:
        """Peak memory (MiB) of this rank's process (see synergy_ray.profiling)."""
        from synergy_ray.profiling import peak_rss_mib

        return peak_rss_mib()


def _merged_lora_state(model) -> dict[str, torch.Tensor]:
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and hasattr(module, "get_delta_weight"):
            for adapter in module.lora_A:
                weight = module.base_layer.weight.detach() + module.get_delta_weight(adapter).detach()
                base = name.replace("base_model.model.", "", 1)
                out[f"{base}.weight"] = weight.to("cpu", copy=True)
    return out


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LearnerGroup:
    """N learner actors as one data-parallel group; the coordinator talks to this handle, not to ranks."""

    def __init__(self, spec: LearnerSpec, num_workers: int = 1, num_cpus: float = 1, num_gpus: float = 0,
                 placement: list[dict] | None = None, master_addr: str | None = None):
        """`placement`: per-rank actor options (resources and placement-group bundle) from the run's plan;
        `master_addr`: the node rank 0 is placed on, when the plan knows it."""
        import ray

        actor = ray.remote(LearnerWorker)
        options = placement or [{"num_cpus": num_cpus, "num_gpus": num_gpus}] * num_workers
        addr = "127.0.0.1" if num_workers == 1 else master_addr or ray.util.get_node_ip_address()
        port = _free_port()
        self.workers = [actor.options(**options[r]).remote(spec, r, num_workers, addr, port)
                        for r in range(num_workers)]
        ray.get([w.ready.remote() for w in self.workers])

    def shard(self, samples: list) -> list[list]:
        return [samples[r::len(self.workers)] for r in range(len(self.workers))]

    def logprob_refs(self, samples: list[TrainSample]) -> list[Any]:
        return [w.logprobs.remote(part) for w, part in zip(self.workers, self.shard(samples))]
