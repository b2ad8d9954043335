"""The generator role: a vLLM engine in a Ray actor that samples G completions per prompt, images included.

Each rollout carries the token ids, the sampler's per-token log-probs and the weight version it was sampled
with. Prompts arrive as references (a data-set row); the actor renders them through the shared prompt path,
checks the expanded length (a too-long prompt is dropped and counted, never truncated after its images were
expanded) and hands vLLM the same text and image the learner will re-encode.

Pool membership is the coordinator's business: any number of these actors can serve a step, and a new one
receives the current weights before it serves. An actor whose engine died ends itself (`engine_call`), so the
coordinator sees one kind of failure, a dead member, and replaces it.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time

from synergy_ray.config import DataConfig, ModelConfig, RolloutConfig
from synergy_ray.console import log
from synergy_ray.model.engine import build_llm, release_llm
from synergy_ray.processes.profiling import mapped_shm, mark_rss, peak_rss_mib, process_names, process_tree, start_time, unlink_all
from synergy_ray.records import GenerateResult, MemberProcesses, PromptRef, Rollout

ENGINE_WATCH_S = 1.0  # how often the watchdog looks at the engine


def _watch_engine(generator: Generator) -> None:
    """Ends the actor when its engine has died, even while a call waits on it.

    vLLM's engine monitor notices the death of the engine process and marks the client dead
    (`engine_core.resources.engine_dead`), but a `generate` already waiting for outputs is never woken: on
    vLLM 0.32 it blocks forever. This thread reads that mark and exits the actor, so the caller gets
    `RayActorError` within about a second. Without the attribute (another vLLM) it never fires; the
    coordinator's call timeout is then the backstop.
    """
    while True:
        time.sleep(ENGINE_WATCH_S)
        if _engine_dead(generator) and not generator._closing:
            _exit_for_dead_engine(generator)


def _engine_dead(generator: Generator) -> bool:
    """vLLM's own mark: its monitor sets it when the engine process dies, before it closes the client."""
    resources = getattr(getattr(generator.llm.llm_engine, "engine_core", None), "resources", None)
    return bool(getattr(resources, "engine_dead", False))


def _exit_for_dead_engine(generator: Generator) -> None:
    log().warning(f"[{generator.name}] its vLLM engine died; the actor exits so the pool can replace it")
    generator.remove_engine_shm()  # a killed engine never unlinks its shared memory
    os._exit(1)


