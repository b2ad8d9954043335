"""Steady-state time per GRPO step: synergy-ray's distributed loop versus TRL's `GRPOTrainer`, same work.

    python -m benchmarks.step_vs_trl [--quick] [--sizes tiny small] [--no-trl-vllm]

For each size (see benchmarks.workload) both sides get the same model, data set, prompt batch, group size,
completion length, learning rate and one optimiser update per step (settings in benchmarks.trl_arm):

* synergy-ray: the real `Coordinator` as a Ray actor (vLLM generator actor, verifier actor, DeepSpeed learner,
  weight sync and its health check each step), `step()` timed from this process;
* TRL with transformers generation, and TRL with `use_vllm=True, vllm_mode="colocate"` (recorded as an error if
  it cannot run here), each in its own subprocess (benchmarks.trl_arm), steps timed by a trainer callback.

The first step of every side is a warm-up and is dropped (caches, allocator growth); the rest give
medians. Sides run one after the other (one side's engines would otherwise compete for the 2 cores); drift over
the run is therefore not cancelled, so compare ratios from one invocation only.

Sizes: `tiny` warms the demo model up into a base model first (short-answer SFT, as the demo and the test
fixture do), so rewards vary and the reward curves of both sides are comparable; completions end naturally.
`small` is randomly initialised (a warm-up would cost minutes per run): its rewards are zero on both sides, and
completions are held at exactly `--small-tokens` (min = max tokens) so both sides do the same work.

Threads and niceness: every process gets OMP_NUM_THREADS=`--threads` (default 1) and Ray workers run at
niceness 0 like TRL's process; benchmarks.workload.quiet_env says why.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import format_table, median, ratio, write_result
from benchmarks.workload import bench_config, quiet_env

SPLIT_KEYS = ("generate", "score", "train", "sync", "sync_engine_load", "health_check", "overhead")


@dataclass(frozen=True)
class Shape:
    prompts: int
    group: int
    tokens: int
    micro_batch: int
    steps: int
    warmup: int
    fixed_length: bool


def shapes(args) -> dict[str, Shape]:
    if args.quick:
        return {"tiny": Shape(4, 4, 32, 16, 2, 1, False), "small": Shape(4, 4, 32, 16, 1, 1, True)}
    return {"tiny": Shape(8, 8, 64, 32, 5, 1, False),
            "small": Shape(16, 8, args.small_tokens, 32, args.small_steps, 1, True)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=None, choices=["tiny", "small"],
                   help="default: tiny small (--quick: tiny)")
    p.add_argument("--quick", action="store_true", help="tiny size only, 4 prompts x 4 x 32 tokens, 1+2 steps")
    p.add_argument("--small-tokens", type=int, default=256)
    p.add_argument("--small-steps", type=int, default=3, help="measured steps at the small size (after 1 warm-up)")
    p.add_argument("--no-trl-vllm", action="store_true", help="skip the TRL + vLLM colocate attempt")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process, both sides")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--work-dir", default="runs/bench")
    args = p.parse_args(argv)
    args.sizes = args.sizes or (["tiny"] if args.quick else ["tiny", "small"])
    return args


def time_split(step_timings: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Median seconds of each part of a synergy-ray step and its share of the median step."""
    step = median([t["step"] for t in step_timings])
    out = {}
    for key in SPLIT_KEYS:
        sec = median([t.get(key, 0.0) for t in step_timings])
        out[key] = {"seconds": sec, "share": ratio(sec, step)}
    out["step"] = {"seconds": step, "share": 1.0}
    return out


# ---------------------------------------------------------------- the two sides


