"""The coordinator: the single controller of an RL run. This file is the step's recipe.

One step (`step`): draw prompts from the curriculum sampler (the strategy's weights and group sizes) -> the
generator pool samples each question's group -> verifiers score them -> the pass-rate table is updated and each
complete group gets its advantages and its losses from the strategy -> hinted rescue subgroups for the
questions whose group failed entirely, when the strategy rescues (`_rescue`) -> the learner steps on
mini-batches -> weights pushed to every generator (version + 1) -> the sync is checked (vLLM's log-probs
against the learner's on the same tokens) -> metrics, checkpoint.

What the step uses lives elsewhere, each in one place:
- the generator pool, its failures and its elastic size: `rollout_pool.RolloutPool`;
- grouping, advantages and the per-level pass rate: `core.routing` (pure); every strategy decision (hints,
  reward shaping, each sequence's loss): the `Strategy` handed in;
- metrics sinks (JSONL, TensorBoard, W&B, the console line): `run_metrics.MetricsSink`;
- checkpoint files: `rl_checkpoints`.

With `rl.async_mode` the next step's generation overlaps this step's training (one weight version stale,
corrected by truncated importance sampling); see `step`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synergy_ray.cluster.placement import RolePlacement
from synergy_ray.config import SynergyConfig
from synergy_ray.console import log
from synergy_ray.core.schedules import prefix_tokens
from synergy_ray.processes.profiling import mark_rss, peak_rss_mib, timed
from synergy_ray.records import (GroupOutcome, LearnerSummary, PromptRef, Rollout, RunCounters, ScoreRequest,
                                 StepStats, TrainSample)
from synergy_ray.rollout_pool import GENERATOR_START_TIMEOUT_S, RolloutPool
from synergy_ray.run.rl_checkpoints import read_state, write_checkpoint
from synergy_ray.run.run_metrics import MetricsSink

if TYPE_CHECKING:
    from synergy_ray.strategies.base import Strategy

ROLE_TIMINGS = ("generate", "score", "rescue", "train", "sync", "health_check")  # a step's parts timed around role calls
SYNC_CHECK_ROLLOUTS = 4  # rollouts whose log-probs vLLM and the learner compare after each sync


def _in_draw_order(rollouts: list[Rollout], prompts: list[PromptRef]) -> list[Rollout]:
    """Rollouts sorted so that each question's group is contiguous, questions in the order they were drawn."""
    order = {p.qid: i for i, p in enumerate(prompts)}
    return sorted(rollouts, key=lambda r: (order[r.qid], r.sample))


