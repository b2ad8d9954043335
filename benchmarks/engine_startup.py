"""A generator actor's start-up with its vLLM engine inline (`rollout.inline_engine`) against vLLM's own processes.

    python -m benchmarks.engine_startup [--repeats 3] [--size tiny]

Each arm starts one `Generator` actor on the benchmark model (`benchmarks.workload`, the demo's model by
default) in a local Ray of 2 CPUs, and reports the seconds from the actor's creation to its first answer
(engine up, processor and data loaded) and the processes the actor started. Arms alternate
(separate, inline, separate, ...) in one Ray session; each actor is closed and killed before the next starts.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import format_table, interleaved, median, ratio, write_result
from benchmarks.workload import SIZES, bench_config, quiet_env

ARMS = ("separate", "inline")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="tiny", choices=sorted(SIZES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--work-dir", default="runs/bench")
    return p.parse_args(argv)


def start_once(cfg, prepared, inline: bool) -> dict:
    import ray

    from synergy_ray.generator import Generator

    rollout = cfg.rollout.model_copy(update={"inline_engine": inline})
    begin = time.perf_counter()
    actor = ray.remote(Generator).options(num_cpus=1).remote(
        prepared.model_path, str(prepared.train_path), cfg.model, cfg.data, rollout)
    ray.get(actor.ready.remote())
    seconds = time.perf_counter() - begin
    processes = sorted(ray.get(actor.engine_pids.remote()).values())
    ray.get(actor.close.remote())
    ray.kill(actor)
    return {"seconds": seconds, "processes": processes}


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_env(1)
    import ray

    from synergy_ray.run import pipeline

    cfg = bench_config(args.size, args.work_dir, [])
    prepared = pipeline.prepare(cfg)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    try:
        for repeat, arm in interleaved(list(ARMS), args.repeats):
            runs[arm].append(start_once(cfg, prepared, arm == "inline"))
            print(f"[{arm}] round {repeat + 1}: {runs[arm][-1]['seconds']:.1f} s, "
                  f"processes {runs[arm][-1]['processes']}", flush=True)
    finally:
        ray.shutdown()
    summary = {arm: {"median_s": median([r["seconds"] for r in rs]), "min_s": min(r["seconds"] for r in rs),
                     "max_s": max(r["seconds"] for r in rs)} for arm, rs in runs.items()}
    ratios = {"inline_over_separate": ratio(summary["inline"]["median_s"], summary["separate"]["median_s"])}
    print(format_table(["arm", "median s", "min s", "max s"],
                       [[a, s["median_s"], s["min_s"], s["max_s"]] for a, s in summary.items()]))
    print(f"inline / separate: {ratios['inline_over_separate']:.2f}")
    settings = {**vars(args), "parameters": prepared.num_parameters}
    path = write_result("engine_startup", settings, {"summary": summary, "ratios": ratios, "runs": runs})
    print(f"wrote {path}")
    return {"summary": summary, "ratios": ratios}


if __name__ == "__main__":
    main()
