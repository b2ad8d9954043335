"""Serving under load: `synergy-ray serve` (ray.serve.llm plus our layer) against bare vLLM on one checkpoint.

    python -m benchmarks.serve_load [--requests 64] [--tokens 32] [--repeats 2] [--quick]

Both arms answer the same requests: one held-out question with its image each, chat-templated, every completion
exactly `--tokens` long (min_tokens = max_tokens, so both sides generate the same number of tokens), streamed so
that the time to the first token is seen. At each concurrency (1, 8, 32) `--requests` requests are sent with at
most that many in flight.

* `bare`: vLLM's `AsyncLLMEngine` in this process (`model.engine.build_async_engine`, the engine settings offline
  evaluation uses), the prompt rendered by `prompting.chat_text`, the image as a PIL image.
* `served`: `serving.app.start` on a local Ray (one replica, `serve.cpus_per_replica`), the official `openai`
  client over HTTP on loopback with a data-URL image and the bearer key on: HTTP, our checks, the image read and
  re-encoded, ray.serve.llm's router and replica, and the same vLLM.

Only one engine runs at a time (the machine has 2 cores), so each arm starts its own engine per block and the
blocks alternate: bare, served, bare, served, ... Reported per arm and concurrency: p50 / p99 latency, p50 time
to first token, output tokens/s (the block's tokens over its wall time), errors; and served/bare throughput.
Goal: at concurrency 32 the served throughput is at least 0.8 of bare vLLM's, with zero errors, and the server
still answers afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import socket
import time
import uuid

from benchmarks.common import format_table, interleaved, median, ratio, write_result
from benchmarks.workload import bench_config, quiet_env

ARMS = ("bare", "served")
CONCURRENCY = (1, 8, 32)
MODES = ("stream", "whole")  # server-sent events (first-token time seen) or one response per request
KEY_ENV = "SYNERGY_RAY_BENCH_SERVE_KEY"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="tiny", choices=["tiny", "small"], help="the model (benchmarks.workload)")
    p.add_argument("--requests", type=int, default=64, help="requests per concurrency level")
    p.add_argument("--tokens", type=int, default=32, help="completion length (min_tokens = max_tokens)")
    p.add_argument("--repeats", type=int, default=2, help="blocks per arm, alternated")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process")
    p.add_argument("--client", default="openai", choices=["openai", "raw"],
                   help="the served arm's client: the official openai client, or plain httpx decoding only the "
                        "lines it needs (it shares the 2 cores with the server)")
    p.add_argument("--stream-batching-ms", type=float, default=None,
                   help="serve.stream_batching_interval_ms of the served arm (default: ray.serve.llm's own)")
    p.add_argument("--work-dir", default="runs/bench")
    p.add_argument("--quick", action="store_true", help="32 requests x 16 tokens, 1 block per arm")
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.tokens, args.repeats = 32, 16, 1
    return args


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize_level(results: list[dict], seconds: float) -> dict:
    """One block at one concurrency: latency and first-token percentiles, throughput, errors."""
    ok = [r for r in results if r.get("error") is None]
    return {"requests": len(results), "errors": len(results) - len(ok), "seconds": seconds,
            "output_tokens": sum(r["tokens"] for r in ok),
            "tokens_per_s": sum(r["tokens"] for r in ok) / seconds if seconds > 0 else None,
            "latency_p50_s": percentile([r["latency"] for r in ok], 50),
            "latency_p99_s": percentile([r["latency"] for r in ok], 99),
            "ttft_p50_s": percentile([r["ttft"] for r in ok if r["ttft"] is not None], 50),
            "error_samples": [r["error"] for r in results if r.get("error")][:3]}


async def _load(one, n_requests: int, concurrency: int) -> tuple[list[dict], float]:
    gate = asyncio.Semaphore(concurrency)

    async def guarded(i):
        async with gate:
            start = time.perf_counter()
            try:
                ttft, tokens = await one(i, start)
                return {"latency": time.perf_counter() - start, "ttft": ttft, "tokens": tokens}
            except Exception as err:  # counted and reported, never hidden
                return {"error": f"{type(err).__name__}: {err}"[:300]}

    start = time.perf_counter()
    results = await asyncio.gather(*(guarded(i) for i in range(n_requests)))
    return list(results), time.perf_counter() - start


def bare_block(cfg, model_path: str, rows: list[dict], args) -> dict:
    from transformers import AutoProcessor
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    from synergy_ray.model.engine import build_async_engine
    from synergy_ray.model.prompting import prompt_text

    processor = AutoProcessor.from_pretrained(model_path)
    requests = [{"prompt": prompt_text(processor, r["question"], cfg.data.prompt_suffix),
                 "multi_modal_data": {"image": r["image"]}} for r in rows]
    params = {mode: SamplingParams(max_tokens=args.tokens, min_tokens=args.tokens, temperature=1.0,
                                   output_kind=RequestOutputKind.DELTA if mode == "stream" else
                                   RequestOutputKind.FINAL_ONLY) for mode in MODES}

    async def run() -> dict:
        engine = build_async_engine(model_path, cfg.rollout, cfg.model.dtype, cfg.run.seed)
        try:
            def one(mode):
                async def call(i, start):
                    ttft, tokens = None, 0
                    async for out in engine.generate(requests[i % len(requests)], params[mode],
                                                     request_id=uuid.uuid4().hex):
                        got = len(out.outputs[0].token_ids)
                        if got and ttft is None and mode == "stream":
                            ttft = time.perf_counter() - start
                        tokens += got
                    return ttft, tokens
                return call

            await _load(one("stream"), 4, 4)  # warm-up
            return {f"{mode}@{c}": summarize_level(*await _load(one(mode), args.requests, c))
                    for mode in MODES for c in CONCURRENCY}
        finally:
            engine.shutdown()

    return asyncio.run(run())


def served_block(cfg, model_path: str, rows: list[dict], args) -> dict:
    import httpx
    import openai
    from ray import serve

    from synergy_ray.cluster.ray_session import connect
    from synergy_ray.evaluation.endpoint_eval import question_messages
    from synergy_ray.serving.app import start

    connect(cfg)
    # A port picked now: one picked at start-up may have been taken since (the bare engine's sockets).
    url = start(cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"port": _free_port()})}),
                {"bench": model_path})
    messages = [question_messages(r, cfg.data.prompt_suffix) for r in rows]

    async def run() -> dict:
        client = openai.AsyncOpenAI(base_url=url, api_key=os.environ[KEY_ENV], max_retries=0,
                                    http_client=openai.DefaultAsyncHttpxClient(
                                        limits=httpx.Limits(max_connections=64), timeout=600))

        raw = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {os.environ[KEY_ENV]}"},
                                limits=httpx.Limits(max_connections=64), timeout=600)

        def one(mode):
            if args.client == "raw":
                return raw_call(mode)

            async def call(i, start):
                ask = dict(model="bench", messages=messages[i % len(messages)], max_tokens=args.tokens,
                           temperature=1.0, extra_body={"min_tokens": args.tokens})
                if mode == "whole":
                    return None, (await client.chat.completions.create(**ask)).usage.completion_tokens
                ttft, tokens = None, 0
                stream = await client.chat.completions.create(**ask, stream=True,
                                                              stream_options={"include_usage": True})
                async for chunk in stream:
                    if ttft is None and chunk.choices and chunk.choices[0].delta.content:
                        ttft = time.perf_counter() - start
                    if chunk.usage is not None:
                        tokens = chunk.usage.completion_tokens
                return ttft, tokens
            return call

        def raw_call(mode):
            """The same request over plain httpx, reading the event stream line by line and decoding only the
            lines it needs (up to the first content, and the usage): a client that costs the shared cores less."""
            async def call(i, start):
                body = {"model": "bench", "messages": messages[i % len(messages)], "max_tokens": args.tokens,
                        "temperature": 1.0, "min_tokens": args.tokens}
                if mode == "whole":
                    response = await raw.post("/chat/completions", json=body)
                    response.raise_for_status()
                    return None, response.json()["usage"]["completion_tokens"]
                ttft, tokens = None, 0
                body.update(stream=True, stream_options={"include_usage": True})
                async with raw.stream("POST", "/chat/completions", json=body) as response:
                    response.raise_for_status()
                    async for line in response.aiter_lines():
                        if not line.startswith("data: {"):
                            continue
                        if ttft is None and '"content":"' in line and '"content":""' not in line:
                            ttft = time.perf_counter() - start
                        if '"usage":{' in line:
                            tokens = json.loads(line[6:])["usage"]["completion_tokens"]
                return ttft, tokens
            return call

        await _load(one("stream"), 4, 4)  # warm-up
        levels = {f"{mode}@{c}": summarize_level(*await _load(one(mode), args.requests, c))
                  for mode in MODES for c in CONCURRENCY}
        alive = [m.id for m in (await client.models.list()).data] == ["bench"]
        await client.close()
        await raw.aclose()
        return {**levels, "alive_after": alive}

    try:
        return asyncio.run(run())
    finally:
        serve.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_env(args.threads)
    os.environ[KEY_ENV] = secrets.token_hex(16)

    import datasets

    from synergy_ray.run import pipeline

    # Equal settings: the replica admits as many requests as the engine batches (serve.max_ongoing_requests
    # defaults to 16, which would queue half of concurrency 32 in Serve while bare vLLM batches all of them).
    cfg = bench_config(args.size, args.work_dir, ["rollout.max_num_seqs=32", "serve.max_ongoing_requests=32",
                                                  f"serve.api_key_env={KEY_ENV}", "serve.cpus_per_replica=1"]
                       + ([] if args.stream_batching_ms is None
                          else [f"serve.stream_batching_interval_ms={args.stream_batching_ms:g}"]))
    prepared = pipeline.prepare(cfg)
    data = datasets.load_from_disk(str(prepared.eval_path))
    rows = [data[i] for i in range(min(len(data), 16))]

    blocks: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for _, arm in interleaved(ARMS, args.repeats):
        block = bare_block if arm == "bare" else served_block
        blocks[arm].append(block(cfg, prepared.model_path, rows, args))
        print(f"[serve_load] {arm} block {len(blocks[arm])}/{args.repeats} done", flush=True)

    summary: dict = {"tokens_per_s_median": {}, "served_over_bare": {}, "errors": {}}
    rows_out = []
    for key in (f"{mode}@{c}" for mode in MODES for c in CONCURRENCY):
        for arm in ARMS:
            levels = [b[key] for b in blocks[arm]]
            tps = median([lv["tokens_per_s"] for lv in levels if lv["tokens_per_s"] is not None])
            summary["tokens_per_s_median"][f"{arm} {key}"] = tps
            summary["errors"][f"{arm} {key}"] = sum(lv["errors"] for lv in levels)
            mid = lambda name: median([lv[name] for lv in levels if lv[name] is not None] or [float("nan")])  # noqa: E731
            rows_out.append([arm, *key.split("@"), sum(lv["requests"] for lv in levels),
                             summary["errors"][f"{arm} {key}"], mid("latency_p50_s"), mid("latency_p99_s"),
                             mid("ttft_p50_s") if key.startswith("stream") else None, tps])
        summary["served_over_bare"][key] = ratio(summary["tokens_per_s_median"][f"served {key}"],
                                                 summary["tokens_per_s_median"][f"bare {key}"])
    summary["alive_after"] = all(b["alive_after"] for b in blocks["served"])
    clean = summary["alive_after"] and not any(summary["errors"].values())
    summary["goal_met"] = {mode: bool(clean and (summary["served_over_bare"][f"{mode}@32"] or 0) >= 0.8)
                           for mode in MODES}
    print(format_table(["arm", "mode", "concurrency", "requests", "errors", "latency p50 s", "latency p99 s",
                        "first token p50 s", "output tokens/s"], rows_out))
    print(format_table(["mode", "concurrency", "served / bare throughput"],
                       [[*key.split("@"), v] for key, v in summary["served_over_bare"].items()]))
    print(f"server alive after the load: {summary['alive_after']}; goal (>= 0.8 of bare at 32, no errors): "
          + ", ".join(f"{mode} {'met' if met else 'missed'}" for mode, met in summary["goal_met"].items()))
    settings = {"model": args.size, "parameters": prepared.num_parameters, "requests": args.requests,
                "tokens": args.tokens, "repeats": args.repeats, "concurrency": list(CONCURRENCY),
                "temperature": 1.0, "max_num_seqs": cfg.rollout.max_num_seqs, "threads": args.threads,
                "max_ongoing_requests": cfg.serve.max_ongoing_requests, "client": args.client,
                "cpus_per_replica": cfg.serve.cpus_per_replica,
                "stream_batching_interval_ms": cfg.serve.stream_batching_interval_ms, "order": " ".join(ARMS) + " repeated",
                "modes": list(MODES),
                "command": f"python -m benchmarks.serve_load --size {args.size} --client {args.client}"
                           + (" --quick" if args.quick else f" --requests {args.requests} --tokens {args.tokens} "
                                                            f"--repeats {args.repeats}")
                           + ("" if args.stream_batching_ms is None else f" --stream-batching-ms {args.stream_batching_ms:g}")}
    suffix = "" if args.client == "openai" else f"_{args.client}"
    if args.stream_batching_ms is not None:
        suffix += f"_sb{args.stream_batching_ms:g}"
    path = write_result(f"serve_load_{args.size}{suffix}" + ("_quick" if args.quick else ""), settings,
                        {**summary, "blocks": blocks})
    print(f"wrote {path}")
    return summary


if __name__ == "__main__":
    main()