def engine_call(method):
    """Marks a method that reaches the vLLM engine. When the engine has died (the OOM killer's usual target is
    the engine process, the largest), the actor can never serve again: it exits, and its callers get the
    actor's death (`RayActorError`), which the coordinator handles by replacing the member."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            return method(self, *args, **kwargs)
        except Exception as err:
            # A call under way when the engine dies may instead fail on the client's closed socket (ZMQError).
            if not (isinstance(err, EngineDeadError) or _engine_dead(self)):
                raise
            _exit_for_dead_engine(self)

    return call


class Generator:
    """Wrapped with `ray.remote` by the coordinator; one vLLM engine per actor."""

    def __init__(self, model_path: str, data_path: str, model: ModelConfig, data: DataConfig,
                 rollout: RolloutConfig, seed: int = 0, name: str = "generator"):
        """`model_path`: the weights to start from (a stage's start model, not always `model.path`);
        `data_path`: the prepared training set the prompts refer to; the config sections it reads: `model`
        (dtype, trust_remote_code), `data` (prompt_suffix, max_prompt_tokens), `rollout` (engine and sampling)."""
        import datasets
        from transformers import AutoProcessor

        from synergy_ray.model.prompting import image_placeholder_ids, pad_token_id  # defers torch
        from synergy_ray.weight_sync import engine_weight_transfer_kwargs  # defers vllm

        self.rollout, self.prompting, self.name, self.version = rollout, data, name, 0
        self.processor = AutoProcessor.from_pretrained(model_path, trust_remote_code=model.trust_remote_code)
        self.rows = datasets.load_from_disk(data_path)
        self.can_sleep = rollout.sleep_during_training and _sleep_mode_available(name)
        self.llm = build_llm(model_path, rollout, dtype=model.dtype, seed=seed,
                             trust_remote_code=model.trust_remote_code, inline=rollout.inline_engine,
                             **engine_weight_transfer_kwargs(),
                             **({"enable_sleep_mode": True} if self.can_sleep else {}))

        self._engine_shm = mapped_shm()  # what a killed engine would leave in /dev/shm (see close)
        self._closing = False
        threading.Thread(target=_watch_engine, args=(self,), name="engine-watch", daemon=True).start()
        self._prompt_cache: dict[tuple[int, str], tuple[dict, int]] = {}
        self.placeholders = image_placeholder_ids(self.processor)
        self.pad_id = pad_token_id(self.processor)

    def ready(self) -> str:
        return f"{self.name} pid {os.getpid()}"

    def _request(self, ref: PromptRef) -> tuple[dict, int]:
        """The vLLM request for a prompt and its token count after image expansion."""
        key = (ref.row, ref.prefix)
        if key not in self._prompt_cache:
            from synergy_ray.model.prompting import encode_prompt, prompt_text  # defers torch

            item = self.rows[ref.row]
            text = prompt_text(self.processor, item["question"], self.prompting.prompt_suffix) + ref.prefix
            n = encode_prompt(self.processor, text, item["image"])["input_ids"].shape[1]
            self._prompt_cache[key] = ({"prompt": text, "multi_modal_data": {"image": item["image"]}}, n)
        return self._prompt_cache[key]

    @engine_call
    def generate(self, prompts: list[PromptRef], n: int, temperature: float | None = None,
                 max_tokens: int | None = None, seed: int | None = None) -> GenerateResult:
        from vllm import SamplingParams

        r = self.rollout
        start = time.perf_counter()
        kept, requests, dropped = [], [], []
        for ref in prompts:
            request, length = self._request(ref)
            if length > self.prompting.max_prompt_tokens:
                dropped.append(ref.qid)
                continue
            kept.append(ref)
            requests.append(request)
        sizes = sorted({ref.n or n for ref in kept})
        params = {size: SamplingParams(
            n=size, temperature=r.temperature if temperature is None else temperature, top_p=r.top_p, top_k=r.top_k,
            max_tokens=max_tokens or r.max_tokens, min_tokens=min(r.min_tokens, max_tokens or r.max_tokens),
            logprobs=0, seed=seed,
        ) for size in sizes}  # one per group size: a prompt's own `n` (adaptive allocation) or the call's
        outputs = self.llm.generate(requests, [params[ref.n or n] for ref in kept], use_tqdm=False) if requests else []
        rollouts, tokens, replaced = [], 0, 0
        for ref, out in zip(kept, outputs):
            # A hint prefix was part of the prompt text; in the rollout it opens the completion (given tokens).
            prefix_len = len(self._prefix_ids(ref.prefix))
            prompt_ids = list(out.prompt_token_ids)
            prompt_ids, given = prompt_ids[:len(prompt_ids) - prefix_len], prompt_ids[len(prompt_ids) - prefix_len:]
            for i, c in enumerate(out.outputs):
                ids = [self.pad_id if t in self.placeholders else t for t in c.token_ids]
                replaced += sum(t in self.placeholders for t in c.token_ids)
                tokens += len(ids)
                rollouts.append(Rollout(
                    qid=ref.qid, row=ref.row, sample=i, prompt_ids=prompt_ids, completion_ids=given + ids,
                    sampler_logprobs=[math.nan] * prefix_len + [step[t].logprob for step, t in
                                                                zip(c.logprobs, c.token_ids)],
                    text=ref.prefix + c.text, truncated=c.finish_reason == "length", weight_version=self.version,
                    prefix_len=prefix_len,
                ))
        return GenerateResult(rollouts, dropped, time.perf_counter() - start, tokens, replaced)

    def _prefix_ids(self, prefix: str) -> list[int]:
        return self.processor.tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []

    @engine_call
    def score_tokens(self, rollouts: list[Rollout]) -> list[list[float]]:
        """vLLM's log-probs of each rollout's completion tokens under the current weights (prefill only).

        Used for the weight-sync health check: after a sync these equal the learner's on the same tokens. The
        prompt goes in with its image placeholder not yet expanded (vLLM expands it), then the completion ids.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        requests = []
        for r in rollouts:
            text = self._request(PromptRef(r.qid, r.row))[0]["prompt"]
            ids = self.processor.tokenizer(text, add_special_tokens=False)["input_ids"] + r.completion_ids
            requests.append(TokensPrompt(prompt_token_ids=ids, multi_modal_data={"image": self.rows[r.row]["image"]}))
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        outs = self.llm.generate(requests, params, use_tqdm=False)
        result = []
        for r, out in zip(rollouts, outs):
            if list(out.prompt_token_ids[:len(r.prompt_ids)]) != r.prompt_ids:
                raise ValueError(f"{r.qid}: re-expanded prompt differs from the sampled one")
            p = len(r.prompt_ids)
            steps = out.prompt_logprobs[p:p + len(r.completion_ids)]
            result.append([step[t].logprob for step, t in zip(steps, r.completion_ids)])
        return result

    @engine_call
    def begin_weight_update(self) -> None:
        """Open a weight-update session (vLLM's); buckets follow, then `finish_weight_update`."""
        from synergy_ray.weight_sync import begin_update  # defers vllm

        begin_update(self.llm)

    @engine_call
    def load_weight_bucket(self, bucket: dict) -> float:
        """Load one bucket of weights (whole layers) into the engine; returns seconds.

        `bucket` is either the small dict naming a shared-memory file the learner wrote on this node (the
        engine reads it; the learner deletes it) or, from another node, the tensors themselves (HF names ->
        tensors), which go through a file of this node. Neither passes through the coordinator.
        """
        from synergy_ray.weight_sync import load_tensors, load_update  # defers vllm

        if isinstance(bucket.get("path"), str):  # a file's name (HF tensor names never read "path")
            start = time.perf_counter()
            load_update(self.llm, bucket)
            return time.perf_counter() - start
        return load_tensors(self.llm, bucket)

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    @engine_call
    def finish_weight_update(self, version: int) -> None:
        from synergy_ray.weight_sync import finish_update  # defers vllm

        finish_update(self.llm)
        self.version = version

    def close(self) -> int:
        """Stop the engine and remove the shared memory it used (its creator unlinks it only on a clean exit,
        which a killed actor never has); returns how many /dev/shm entries were removed. The coordinator calls
        this before it kills a member it lets go."""

        self._closing = True  # the watchdog stays quiet: this engine is stopped on purpose
        self._engine_shm |= mapped_shm()
        release_llm(self.llm)
        return self.remove_engine_shm()

    def remove_engine_shm(self) -> int:
        return unlink_all(self._engine_shm)

    @engine_call
    def health(self) -> int:
        """The pool's health probe: a round trip into the engine process (not only this actor); returns the
        weight version. A dead engine ends the actor; a hung one makes the probe time out."""
        self.llm.llm_engine.is_sleeping()
        return self.version

    def processes(self) -> MemberProcesses:
        """This member's node, its own and its engine's processes, and their /dev/shm (see `leftovers.end_member`)."""
        import ray

        started = tuple((pid, t) for pid in process_tree(os.getpid()) if (t := start_time(pid)) is not None)
        return MemberProcesses(ray.get_runtime_context().get_node_id(), started, tuple(sorted(self._engine_shm)))

    def engine_pids(self) -> dict[int, str]:
        """The processes this actor started (the vLLM engine among them): pid -> name, for fault tests."""

        return process_names()

    def peak_rss(self) -> dict[str, float]:
        """Peak memory (MiB) of this actor and its vLLM engine processes (see synergy_ray.processes.profiling)."""

        return peak_rss_mib()

    def mark_rss(self) -> float:
        """Current MiB of this process tree; its peak restarts from here (see synergy_ray.processes.profiling)."""

        return mark_rss()

    @engine_call
    def sleep(self) -> float:
        """Free the engine's GPU memory while the learner trains (vLLM sleep level 1: weights to CPU, KV cache
        dropped); a no-op where sleep mode is unavailable. Returns the seconds it took."""
        if not self.can_sleep:
            return 0.0
        start = time.perf_counter()
        self.llm.sleep(level=1)
        return time.perf_counter() - start

    @engine_call
    def wake_up(self) -> float:
        """Back from sleep with the weights it had; the coordinator pushes the new ones right after."""
        if not self.can_sleep:
            return 0.0
        start = time.perf_counter()
        self.llm.wake_up()
        return time.perf_counter() - start


def _sleep_mode_available(name: str) -> bool:
    from vllm.platforms import current_platform

    if current_platform.is_sleep_mode_available():
        return True
    log().warning(f"[{name}] rollout.sleep_during_training is set, but vLLM has no sleep mode on this platform "
          f"({current_platform.device_name}); the engine stays awake during training")
    return False
