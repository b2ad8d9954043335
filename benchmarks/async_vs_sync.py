"""Async mode against the synchronous loop: same config, same model, one invocation, median step time.

Async (`rl.async_mode: true`) draws step t+1's prompts and starts their generation before step t trains, so
generation and the learner overlap; those rollouts are one weight version stale and truncated importance
sampling (`rl.tis_cap`) corrects for it. Both arms here set `rl.tis_cap=2.0`, so they differ only in the
overlap. Arms alternate (sync, async, sync, async, ...) so slow drift of a shared machine hits both alike.

    python -m benchmarks.async_vs_sync                 # tiny model, 8 prompts x 8 completions x 64 tokens
    python -m benchmarks.async_vs_sync --size small    # 14M model, 16 prompts x 8 x up to 256 tokens
    python -m benchmarks.async_vs_sync --quick         # a couple of minutes

Both sizes start from a base warmed up on short answers (completions end naturally), and the roles get the
cores the way the config gives them to a user: one CPU for the learner, one for the generator
(`cluster.cpus_per_learner`, `cluster.cpus_per_generator`), one thread each.

What limits the ratio on this machine: the generator and the learner share 2 CPU cores, so overlapping them
mostly trades time slices instead of adding compute; on GPUs with the disaggregated layout they run on
different devices and a step tends to max(generate, train) instead of their sum.
"""

from __future__ import annotations

import argparse
import dataclasses

from benchmarks.common import format_table, interleaved, median, ratio, write_result
from benchmarks.step_vs_trl import Shape, prepare_size, run_synergy
from benchmarks.workload import quiet_env


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="4 prompts x 4 x 32 tokens, 1 warm-up + 2 steps, 1 repeat")
    p.add_argument("--size", choices=["tiny", "small"], default="tiny")
    p.add_argument("--repeats", type=int, default=2, help="runs of each arm, alternating")
    p.add_argument("--steps", type=int, default=4, help="measured steps per run (after one warm-up step)")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process, both arms")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--work-dir", default="runs/bench")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.steps = 1, 2
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_env(args.threads)
    shape = (Shape(4, 4, 32, 16, args.steps, 1, False) if args.quick else
             Shape(16, 8, 256, 32, args.steps, 1, False) if args.size == "small" else
             Shape(8, 8, 64, 32, args.steps, 1, False))
    cfg, prepared, start = prepare_size(args.size, shape, args)
    runs: dict[str, list[dict]] = {"sync": [], "async": []}
    for repeat, arm in interleaved(["sync", "async"], args.repeats):
        arm_cfg = cfg.model_copy(update={"rl": cfg.rl.model_copy(update={
            "async_mode": arm == "async", "tis_cap": 2.0})})
        print(f"== {arm} (repeat {repeat + 1}/{args.repeats})", flush=True)
        runs[arm].append(run_synergy(arm_cfg, prepared, start, shape))
    measured = {arm: [s for r in rs for s in r["steps"][shape.warmup:]] for arm, rs in runs.items()}
    step = {arm: median([s["wall"] for s in steps]) for arm, steps in measured.items()}
    parts = {arm: {k: median([s["timings"].get(k, 0.0) for s in steps])
                   for k in ("generate", "generate_wait", "score", "train", "sync")}
             for arm, steps in measured.items()}
    summary = {
        "step_seconds_median": step, "async_over_sync": ratio(step["async"], step["sync"]), "parts_median": parts,
        "reward_per_step": {arm: [[s["reward"] for s in r["steps"]] for r in rs] for arm, rs in runs.items()},
    }
    print(format_table(["arm", "step s", "generate s", "generate_wait s", "train s", "sync s"],
                       [[arm, step[arm], parts[arm]["generate"], parts[arm]["generate_wait"], parts[arm]["train"],
                         parts[arm]["sync"]] for arm in ("sync", "async")]))
    print(f"async / sync step time: {summary['async_over_sync']:.3f}")
    name = "async_vs_sync" + ("_quick" if args.quick else "" if args.size == "tiny" else f"_{args.size}")
    write_result(name, {"shape": dataclasses.asdict(shape), "size": args.size, "repeats": args.repeats,
                                   "threads": args.threads, "lr": args.lr, "tis_cap": 2.0},
                 {"summary": summary, "runs": runs})
    return summary


if __name__ == "__main__":
    main()