def prepare_size(size: str, shape: Shape, args):
    """Config, prepared model and data, and the model both sides start from (a warmed-up base for tiny)."""
    from synergy_ray.run import pipeline, stages
    from synergy_ray.cluster.ray_session import connect

    overrides = [f"rl.prompt_batch={shape.prompts}", f"rl.mini_batch={shape.prompts}", "rl.kl_coef=0",
                 f"rollout.group_size={shape.group}", f"rollout.max_tokens={shape.tokens}",
                 f"rollout.min_tokens={shape.tokens if shape.fixed_length else 0}",
                 f"rollout.max_num_seqs={max(shape.prompts * shape.group, 8)}",
                 f"learner.micro_batch_size={shape.micro_batch}", f"learner.lr={args.lr}",
                 # a short-answer warm-up (tiny only) that gives GRPO a reward signal, like the smoke_base fixture
                 "model.make_base.epochs=3", "model.make_base.batch_size=16", "model.make_base.micro_batch_size=16",
                 "model.make_base.lr=3e-3"]
    cfg = bench_config(size, args.work_dir, overrides)
    prepared = pipeline.prepare(cfg)
    if size == "tiny":
        connect(cfg)
        start = stages.make_base(cfg, prepared)
    else:
        start = Path(prepared.model_path)
    return cfg, prepared, str(start)


def run_synergy(cfg, prepared, start_model: str, shape: Shape) -> dict:
    import ray

    from synergy_ray.coordinator import Coordinator
    from synergy_ray.cluster.ray_session import connect
    from synergy_ray.strategies import build

    connect(cfg)
    work = tempfile.mkdtemp(prefix="bench_rl_", dir=str(prepared.run_dir))
    t = time.perf_counter()
    handle = ray.remote(Coordinator).options(num_cpus=0).remote(cfg, start_model, str(prepared.train_path), work,
                                                                    build(cfg))
    ray.get(handle.state_dict.remote())  # the constructor has started every role
    startup = time.perf_counter() - t
    steps = []
    for i in range(shape.warmup + shape.steps):
        t = time.perf_counter()
        s = ray.get(handle.step.remote())
        steps.append({"wall": time.perf_counter() - t, "timings": s.timings, "reward": s.reward_mean,
                      "completion_tokens_mean": s.response_tokens_mean, "rollouts": s.num_rollouts,
                      "updates": s.learner.updates, "sync_logprob_gap": s.sync_logprob_gap})
        print(f"[synergy] step {i + 1}: {steps[-1]['wall']:.2f} s reward {s.reward_mean:.3f}", flush=True)
    memory = ray.get(handle.peak_rss.remote())
    ray.kill(handle)
    ray.shutdown()
    return {"startup_seconds": startup, "steps": steps, "peak_rss_mib": memory}


def run_trl(cfg, prepared, start_model: str, shape: Shape, use_vllm: bool, seed: int) -> dict:
    spec = {"model_path": start_model, "train_path": str(prepared.train_path), "prompt_suffix": cfg.data.prompt_suffix,
            "prompt_batch": shape.prompts, "group_size": shape.group, "max_tokens": shape.tokens,
            "fixed_length": shape.fixed_length, "micro_batch": shape.micro_batch, "lr": cfg.learner.lr,
            "temperature": cfg.rollout.temperature, "steps": shape.steps, "warmup": shape.warmup,
            "use_vllm": use_vllm, "seed": seed, "max_model_len": cfg.rollout.max_model_len,
            "output_dir": tempfile.mkdtemp(prefix="bench_trl_", dir=str(prepared.run_dir))}
    spec_path = Path(spec["output_dir"]) / "spec.json"
    out_path = Path(spec["output_dir"]) / "result.json"
    spec_path.write_text(json.dumps(spec))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.trl_arm", str(spec_path), str(out_path)],
                          capture_output=True, text=True)
    result = json.loads(out_path.read_text()) if out_path.exists() else {
        "error": f"exit code {proc.returncode}, no result", "stderr_tail": proc.stderr[-3000:]}
    result["process_seconds"] = time.perf_counter() - t
    if "error" in result:
        print(f"[trl{' vllm' if use_vllm else ''}] failed: {result['error']}", flush=True)
    else:
        for i, (w, r) in enumerate(zip(result["step_seconds"], result["reward"])):
            print(f"[trl{' vllm' if use_vllm else ''}] step {i + 1}: {w:.2f} s reward {r:.3f}", flush=True)
    return result