class Coordinator:
    """Run as a Ray actor (`ray.remote(Coordinator)`) or in the driver; it only holds handles and small state."""

    def __init__(self, cfg: SynergyConfig, model_path: str, train_path: str, run_dir: str, strategy: Strategy):
        import datasets
        from transformers import AutoTokenizer

        from synergy_ray.core.curriculum import CurriculumSampler  # defers numpy
        from synergy_ray.model.prompting import pad_token_id  # defers torch

        self.cfg, self.model_path, self.train_path, self.run_dir = cfg, model_path, train_path, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data = datasets.load_from_disk(train_path)
        if strategy.hint_column and strategy.hint_column not in data.column_names:
            raise ValueError(f"strategy.hint_column: the training set has no column {strategy.hint_column!r} "
                             f"(it has {data.column_names})")
        extra = ("level", "long_cot", strategy.hint_column)
        cols = ["id", "answer", "choices", "steps"] + [c for c in extra if c and c in data.column_names]
        table = data.select_columns(cols).to_dict()
        self.qids: list[str] = table["id"]
        self.row_of = {q: i for i, q in enumerate(self.qids)}
        self.answers, self.choices = table["answer"], table["choices"]
        # Progress by stored level when the training set has one, else by design difficulty (reasoning steps).
        self.bucket, bucket_label = (table["level"], "L") if "level" in table else (table["steps"], "S")
        self.sampler = CurriculumSampler(self.qids, cfg.curriculum.focus, cfg.curriculum.floor, seed=cfg.run.seed,
                                         table=strategy.difficulty_table(dict(zip(self.qids, self.bucket))),
                                         weigh=lambda rates: strategy.sampling_weights(rates, cfg.curriculum))
        self.long_cot = table.get("long_cot") or []
        self.solutions = table.get(strategy.hint_column) if strategy.hint_column else None  # rescue hints' source
        self._expert_cache: dict[int, list[int]] = {}
        self.step_index, self.version = 0, 0
        self.last_engine_load_s = 0.0  # seconds the latest sync spent loading weights into vLLM (slowest engine)
        self.last_pass: dict[str, float] = {}  # each question's pass rate in its latest group
        self._ready: tuple[list[PromptRef], list[Rollout]] | None = None  # async mode: the next step's rollouts
        self._last_stats: StepStats | None = None  # the pool is resized from it before the next step
        self.strategy = strategy  # its decisions inside the step: hints, reward shaping, each sequence's loss
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=cfg.model.trust_remote_code)
        # The learner masks this id out of every loss (placeholders the generators replaced; EOS when the
        # tokenizer has no pad), so the token-mean divisor must not count it either.
        self.pad_id = pad_token_id(self.tokenizer)
        self.counters = RunCounters()
        self.metrics = MetricsSink(cfg, self.run_dir, bucket_label)
        self._start_roles()

    def _start_roles(self) -> None:
        """The placement group from the plan (`core.placement`), the learner ranks, the verifiers, the pool.
        The learner ranks set up while the generators' engines start, unless they share GPUs with them."""
        import ray

        from synergy_ray.learner import LearnerGroup  # defers torch
        from synergy_ray.verifier import VerifierPool  # defers ray

        c = self.cfg
        self._ray = ray
        start = time.perf_counter()
        self.placement = RolePlacement.create(c, timeout_s=GENERATOR_START_TIMEOUT_S)
        self.learner = LearnerGroup(c, self.model_path, self.train_path, placement=[
            self.placement.options("learner", r) for r in range(c.learner.num_workers)])
        self.verifiers = VerifierPool.create(c.reward)
        if c.cluster.layout == "colocated":  # vLLM sizes its cache from the GPU memory the learner left free
            self.learner.ready()
        self.pool = RolloutPool(c, self.placement, self.learner, self.model_path, self.train_path, self.counters,
                                weight_version=lambda: self.version)  # the engines start meanwhile, all at once
        self.learner.ready()
        log().info(f"[rl] roles up in {time.perf_counter() - start:.0f} s: {len(self.pool.members)} generator(s), "
                   f"{c.learner.num_workers} learner rank(s), {c.reward.num_workers} verifier(s)")

    # ------------------------------------------------------------ the run

    def run(self, steps: int | None = None) -> list[dict]:
        target = steps if steps is not None else self.cfg.rl.steps
        history = []
        while self.step_index < target:
            self.ensure_pool()
            history.append(dataclasses.asdict(self.step(prefetch=self.step_index + 1 < target)))
        return history

    def step(self, prefetch: bool = True) -> StepStats:
        """One RL step.

        With `rl.async_mode` the next step's prompts are drawn and sent to the generators before this step
        trains, so generation of step t+1 (on the weights before this step's update) overlaps training of
        step t; those rollouts are one version stale when trained, which `rl.tis_cap` corrects (truncated
        importance sampling against the sampler's log-probs) and `rl.max_staleness` bounds. `prefetch=False`
        (the run's last step) starts nothing new.
        """
        c = self.cfg
        timings: dict[str, float] = {}
        step_start = time.perf_counter()
        with timed(timings, "generate"):
            if self._ready is None:
                prompts = self._draw(self.step_index)
                rollouts = self.pool.generate(prompts)
            else:
                (prompts, rollouts), self._ready = self._ready, None
            rollouts = self._within_staleness(_in_draw_order(rollouts, prompts))
        staleness = sum(self.version - r.weight_version for r in rollouts) / max(1, len(rollouts))
        with timed(timings, "score"):
            rewards, correct = self._score(rollouts)
        groups, failed = self._route(rollouts, rewards, correct, {p.qid: p.n for p in prompts})
        with timed(timings, "rescue"):
            rescued, hinted = self._rescue(failed)
        groups += rescued
        inflight = None
        if c.rl.async_mode and prefetch:
            next_prompts = self._draw(self.step_index + 1)
            inflight = (next_prompts, self.pool.dispatch(next_prompts))
        with timed(timings, "train"):
            learner_stats = self._train(groups)
        timings["train_worker"] = learner_stats.worker_s  # inside "train": rank 0 at work, the rest is the trip
        if inflight is not None:  # what is left of the next step's generation after training ended
            with timed(timings, "generate_wait"):
                self._ready = (inflight[0], self.pool.collect(inflight[1]))
        with timed(timings, "sync"):
            self.sync_weights()
        timings["sync_engine_load"] = self.last_engine_load_s  # inside "sync", not added to the step twice
        with timed(timings, "health_check"):
            every = c.learner.sync_check_every
            gap = self.sync_gap(rollouts[:SYNC_CHECK_ROLLOUTS]) if every and self.step_index % every == 0 else None
        # Everything not inside a role call: sampling prompts, sorting, advantages and routing, Ray hops.
        timings["step"] = time.perf_counter() - step_start
        waited = timings.get("generate_wait", 0.0)  # async mode: the rest of the next step's generation
        timings["overhead"] = timings["step"] - waited - sum(timings[k] for k in ROLE_TIMINGS)

        self.step_index += 1
        stats = self._stats(rollouts, rewards, correct, timings, learner_stats, gap, staleness,
                            [p.n for p in prompts], hinted)
        self._last_stats = stats
        self.metrics.write(stats)
        if c.rl.checkpoint_every and self.step_index % c.rl.checkpoint_every == 0:
            self.save_checkpoint()
        return stats

    # ------------------------------------------------------------ the step's parts, in order

    def _draw(self, step: int) -> list[PromptRef]:
        """Step `step`'s questions from the curriculum sampler, each with its group size and (trace) hint."""
        qids = self.sampler.sample(self.cfg.rl.prompt_batch)
        sizes = self.strategy.group_sizes([self.sampler.pass_rate(q) for q in qids], self.cfg.rollout.group_size,
                                          step, self.cfg.rl.steps)
        return [PromptRef(q, self.row_of[q], self._hint(q), n) for q, n in zip(qids, sizes)]

    def _hint(self, qid: str) -> str:
        """The expert-trace prefix the strategy wants this question to start from now ("" = none)."""

        measured = self.last_pass.get(qid, self.sampler.pass_rate(qid))
        fraction = self.strategy.hint_fraction(qid, self.step_index, measured)
        expert = self._expert_ids(self.row_of[qid])
        if fraction <= 0 or not expert:
            return ""
        n = prefix_tokens(len(expert) - 1, fraction)  # the end token is never given
        self.counters.hinted_prompts += n > 0
        return self.tokenizer.decode(expert[:n]) if n else ""

    def _expert_ids(self, row: int) -> list[int]:
        """A row's long-CoT trace as token ids (with the end token), tokenised once per row."""
        if row not in self._expert_cache:
            text = self.long_cot[row] if self.long_cot else ""
            self._expert_cache[row] = (self.tokenizer(text, add_special_tokens=False)["input_ids"]
                                       + [self.tokenizer.eos_token_id]) if text else []
        return self._expert_cache[row]

    def _within_staleness(self, rollouts: list[Rollout]) -> list[Rollout]:
        """Drop rollouts sampled more than `rl.max_staleness` weight versions ago (counted, never silent)."""
        if not self.cfg.rl.async_mode:
            return rollouts
        fresh = [r for r in rollouts if self.version - r.weight_version <= self.cfg.rl.max_staleness]
        if len(fresh) < len(rollouts):
            self.counters.stale_dropped += len(rollouts) - len(fresh)
        return fresh

    def _score(self, rollouts: list[Rollout]) -> tuple[list[float], list[bool]]:
        """(reward, correct) of each rollout, from the verifiers; `rollout.truncated: zero_reward` zeroes the
        reward of a completion cut at max_tokens (it stays counted as correct or not)."""
        requests = [ScoreRequest(key=f"{r.qid}/{r.sample}", text=r.text, gold=self.answers[r.row],
                                 choices=tuple(self.choices[r.row])) for r in rollouts]
        results = self.verifiers.score(requests)
        self.counters.verifier_timeouts += sum(s.timed_out for s in results)
        zero_cut = self.cfg.rollout.truncated == "zero_reward"
        rewards = [0.0 if (r.truncated and zero_cut) else s.reward for r, s in zip(rollouts, results)]
        return rewards, [s.correct for s in results]

    def _route(self, rollouts: list[Rollout], rewards: list[float], correct: list[bool],
               sizes: dict[str, int]) -> tuple[list[list[TrainSample]], list[GroupOutcome]]:
        """Per question: update its pass rate, then for a complete group (`sizes`: the rollouts asked) let the
        strategy shape the rewards, take group advantages (core.routing) and pick each sequence's loss.
        Returns the trained groups and the complete groups in which every rollout failed."""
        groups, failed = [], []
        for outcome in self._outcomes(rollouts, rewards, correct):
            self.sampler.update(outcome.qid, sum(outcome.correct), len(outcome.correct))
            self.last_pass[outcome.qid] = sum(outcome.correct) / len(outcome.correct)
            self.strategy.observed(outcome.qid, sum(outcome.correct), len(outcome.correct))
            if len(outcome.rollouts) != sizes[outcome.qid]:  # an incomplete group (lost work): no fair baseline
                continue
            self.counters.all_failed_groups += outcome.all_failed
            failed += [outcome] if outcome.all_failed else []
            groups.append(self._trained(outcome))
        return groups, failed

    def _outcomes(self, rollouts: list[Rollout], rewards: list[float], correct: list[bool]) -> list[GroupOutcome]:
        """Each question's rollouts as one group, with the pass rate known before them."""
        from synergy_ray.core.routing import question_groups  # defers torch

        out = []
        for q, idx in question_groups([r.qid for r in rollouts]).items():
            row = rollouts[idx[0]].row
            out.append(GroupOutcome(q, row, [rollouts[i] for i in idx], [rewards[i] for i in idx],
                                    [correct[i] for i in idx], self.last_pass.get(q, self.sampler.pass_rate(q)),
                                    self._expert_ids(row)))
        return out

    def _trained(self, outcome: GroupOutcome) -> list[TrainSample]:
        """A complete group's sequences with their advantages (over all its samples) and losses."""
        from synergy_ray.core.routing import trained_advantages  # defers torch

        c = self.cfg
        adv = trained_advantages(self.strategy.shape_rewards(outcome), [r.truncated for r in outcome.rollouts],
                                 len(outcome.rollouts), c.rl.advantage, c.rollout.truncated == "drop")
        return self.strategy.samples(outcome, adv, self.step_index)

    def _rescue(self, failed: list[GroupOutcome]) -> tuple[list[list[TrainSample]], list[Rollout]]:
        """Hinted subgroups for the questions whose unhinted group failed entirely, while the strategy's rescue
        budget for the step lasts. Each round samples every pending question after the strategy's hint; a
        subgroup with a mixed outcome is trained (advantages within the subgroup), and one that failed again
        tries the strategy's next, longer hint in the next round. Hinted outcomes never touch the difficulty
        table. Returns the trained subgroups and every hinted rollout sampled."""
        size, budget = self.strategy.rescue_size, self.strategy.rescue_budget
        groups: list[list[TrainSample]] = []
        sampled: list[Rollout] = []
        while failed and size and budget >= size:
            prompts = []
            for g in failed[:budget // size]:
                hint = self.strategy.rescue_hint(g.qid, self.solutions[g.row], self.answers[g.row],
                                                 self.step_index, self.cfg.rl.steps)
                prompts += [PromptRef(g.qid, g.row, hint, size)] if hint else []
            if not prompts:
                break
            budget -= size * len(prompts)
            self.counters.hinted_prompts += len(prompts)
            rollouts = _in_draw_order(self.pool.generate(prompts), prompts)
            self.counters.rescue_rollouts += len(rollouts)
            sampled += rollouts
            rewards, correct = self._score(rollouts)
            failed = []
            for outcome in self._outcomes(rollouts, rewards, correct):
                again = self.strategy.rescued(outcome.qid, self.solutions[outcome.row], self.answers[outcome.row],
                                              sum(outcome.correct), len(outcome.correct))
                if len(outcome.rollouts) != size:
                    continue
                if again:
                    self.counters.rescue_escalations += 1
                    failed.append(outcome)
                elif any(outcome.correct) and not all(outcome.correct):  # the rest carries no gradient
                    self.counters.rescued_groups += 1
                    groups.append(self._trained(outcome))
        self.strategy.rescues_spent(len(sampled))
        return groups, sampled

    def _train(self, groups: list[list[TrainSample]]) -> LearnerSummary:
        """One optimiser step per mini-batch; engines sleep meanwhile when the config asks (colocated GPUs)."""
        self._rollout_engines("sleep")
        try:
            return self._train_minibatches(groups)
        finally:
            self._rollout_engines("wake_up")  # the weight sync that follows refreshes the woken engines

    def _rollout_engines(self, action: str) -> None:
        if self.cfg.rollout.sleep_during_training and self.pool.members:
            self.pool.ask_all(action)

    def _train_minibatches(self, groups: list[list[TrainSample]]) -> LearnerSummary:
        """rl.prompt_batch / rl.mini_batch optimiser steps, the groups split evenly over them (rescue subgroups
        included, so a strategy that rescues makes as many updates as plain GRPO); old log-probs are fixed
        before the first."""
        c = self.cfg
        size = -(-len(groups) // (c.rl.prompt_batch // c.rl.mini_batch)) or 1  # ceil: at most that many updates
        minibatches = [[s for g in groups[i:i + size] for s in g] for i in range(0, len(groups), size)]
        minibatches = [mb for mb in minibatches if mb]
        samples = [s for mb in minibatches for s in mb]
        if len(minibatches) > 1:  # later mini-batches are off-policy: ratios need the pre-update log-probs
            for s, lp in zip(samples, self.learner.logprobs(samples)):
                s.old_logprobs = lp
        # The divisor counts exactly the tokens the learner's mask keeps (pad-id tokens carry no loss).
        return LearnerSummary.of([self.learner.train_step(mb, sum(s.loss_tokens(self.pad_id) for s in mb))
                                  for mb in minibatches])

    def sync_weights(self) -> None:
        """Push the learner's trainable weights to every generator; the weight version goes up by one."""
        self.version += 1
        # The learner streams its buckets to the generators; this process only passes references.
        self.last_engine_load_s, failed = self.learner.push_weights(self.pool.members, self.version)
        self.pool.fail(failed)

    def sync_gap(self, rollouts: list[Rollout], member: int = 0) -> float | None:
        """Mean |generator log-prob - learner log-prob| on the same tokens, under the weights just synced."""
        if not rollouts or not self.pool.members:
            return None
        samples = [TrainSample(row=r.row, prompt_ids=r.prompt_ids, completion_ids=r.completion_ids,
                               sampler_logprobs=r.sampler_logprobs) for r in rollouts]
        gen = self.pool.members[member]
        scored = self.pool.ask({gen: gen.score_tokens.remote(rollouts)}, self.cfg.rollout.call_timeout_s)
        if gen not in scored:
            return None
        learner_lp = self.learner.logprobs(samples)  # every rank joins (ZeRO-3 gathers); rank order kept
        diffs = [abs(a - b) for va, vb in zip(scored[gen], learner_lp) for a, b in zip(va, vb)
                 if not (math.isnan(a) or math.isnan(b))]
        return sum(diffs) / len(diffs) if diffs else None

    def _stats(self, rollouts, rewards, correct, timings, learner_stats, gap, staleness, sizes,
               hinted) -> StepStats:
        from synergy_ray.core.routing import pass_rate_by_bucket  # defers torch

        n = max(1, len(rollouts))
        return StepStats(
            step=self.step_index, weight_version=self.version, reward_mean=sum(rewards) / n,
            pass_rate=sum(correct) / n, response_tokens_mean=sum(len(r.completion_ids) for r in rollouts) / n,
            clip_ratio=sum(r.truncated for r in rollouts) / n, num_rollouts=len(rollouts), timings=timings,
            response_lengths=[len(r.completion_ids) for r in rollouts],
            learner=learner_stats, counters=dataclasses.replace(self.counters), sync_logprob_gap=gap,
            pass_rate_by_level=pass_rate_by_bucket([self.bucket[r.row] for r in rollouts], correct),
            staleness=staleness, group_sizes=sizes, hinted_rollouts=len(hinted),
            sampled_tokens=sum(len(r.completion_ids) - r.prefix_len for r in rollouts + hinted),
        )

    # ------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        return {"step": self.step_index, "version": self.version, "sampler": self.sampler.state_dict(),
                "counters": dataclasses.asdict(self.counters), "last_pass": dict(self.last_pass),
                "strategy": self.strategy.state_dict()}

    def save_checkpoint(self) -> str:
        """`checkpoints/step_N` with the learner and this state; `latest` points at it (`rl_checkpoints`)."""

        return write_checkpoint(self.run_dir / "checkpoints", self.step_index, self.learner.save,
                                self.state_dict(), self.cfg.rl.keep_checkpoints)

    def load_checkpoint(self, path: str) -> None:
        """Restore learner, sampler (RNG included), step and weight version; generators get the weights."""

        state = read_state(path)
        self.learner.load(str(path))
        self.step_index, self.version = state["step"], state["version"]
        self.sampler.load_state_dict(state["sampler"])
        self.counters.load(state["counters"])
        self.last_pass = dict(state.get("last_pass", {}))
        self.strategy.load_state_dict(state.get("strategy", {}))
        self.version -= 1
        self.sync_weights()  # back to the saved version, now on every generator

    def export(self, path: str) -> str:
        self.learner.export(path)
        return path

    # ------------------------------------------------------------ the pool, between steps

    def ensure_pool(self) -> int:
        """Drop dead members and resize the pool toward its target (`RolloutPool.resize`); returns its size."""
        return self.pool.resize(self._last_stats.timings if self._last_stats else None)

    def shutdown(self) -> None:
        """Stop the members and give back every placement group the run reserved (call before killing this
        actor: freeing them does not rely on Ray's clean-up after the creator's death)."""
        self.pool.shutdown()
        self.learner.kill()
        self.placement.remove()

    # ------------------------------------------------------------ what tests and benchmarks ask

    def next_prompts(self, n: int) -> list[str]:
        """The batch the sampler would draw next, without advancing it (for resume checks)."""
        saved = self.sampler.state_dict()
        batch = self.sampler.sample(n)
        self.sampler.load_state_dict(saved)
        return batch

    def generator_handles(self) -> list:
        return list(self.pool.members)

    def pool_size(self) -> int:
        return len(self.pool.members)

    def placement_nodes(self) -> dict[str, list]:
        return self.placement.node_ids()

    def pool_sync_gaps(self) -> list[float | None]:
        """The weight-sync log-prob gap of every member on the same fresh rollouts (new members included)."""
        prompt = PromptRef(self.qids[0], self.row_of[self.qids[0]])
        rollouts = self._ray.get(self.pool.members[0].generate.remote([prompt], 2)).rollouts
        return [self.sync_gap(rollouts, member=i) for i in range(len(self.pool.members))]

    def peak_rss(self) -> dict[str, dict[str, float]]:
        """Peak memory (MiB) per role: coordinator, each generator (vLLM processes included), learner ranks,
        verifiers (scoring children included); see synergy_ray.processes.profiling."""

        out = {"coordinator": peak_rss_mib()}
        for i, g in enumerate(self.pool.members):
            out[f"generator-{i}"] = self._ray.get(g.peak_rss.remote())
        for i, mem in enumerate(self.learner.peak_rss()):
            out[f"learner-{i}"] = mem
        for i, v in enumerate(self.verifiers.actors):
            out[f"verifier-{i}"] = self._ray.get(v.peak_rss.remote())
        return out

    def profile_sync(self) -> dict:
        """One weight sync with every role's memory around it (for benchmarks.sync_scale): resident MiB just
        before, peak MiB during, seconds, bytes and buckets moved."""

        members = self.pool.members
        names = [f"generator-{i}" for i in range(len(members))]
        before = dict(zip(names, self._ray.get([g.mark_rss.remote() for g in members])))
        before.update({f"learner-{i}": v for i, v in enumerate(self.learner.mark_rss())})
        before["coordinator"] = mark_rss()
        start = time.perf_counter()
        self.sync_weights()
        seconds = time.perf_counter() - start
        peak = {"coordinator": peak_rss_mib()["total"]}
        peak.update(zip(names, [m["total"] for m in self._ray.get([g.peak_rss.remote() for g in members])]))
        peak.update({f"learner-{i}": m["total"] for i, m in enumerate(self.learner.peak_rss())})
        return {"seconds": seconds, "bytes": self.learner.sync_bytes(), "buckets": self.learner.num_buckets(),
                "before_mib": before, "peak_mib": peak}
