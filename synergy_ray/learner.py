"""The learner role: policy (+ frozen reference) under DeepSpeed, GRPO/SFT losses from `core`, weight export.

A learner group is N `LearnerWorker` actors forming one torch.distributed group (gloo on CPU, nccl on GPU);
DeepSpeed ZeRO (stage from the config) shards across them. The coordinator gives each worker its share of a
mini-batch and calls `train_step` on all of them; one optimiser step per mini-batch.

The learner re-derives each sample's vision inputs from the saved data set with the same processor and chat
template the generators used, and checks that the prompt token ids agree (a mismatch is an error, not a
silent misalignment). Image placeholder tokens the model happened to generate arrive replaced by the pad
token (the generator does it) and are masked out of every loss.

Every method that touches parameters is a collective under ZeRO-3 (layers are all-gathered in forward,
backward, export and the weight sync), so `LearnerGroup` calls it on every rank and uses rank 0's answer; a
mini-batch is dealt so that every rank runs the same number of micro-batches (`core.sharding`). Weights for
the generators leave rank 0 bucket by bucket (`core.buckets`) as Ray objects handed straight to the generator
actors (or, to generators on rank 0's node, as a shared-memory file their engines read): the coordinator
passes references and never holds a tensor. Rank 0 prepares bucket i+1 while the engines load bucket i.

DeepSpeed averages gradients over the data-parallel ranks; the loss is scaled by the world size so the step
equals the one-rank step on the whole mini-batch (a test checks it).

Micro-batches take a rank's share shortest first, cut where the padding is least, within
`learner.micro_batch_size` rows and `learner.micro_batch_tokens` padded tokens (`core.microbatch`; every rank
runs as many), and the model's head runs only from the first completion position on (`logits_to_keep`).

Left out: sequence packing (padding-free attention), LoRA under ZeRO-3, and vLLM's NCCL/IPC weight-transfer
backends (the weights travel through Ray's object store, on GPU as on CPU).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import torch

from synergy_ray.config import SynergyConfig
from synergy_ray.core.buckets import plan_buckets
from synergy_ray.core.logprobs import gather_token_logprobs, shift_for_next_token
from synergy_ray.core.microbatch import plan_ranks
from synergy_ray.core.objective import grpo_sft_loss
from synergy_ray.core.sharding import FILLER, deal
from synergy_ray.member_calls import answers
from synergy_ray.model.loading import DTYPES, accepts_logits_to_keep, load_policy
from synergy_ray.model.prompting import encode_prompt, pad_token_id, prompt_text
from synergy_ray.model.training import EngineSetup, base_name, build_engine, export_hf, gathered, lora_modules, merged_weight, set_lr, skip_shm_comm_build, warmup_lr
from synergy_ray.processes.profiling import mark_rss, peak_rss_mib
from synergy_ray.records import TrainSample, TrainTotals


class LearnerWorker:
    """One rank of the learner group (wrapped with `ray.remote` by `LearnerGroup`).

    Built in two calls: the actor starts (cheap), then `setup` on every rank joins the process group at the
    address rank 0 chose on its own node (`rendezvous`) and builds the DeepSpeed engine.
    """

    def __init__(self, cfg: SynergyConfig, model_path: str, data_path: str, rank: int, world_size: int):
        self.cfg, self.model_path, self.data_path = cfg, model_path, data_path
        self.rank, self.world_size = rank, world_size
        self.updates = 0  # optimiser steps taken (the warm-up schedule's clock; saved in checkpoints)

    def rendezvous(self) -> tuple[str, int]:
        """An address and a free port on this actor's node, for the group's process-group rendezvous."""
        import ray

        return ray.util.get_node_ip_address(), _free_port()

    def setup(self, master_addr: str, master_port: int) -> bool:
        import datasets
        import deepspeed
        from transformers import AutoProcessor

        c = self.cfg
        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(self.rank),
                          WORLD_SIZE=str(self.world_size), LOCAL_RANK="0")
        skip_shm_comm_build()
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo",
                                   auto_mpi_discovery=False)
        self.setup_ = EngineSetup(self.model_path, c.model, c.learner, seed=c.run.seed)
        self.processor = AutoProcessor.from_pretrained(self.model_path, trust_remote_code=c.model.trust_remote_code)
        self.engine = build_engine(self.setup_, self.world_size)
        self.reference = None
        if c.rl.kl_coef > 0:
            # A frozen copy outside DeepSpeed, replicated on every rank (a ZeRO-3 partitioned reference is a
            # further memory saving left out here).
            self.reference = load_policy(self.model_path, c.model.dtype, c.model.trust_remote_code).eval()
            self.reference.requires_grad_(False).to(self.engine.device)
        self.device = self.engine.device
        self.data = datasets.load_from_disk(self.data_path)
        self.pad_id = pad_token_id(self.processor)
        self._vision_cache: dict[int, tuple[list[int], dict[str, torch.Tensor]]] = {}
        self._keeps_logits = accepts_logits_to_keep(self.engine.module)
        self._sync_items = self._weights_to_sync()
        sizes = [(name, math.prod(shape) * DTYPES[c.model.dtype].itemsize) for name, shape in self._sync_items]
        self.buckets = plan_buckets(sizes, int(c.learner.sync_bucket_mib * 2**20))
        return True

    # ------------------------------------------------------------ inputs

    def _vision(self, row: int, prompt_ids: list[int]) -> dict[str, torch.Tensor]:
        """Vision tensors for a data-set row, built by the shared prompt path and checked against the ids."""
        if row not in self._vision_cache:
            item = self.data[row]
            text = prompt_text(self.processor, item["question"], self.cfg.data.prompt_suffix)
            enc = encode_prompt(self.processor, text, item["image"])
            ids = enc.pop("input_ids")[0].tolist()
            enc.pop("attention_mask", None)
            self._vision_cache[row] = (ids, enc)
        ids, enc = self._vision_cache[row]
        if ids != prompt_ids[:len(ids)]:
            raise ValueError(f"row {row}: the learner's prompt tokens differ from the generator's")
        return enc

    def _batch(self, samples: list[TrainSample], fillers: int = 0) -> dict[str, torch.Tensor]:
        """Padded tensors for `samples`; the last `fillers` rows are fillers (`core.sharding`): no loss."""
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
            if i < n - fillers:
                completion[i, len(s.prompt_ids):len(seq)] = True
            vision.append(self._vision(s.row, s.prompt_ids))
        # Generators replaced generated image placeholders by the pad token; those positions learn nothing.
        batch = {"input_ids": ids, "attention_mask": attn, "completion": completion & (ids != self.pad_id)}
        for key in vision[0]:
            batch[key] = torch.cat([v[key] for v in vision], dim=0)
        return {k: v.to(self.device) for k, v in batch.items()}

    def _token_logprobs(self, model, batch, start: int = 0) -> torch.Tensor:
        """[B, T-1] log-probs of each next token (position t scores token t + 1), in float32.

        Positions before `start` hold no completion token of any row, so the model's head skips them
        (`logits_to_keep`): with a prompt of image tokens and a vocabulary of ~150k, the prompt's logits would
        be most of the step's largest tensor. They are 0 on the grid and every mask leaves them out."""

        inputs = {k: v for k, v in batch.items() if k != "completion"}
        width = batch["input_ids"].shape[1]
        if self._keeps_logits:
            inputs["logits_to_keep"] = width - start
        logits = model(**inputs).logits[:, -(width - start):]
        logits, targets, _ = shift_for_next_token(logits, batch["input_ids"][:, start:])
        return torch.nn.functional.pad(gather_token_logprobs(logits, targets), (start, 0))

    @staticmethod
    def _per_token(samples: list[TrainSample], values_of, width: int, completion_mask: torch.Tensor) -> torch.Tensor:
        """Place per-completion-token values on the shifted [B, T-1] grid (the completion starts at P-1)."""
        out = torch.zeros((len(samples), width - 1), dtype=torch.float32)
        for i, s in enumerate(samples):
            vals = values_of(s)
            p = len(s.prompt_ids)
            out[i, p - 1:p - 1 + len(vals)] = torch.tensor(vals, dtype=torch.float32)
        return out.to(completion_mask.device)

    @staticmethod
    def _micro_batches(samples: list[TrainSample], fillers: int, sizes: list[int]):
        """(chunk, fillers in it) pairs: consecutive chunks of `sizes` rows (the group's plan,
        `core.microbatch`); fillers are the part's tail."""
        real = len(samples) - fillers
        start = 0
        for n in sizes:
            chunk = samples[start:start + n]
            yield chunk, len(chunk) - max(0, min(len(chunk), real - start))
            start += n

    @staticmethod
    def _start(chunk: list[TrainSample]) -> int:
        """The first grid position that scores a completion token in `chunk` (prompt length - 1)."""
        return min(len(s.prompt_ids) for s in chunk) - 1

    # ------------------------------------------------------------ public API (every rank, same call)

    @torch.no_grad()
    def logprobs(self, samples: list[TrainSample], fillers: int, sizes: list[int]) -> list[list[float]]:
        """The policy's log-probs of each real sample's completion tokens (NaN at masked placeholder tokens)."""
        self.engine.eval()
        out = []
        for chunk, fill in self._micro_batches(samples, fillers, sizes):
            batch = self._batch(chunk, fill)
            lp = self._token_logprobs(self.engine, batch, self._start(chunk))
            mask = batch["completion"][:, 1:]
            for i, s in enumerate(chunk[:len(chunk) - fill]):
                p, n = len(s.prompt_ids), len(s.completion_ids)
                row = torch.where(mask[i, p - 1:p - 1 + n], lp[i, p - 1:p - 1 + n], torch.nan)
                out.append(row.tolist())
        return out

    def train_step(self, samples: list[TrainSample], total_tokens: int, total_sequences: int,
                   fillers: int, sizes: list[int]) -> TrainTotals:
        """One optimiser step on this rank's share of a mini-batch.

        `total_tokens` / `total_sequences` count the whole mini-batch over all ranks, so each micro-batch's loss
        is scaled to its share and the summed gradient equals the gradient of the mini-batch loss.
        """

        wall, cpu = time.perf_counter(), time.process_time()
        self.engine.train()
        set_lr(self.engine, warmup_lr(self.cfg.learner.lr, self.updates, self.cfg.learner.warmup_steps))
        stats = TrainTotals()
        chunks = list(self._micro_batches(samples, fillers, sizes))
        for k, (chunk, fill) in enumerate(chunks):
            self.engine.set_gradient_accumulation_boundary(k == len(chunks) - 1)
            loss, parts = self._loss(chunk, fill, total_tokens, total_sequences)
            # DeepSpeed averages gradients over the ranks; our loss is already a share of the global mean.
            self.engine.backward(loss * self.world_size)
            stats += TrainTotals(**parts)
        self.engine.step()
        self.updates += 1
        norm = self.engine.get_global_grad_norm()  # before clipping; the same on every rank
        if self.rank == 0:  # the group sums stats over ranks: report these once
            stats.grad_norm = 0.0 if norm is None else float(norm)
            stats.worker_s, stats.worker_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        return stats

    def _loss(self, samples: list[TrainSample], fillers: int, total_tokens: int, total_sequences: int):
        """GRPO (clipped surrogate + KL to the reference) on sampled tokens, weighted NLL on given tokens.

        All formulas come from `core`; this only lays the per-sample values onto the token grid.
        """

        r = self.cfg.rl
        batch = self._batch(samples, fillers)
        width = batch["input_ids"].shape[1]
        start = self._start(samples)
        logp = self._token_logprobs(self.engine, batch, start)
        completion = batch["completion"][:, 1:].float()
        grid = lambda values_of: self._per_token(samples, values_of, width, completion)  # noqa: E731
        position = grid(lambda x: [float(i) for i in range(len(x.completion_ids))])
        policy_from = grid(lambda x: [float(x.policy_from)] * len(x.completion_ids))
        policy_mask = completion * (position >= policy_from).float()
        given = grid(lambda x: [float(x.sft_weight > 0)] * len(x.completion_ids))  # weight 0: context only
        sft_mask = completion * (position < policy_from).float() * given
        # Single-update steps are on-policy: old = current (detached), ratio 1, the clip never binds.
        old = grid(lambda x: x.old_logprobs or [math.nan] * len(x.completion_ids))
        old = torch.where(torch.isnan(old), logp.detach(), old)
        sampler = grid(lambda x: x.sampler_logprobs) if r.tis_cap is not None else None
        adv = torch.tensor([x.advantage for x in samples], dtype=torch.float32, device=logp.device)
        ref = None
        if self.reference is not None:
            with torch.no_grad():
                ref = self._token_logprobs(self.reference, batch, start)
        sft_weight = grid(lambda x: [x.sft_weight] * len(x.completion_ids))
        return grpo_sft_loss(
            logp, old, ref, adv, policy_mask, sft_mask, sft_weight, clip_low=r.clip_low, clip_high=r.clip_high,
            kl_coef=r.kl_coef, kl_estimator=r.kl_estimator, aggregation=r.aggregation, total_tokens=total_tokens,
            total_sequences=total_sequences, sampler_logprobs=sampler, tis_cap=r.tis_cap)

    # ------------------------------------------------------------ weights out (every rank, same call)

    def _weights_to_sync(self) -> list[tuple[str, tuple[int, ...]]]:
        """(HF name, shape) of each tensor a sync sends, in model order: the trainable parameters, or with
        LoRA each adapted projection's merged weight under the base model's name."""

        model = self.engine.module
        if self.cfg.model.lora:
            return [(f"{base_name(n)}.weight", tuple(m.base_layer.weight.shape)) for n, m in lora_modules(model)]
        return [(n, tuple(getattr(p, "ds_shape", p.shape))) for n, p in model.named_parameters() if p.requires_grad]

    def weight_bucket(self, index: int, as_file: bool, as_tensors: bool) -> tuple[Any, Any]:
        """Bucket `index` of the sync plan, from rank 0; the other ranks only join the ZeRO-3 gather and
        return (None, None). Two results (the group calls this with num_returns=2):
        - `as_file`: the bucket written to this node's shared memory (`weight_sync.send_weights`), as the
          small dict naming the file, for generators on this node (their engines read the file directly);
        - `as_tensors`: the tensors themselves, for generators on other nodes (Ray moves them).
        """
        from synergy_ray.weight_files import send_weights

        names = set(self.buckets[index])
        model = self.engine.module
        if self.cfg.model.lora:  # ZeRO <= 2 (config rule): every rank holds the full weights
            tensors = {f"{base_name(n)}.weight": merged_weight(m) for n, m in lora_modules(model)
                       if f"{base_name(n)}.weight" in names} if self.rank == 0 else None
        else:
            params = [(n, p) for n, p in model.named_parameters() if n in names]
            with gathered([p for _, p in params], self.cfg.learner.zero_stage):
                if self.rank == 0 and as_file and not as_tensors:  # written from the gathered values, no copy
                    return send_weights({n: p.detach() for n, p in params}), None
                tensors = {n: p.detach().to("cpu", copy=True) for n, p in params} if self.rank == 0 else None
        if tensors is None:
            return None, None
        return (send_weights(tensors) if as_file else None), (tensors if as_tensors else None)

    def release_bucket(self, update_info: dict | None) -> None:
        from synergy_ray.weight_files import release_update

        if update_info:
            release_update(update_info)

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def num_buckets(self) -> int:
        return len(self.buckets)

    def sync_bytes(self) -> int:
        return sum(math.prod(shape) for _, shape in self._sync_items) * DTYPES[self.cfg.model.dtype].itemsize

    def save(self, path: str) -> None:
        self.engine.save_checkpoint(path, tag="learner", client_state={"updates": self.updates})

    def load(self, path: str) -> None:
        _, state = self.engine.load_checkpoint(path, tag="learner")
        self.updates = int((state or {}).get("updates", 0))

    def export_hf(self, path: str, processor_too: bool = True) -> None:
        export_hf(self.engine, self.processor if processor_too else None, path, self.rank, self.setup_)

    def peak_rss(self) -> dict[str, float]:
        """Peak memory (MiB) of this rank's process (see synergy_ray.processes.profiling)."""

        return peak_rss_mib()

    def mark_rss(self) -> float:
        """Current MiB of this process tree; its peak restarts from here (see synergy_ray.processes.profiling)."""

        return mark_rss()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class LearnerGroup:
    """N learner actors as one data-parallel group; the coordinator talks to this handle, not to ranks.

    Every call goes to every rank (ZeRO-3 collectives) and returns one result.
    """

    def __init__(self, cfg: SynergyConfig, model_path: str, data_path: str, num_cpus: float = 1,
                 num_gpus: float = 0, placement: list[dict] | None = None):
        """`placement`: per-rank actor options (resources and placement-group bundle) from the run's plan.

        Returns once the ranks have started their set-up (model, DeepSpeed engine), without waiting for it, so
        the caller can start the generators meanwhile; `ready` waits, and every call below waits first."""
        import ray

        self._ray = ray
        self._learner = cfg.learner  # micro-batch bounds and order (`_deal`)
        self._call_timeout_s = cfg.rollout.call_timeout_s  # a generator slower than this in a sync has failed
        world = cfg.learner.num_workers
        actor = ray.remote(LearnerWorker)
        options = placement or [{"num_cpus": num_cpus, "num_gpus": num_gpus}] * world
        self.workers = [actor.options(**options[r]).remote(cfg, model_path, data_path, r, world)
                        for r in range(world)]
        addr, port = ray.get(self.workers[0].rendezvous.remote())  # rank 0's node, wherever it was placed
        if world == 1:
            addr = "127.0.0.1"
        self._setting_up: list | None = [w.setup.remote(addr, port) for w in self.workers]
        self._num_buckets, self._rank0_node = 0, None

    def ready(self) -> "LearnerGroup":
        """Wait until every rank has set up (raises a rank's set-up error); at once after the first time."""
        if self._setting_up is not None:
            self._ray.get(self._setting_up)
            self._setting_up = None
            self._num_buckets = self._ray.get(self.workers[0].num_buckets.remote())
            self._rank0_node = self._ray.get(self.workers[0].node_id.remote())
        return self

    def _deal(self, samples: list[TrainSample]) -> list[tuple[list[int], list[TrainSample], int, list[int]]]:
        """Per rank: the indices of its samples, the samples in the order they run (shortest first, fillers
        last), its filler count and its micro-batch sizes (`core.microbatch`: the same count on every rank).
        Every rank gets as many rows (fillers pad the short ones)."""

        c = self._learner
        parts = deal(len(samples), len(self.workers))
        shares = [[samples[i] if i != FILLER else samples[0] for i in p] for p in parts]
        fillers = [p.count(FILLER) for p in parts]
        plans = plan_ranks([[s.num_tokens for s in share] for share in shares], fillers,
                           c.micro_batch_size, c.micro_batch_tokens, c.sort_by_length)
        return [([p[i] for i in order], [share[i] for i in order], fill, sizes)
                for p, share, fill, (order, sizes) in zip(parts, shares, fillers, plans)]

    def _call_all(self, method: str, *args) -> list:
        self.ready()
        return self._ray.get([getattr(w, method).remote(*args) for w in self.workers])

    def logprobs(self, samples: list[TrainSample]) -> list[list[float]]:
        """Each sample's completion log-probs under the current policy, in the order given."""

        if not samples:
            return []
        self.ready()
        dealt = self._deal(samples)
        refs = [w.logprobs.remote(part, fill, sizes) for w, (_, part, fill, sizes) in zip(self.workers, dealt)]
        out: list[list[float] | None] = [None] * len(samples)
        for (indices, *_), values in zip(dealt, self._ray.get(refs)):
            for i, v in zip(indices, values):  # fillers come last and returned nothing
                out[i] = v
        return out  # type: ignore[return-value]

    def train_step(self, samples: list[TrainSample], total_tokens: int) -> TrainTotals:
        """One optimiser step on a mini-batch dealt over the ranks; stats summed over ranks."""
        self.ready()
        refs = [w.train_step.remote(part, total_tokens, len(samples), fill, sizes)
                for w, (_, part, fill, sizes) in zip(self.workers, self._deal(samples))]
        return sum(self._ray.get(refs), TrainTotals())

    def push_weights(self, generators: list, version: int) -> tuple[float, dict]:
        """Stream the weights to `generators` bucket by bucket: (the slowest engine's load seconds, the members
        that failed during the push -> why).

        Generators on rank 0's node get each bucket as a file rank 0 wrote to the node's shared memory (their
        engines read it; nothing is copied through Ray); generators on other nodes get it as a Ray object
        passed by reference, which Ray moves from rank 0's node to theirs. Either way nothing enters this
        (the coordinator's) process, and at most two buckets are in flight (rank 0 prepares the next one while
        the engines load this one). A member that fails (its actor or engine dies, or it stops answering
        within `rollout.call_timeout_s`) is left out of the rest of the push; the caller decides what becomes
        of it.
        """

        ray, timeout = self._ray, self._call_timeout_s
        failed: dict = {}
        self.ready()

        def each(calls: dict) -> dict:  # one call per live member; those that fail drop out of the push
            results, lost = answers(calls, timeout)
            failed.update(lost)
            return results

        nodes = each({g: g.node_id.remote() for g in generators})
        begun = each({g: g.begin_weight_update.remote() for g in nodes})
        live = [g for g in generators if g in begun]
        seconds = dict.fromkeys(live, 0.0)

        def local(members: list) -> set:  # members whose engines can read a file in rank 0's shared memory
            return {g for g in members if nodes[g] == self._rank0_node}

        def gather(index: int) -> list:  # every rank joins the gather; rank 0's two results are parts[0]
            here = local(live)
            return [w.weight_bucket.options(num_returns=2).remote(index, bool(here), len(here) < len(live))
                    for w in self.workers]

        # Two buckets in flight: rank 0 gathers and writes bucket i+1 while the engines load bucket i (other
        # processes, so other cores). Rank 0 runs its calls in order and bucket i's release is sent before
        # bucket i+2's gather, so no more than two buckets exist at a time. `live` only shrinks, so a bucket
        # made for the members live when it was gathered serves every member still live when it is loaded.
        done: list = []
        parts = gather(0) if self._num_buckets else []
        for index in range(self._num_buckets):
            info, tensors = parts[0]
            here = local(live)
            loading = {g: g.load_weight_bucket.remote(info if g in here else tensors) for g in live}
            following = gather(index + 1) if index + 1 < self._num_buckets else []
            loads = each(loading)
            live = [g for g in live if g in loads]
            for g in live:
                seconds[g] += loads[g]
            done += [self.workers[0].release_bucket.remote(info)] + [ref for part in parts[1:] for ref in part]
            del parts, info, tensors, loading
            parts = following
        ray.get(done)  # surfaces a rank's error
        finished = each({g: g.finish_weight_update.remote(version) for g in live})
        return max((seconds[g] for g in finished), default=0.0), failed

    def save(self, path: str) -> None:
        self._call_all("save", path)

    def load(self, path: str) -> None:
        self._call_all("load", path)

    def export(self, path: str) -> None:
        self._call_all("export_hf", path)

    def sync_bytes(self) -> int:
        self.ready()
        return self._ray.get(self.workers[0].sync_bytes.remote())

    def num_buckets(self) -> int:
        return self.ready()._num_buckets

    def peak_rss(self) -> list[dict[str, float]]:
        return self._call_all("peak_rss")

    def mark_rss(self) -> list[float]:
        return self._call_all("mark_rss")

    def kill(self) -> None:
        for worker in self.workers:
            self._ray.kill(worker)
