"""RL start-up: how long the coordinator takes to bring its roles up, this tree against a baseline commit.

    python -m benchmarks.role_startup --baseline 07a139f      # 2 learner ranks (ZeRO-3), 2 generators
    python -m benchmarks.role_startup --baseline 07a139f --generators 1 --ranks 1

Each arm is a fresh process with its own local Ray that builds a `Coordinator` on the smoke model (the shape of
`tests/integration/test_rl_loop.py` by default) and reports the seconds from the constructor's call to its
return, with every role up (engines started, learner ranks set up). The baseline runs from a `git worktree` of
`--baseline` (and in that directory); both arms use this checkout's `.venv`, model and data. Arms alternate
(baseline, this tree, ...), so slow drift of a shared machine hits both alike.
"""

from __future__ import annotations

import argparse

from benchmarks.common import (ROOT, baseline_tree, format_table, interleaved, median, ratio, run_arm, short_rev,
                               write_result)
from benchmarks.workload import quiet_env

# Runs in each arm's process, with that arm's tree first on PYTHONPATH (Ray's workers inherit it).
ARM = r"""
import json, sys, time
import ray
import synergy_ray
from synergy_ray.config import load_config
from synergy_ray.coordinator import Coordinator
from synergy_ray.run import pipeline
from synergy_ray.strategies import build

out_dir, generators, ranks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = load_config("configs/smoke_cpu.yaml", [
    f"run.output_dir={out_dir}", f"model.path={out_dir}/smoke/model_init", "strategy=rl",
    f"rollout.num_generators={generators}", f"rollout.max_generators={generators}",
    f"learner.num_workers={ranks}", "learner.zero_stage=3", "cluster.cpus_per_generator=0.5",
    "cluster.cpus_per_learner=0.25"])
prepared = pipeline.prepare(cfg)
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
start = time.perf_counter()
handle = ray.remote(Coordinator).options(num_cpus=0).remote(
    cfg, str(prepared.model_path), str(prepared.train_path), f"{out_dir}/work", build(cfg))
size = ray.get(handle.pool_size.remote())  # returns once the constructor has: every role up
seconds = time.perf_counter() - start
ray.get(handle.shutdown.remote())
print("RESULT " + json.dumps({"seconds": seconds, "pool": size, "tree": synergy_ray.__file__}))
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="the commit to compare against (a git revision)")
    p.add_argument("--generators", type=int, default=2)
    p.add_argument("--ranks", type=int, default=2, help="learner ranks (ZeRO-3)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each arm, alternating")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process, both arms")
    p.add_argument("--work-dir", default="runs/bench_startup")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_env(args.threads)
    work = (ROOT / args.work_dir).resolve()
    rev, head = short_rev(args.baseline), short_rev("HEAD")
    with baseline_tree(rev) as base:
        trees = {"baseline": base, "this_tree": ROOT}
        runs: dict[str, list[float]] = {"baseline": [], "this_tree": []}
        for repeat, arm in interleaved(["baseline", "this_tree"], args.repeats):
            r = run_arm(ARM, trees[arm], str(work), str(args.generators), str(args.ranks))
            print(f"== {arm} (repeat {repeat + 1}/{args.repeats}): roles up in {r['seconds']:.1f} s, "
                  f"{r['pool']} generator(s)", flush=True)
            runs[arm].append(r["seconds"])
    med = {arm: median(v) for arm, v in runs.items()}
    results = {"seconds": runs, "median_s": med, "ratio_this_tree_to_baseline": ratio(med["this_tree"],
                                                                                      med["baseline"])}
    print(format_table(["arm", "commit", "runs (s)", "median s"],
                       [[arm, rev if arm == "baseline" else head, ", ".join(f"{x:.1f}" for x in v), med[arm]]
                        for arm, v in runs.items()]))
    print(f"ratio (this tree / baseline): {results['ratio_this_tree_to_baseline']:.2f}")
    settings = {"baseline": rev, "this_tree": head, "generators": args.generators, "learner_ranks": args.ranks,
                "zero_stage": 3, "repeats": args.repeats, "threads": args.threads, "config": "configs/smoke_cpu.yaml"}
    print(write_result("role_startup", settings, results))
    return results


if __name__ == "__main__":
    main()
