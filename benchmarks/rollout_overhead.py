"""Rollout overhead: tokens/s through the generator actor pool versus bare `vllm.LLM.generate`.

    python -m benchmarks.rollout_overhead [--size tiny|small] [--quick]

Arms, on the same prompts, images, sampling settings (fixed length: min_tokens = max_tokens, so every arm
generates the same number of tokens) and engine settings (both built by `model.engine.build_llm`):

* `bare`: `vllm.LLM.generate` in this process on the requests a generator builds (chat-templated text + PIL image).
* `actor`: the real `Generator` actor, started as the coordinator starts it (`num_cpus=cluster.cpus_per_generator`),
  timed from here around `ray.get(generate.remote(...))`: Ray hops, prompt lookup, vLLM, record building and the
  result's trip back.

Every process (this one, the actor's, the engines') gets OMP_NUM_THREADS=`--threads` and Ray workers run at
niceness 0, as this process does (benchmarks.workload.quiet_env says why).

Why both engines stay alive and the repeats interleave: starting an engine costs about a minute, and this shared
machine's speed drifts, so the arms alternate (bare, actor, bare, actor, ...) and medians are compared.
An idle engine does not compute, but to check that it costs nothing, `bare` is also timed alone before any actor
starts (`bare_alone`); the two bare medians should agree.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import format_table, interleaved, median, ratio, write_result
from benchmarks.workload import bench_config, quiet_env

ARMS = ("bare", "actor")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="tiny", choices=["tiny", "small"])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--n", type=int, default=8, help="completions per prompt")
    p.add_argument("--tokens", type=int, default=128, help="completion length (min_tokens = max_tokens)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process")
    p.add_argument("--work-dir", default="runs/bench")
    p.add_argument("--quick", action="store_true", help="8 prompts x 4 x 32 tokens, 3 repeats")
    args = p.parse_args(argv)
    if args.quick:
        args.prompts, args.n, args.tokens, args.repeats = 8, 4, 32, 3
    return args


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Median tokens/s per arm and each arm's ratio to bare vLLM."""
    med = {arm: median([r["tokens"] / r["seconds"] for r in rs]) for arm, rs in runs.items() if rs}
    return {"tokens_per_s_median": med,
            "ratio_to_bare": {arm: ratio(v, med["bare"]) for arm, v in med.items() if "bare" in med}}


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_env(args.threads)
    import ray
    from vllm import SamplingParams

    from synergy_ray.run import pipeline
    from synergy_ray.generator import Generator
    from synergy_ray.model.engine import build_llm
    from synergy_ray.model.prompting import prompt_text
    from synergy_ray.cluster.ray_session import connect
    from synergy_ray.records import PromptRef
    from synergy_ray.weight_sync import engine_weight_transfer_kwargs

    cfg = bench_config(args.size, args.work_dir, [f"rollout.group_size={args.n}", f"rollout.max_tokens={args.tokens}",
                                                  f"rollout.min_tokens={args.tokens}"])
    prepared = pipeline.prepare(cfg)
    r = cfg.rollout
    import datasets
    from transformers import AutoProcessor

    data = datasets.load_from_disk(str(prepared.train_path))
    processor = AutoProcessor.from_pretrained(prepared.model_path)
    rows = list(range(args.prompts))
    refs = [PromptRef(data[i]["id"], i) for i in rows]
    requests = [{"prompt": prompt_text(processor, data[i]["question"], cfg.data.prompt_suffix),
                 "multi_modal_data": {"image": data[i]["image"]}} for i in rows]
    params = SamplingParams(n=args.n, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k, max_tokens=args.tokens,
                            min_tokens=args.tokens, logprobs=0)

    llm = build_llm(prepared.model_path, r, dtype=cfg.model.dtype, seed=cfg.run.seed, **engine_weight_transfer_kwargs())

    def run_bare() -> dict:
        t = time.perf_counter()
        outs = llm.generate(requests, params, use_tqdm=False)
        return {"seconds": time.perf_counter() - t, "tokens": sum(len(c.token_ids) for o in outs for c in o.outputs)}

    run_bare()  # warm-up
    runs: dict[str, list[dict]] = {"bare_alone": [run_bare() for _ in range(max(2, args.repeats // 2))]}

    connect(cfg)
    # Started as the coordinator starts a generator (RolloutPool._add).
    actors = {"actor": ray.remote(Generator).options(num_cpus=cfg.cluster.cpus_per_generator).remote(
        prepared.model_path, str(prepared.train_path), cfg.model, cfg.data, r, cfg.run.seed, name="bench-actor")}
    ray.get([a.ready.remote() for a in actors.values()])

    def run_actor(actor) -> dict:
        t = time.perf_counter()
        res = ray.get(actor.generate.remote(refs, args.n))
        return {"seconds": time.perf_counter() - t, "tokens": res.generated_tokens, "in_actor_seconds": res.seconds}

    for a in actors.values():
        run_actor(a)  # warm-up: also fills the actor's prompt cache
    for arm in ARMS:
        runs[arm] = []
    for _, arm in interleaved(ARMS, args.repeats):
        runs[arm].append(run_bare() if arm == "bare" else run_actor(actors[arm]))
    memory = {arm: ray.get(a.peak_rss.remote()) for arm, a in actors.items()}

    summary = summarize(runs)
    rows_out = [[arm, len(rs), rs[0]["tokens"], summary["tokens_per_s_median"][arm],
                 summary["ratio_to_bare"].get(arm)] for arm, rs in runs.items()]
    print(format_table(["arm", "repeats", "tokens/repeat", "median tokens/s", "ratio to bare"], rows_out))
    settings = {"size": args.size, "parameters": prepared.num_parameters, "prompts": args.prompts, "n": args.n,
                "tokens": args.tokens, "repeats": args.repeats, "temperature": r.temperature, "top_p": r.top_p,
                "top_k": r.top_k, "max_num_seqs": r.max_num_seqs, "max_model_len": r.max_model_len,
                "enforce_eager": r.enforce_eager, "cpus_per_generator": cfg.cluster.cpus_per_generator,
                "threads": args.threads,
                "order": "bare_alone first, then " + " ".join(ARMS) + " repeated"}
    path = write_result("rollout_overhead" + ("_quick" if args.quick else ""), settings,
                        {**summary, "runs": runs, "peak_rss_mib": memory})
    print(f"wrote {path}")
    for a in actors.values():
        ray.kill(a)
    ray.shutdown()
    return summary


if __name__ == "__main__":
    main()