def summarize(size_results: dict, warmup: int) -> dict:
    """Medians over the measured steps, the ratio synergy / TRL, reward curves side by side."""
    syn = size_results["synergy"]["steps"][warmup:]
    out = {"synergy_step_median_s": median([s["wall"] for s in syn]),
           "synergy_time_split": time_split([s["timings"] for s in syn]),
           "reward_curves": {"synergy": [s["reward"] for s in size_results["synergy"]["steps"]]}}
    for arm in ("trl", "trl_vllm"):
        res = size_results.get(arm)
        if res and "error" not in res and len(res["step_seconds"]) > warmup:
            out[f"{arm}_step_median_s"] = median(res["step_seconds"][warmup:])
            if len(res.get("generate_seconds", [])) > warmup:  # TRL's sampling alone, for the time split
                out[f"{arm}_generate_median_s"] = median(res["generate_seconds"][warmup:])
            out[f"ratio_synergy_to_{arm}"] = ratio(out["synergy_step_median_s"], out[f"{arm}_step_median_s"])
            out["reward_curves"][arm] = res["reward"]
    return out


def print_tables(results: dict) -> None:
    rows = []
    for size, r in results.items():
        s = r["summary"]
        rows.append([size, s["synergy_step_median_s"], s.get("trl_step_median_s"), s.get("ratio_synergy_to_trl"),
                     s.get("trl_vllm_step_median_s"), s.get("ratio_synergy_to_trl_vllm")])
    print(format_table(["size", "synergy-ray s/step", "TRL s/step", "ratio (goal <= 0.33)", "TRL+vLLM s/step",
                        "ratio to TRL+vLLM"], rows))
    print("\ngeneration alone (median s/step):")
    print(format_table(["size", "synergy-ray (vLLM actor)", "TRL"], [
        [size, r["summary"]["synergy_time_split"]["generate"]["seconds"], r["summary"].get("trl_generate_median_s")]
        for size, r in results.items()]))
    for size, r in results.items():
        split = r["summary"]["synergy_time_split"]
        print(f"\nsynergy-ray time split, {size} (median seconds, share of the median step):")
        print(format_table(["part", "seconds", "share"], [[k, v["seconds"], v["share"]] for k, v in split.items()]))
        curves = r["summary"]["reward_curves"]
        n = max(len(c) for c in curves.values())
        print(f"\nreward per step, {size}:")
        print(format_table(["step", *curves], [[i + 1, *[c[i] if i < len(c) else None for c in curves.values()]]
                                               for i in range(n)]))
        mem = r["synergy"]["peak_rss_mib"]
        print(f"\npeak memory (MiB), {size}:")
        mem_rows = [[role, m["self"], m["children"], m["total"]] for role, m in mem.items()]
        for arm in ("trl", "trl_vllm"):
            if arm in r and "peak_rss_mib" in r[arm]:
                m = r[arm]["peak_rss_mib"]
                mem_rows.append([f"{arm} (one process)", m["self"], m["children"], m["total"]])
        print(format_table(["role", "process", "children", "total"], mem_rows))


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_env(args.threads)
    results, settings = {}, {"threads": args.threads, "lr": args.lr, "sizes": {}}
    for size in args.sizes:
        shape = shapes(args)[size]
        cfg, prepared, start_model = prepare_size(size, shape, args)
        settings["sizes"][size] = {**shape.__dict__, "parameters": prepared.num_parameters, "start_model":
                                   "warmed-up base" if size == "tiny" else "random init"}
        r = {"synergy": run_synergy(cfg, prepared, start_model, shape),
             "trl": run_trl(cfg, prepared, start_model, shape, use_vllm=False, seed=cfg.run.seed)}
        if not args.no_trl_vllm:
            r["trl_vllm"] = run_trl(cfg, prepared, start_model, shape, use_vllm=True, seed=cfg.run.seed)
        r["summary"] = summarize(r, shape.warmup)
        results[size] = r
    print_tables(results)
    path = write_result("step_vs_trl" + ("_quick" if args.quick else ""), settings, results)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
