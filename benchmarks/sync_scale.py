"""Weight sync at a size where copies matter: a random Idefics3 of ~120M parameters, 2 learner ranks under
ZeRO-3, one generator, on CPU.

    python -m benchmarks.sync_scale [--steps 3] [--profiles 6] [--bucket-mib 64]
    python -m benchmarks.sync_scale --baseline adc7a50 --repeats 2   # this tree against a commit, alternated

Each run is a fresh process with its own local Ray: a few real RL steps (each ends with a sync), then syncs
profiled one at a time: every role's resident memory just before (`profiling.mark_rss`, which also restarts
the peak) and its peak during the sync, the bytes and buckets moved, and the sync's share of the step. Goals
(issue 13): the coordinator grows by less than 5% of the model's bytes during a sync; no process grows by more
than one bucket plus 10% of the model; the sync is under 5% of the step. The memory goals are judged on each
process's largest growth over all profiled syncs (the generator's varies from sync to sync with its
allocator); each goal is reported met or missed, for this tree's runs.

With `--baseline` the commit runs from a `git worktree` (both arms use this checkout's `.venv`, model and
data), the arms alternate (baseline, this tree, ...), and the sync seconds of the two are compared.

KL is off (`rl.kl_coef=0`): a reference copy per rank would only add a constant to the learner ranks.
"""

from __future__ import annotations

import argparse
import contextlib
import json

from benchmarks.common import (ROOT, baseline_tree, format_table, interleaved, median, ratio, run_arm, short_rev,
                               write_result)
from benchmarks.workload import quiet_env

SHAPE = {"text_hidden": 768, "text_layers": 12, "text_heads": 12, "text_intermediate": 3072,
         "vision_hidden": 128, "vision_layers": 2, "vision_heads": 2, "vision_intermediate": 256}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3, help="RL steps (each with its sync)")
    p.add_argument("--profiles", type=int, default=6, help="syncs profiled one at a time after the steps")
    p.add_argument("--bucket-mib", type=float, default=64.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work-dir", default="runs/bench")
    p.add_argument("--baseline", help="a commit to compare against (git revision); runs alternate with it")
    p.add_argument("--repeats", type=int, default=1, help="runs of each arm, alternating")
    return p.parse_args(argv)


def overrides(args) -> list[str]:
    """The run's config on top of `configs/demo_cpu.yaml` (the same for both arms)."""
    work = (ROOT / args.work_dir).resolve()
    return [
        f"run.output_dir={work}", "run.name=sync_scale", f"model.path={work / 'sync_scale' / 'model_init'}",
        "data.num_per_level=16", "data.eval_per_level=2", *[f"model.build_tiny.{k}={v}" for k, v in SHAPE.items()],
        "model.make_base=null", "rl.prompt_batch=4", "rl.mini_batch=4", "rollout.group_size=4",
        "rollout.max_tokens=32", "rollout.num_generators=1", "rollout.max_generators=1", "rl.kl_coef=0",
        "learner.num_workers=2", "learner.zero_stage=3", "learner.micro_batch_size=8",
        f"learner.sync_bucket_mib={args.bucket_mib}", "cluster.cpus_per_learner=0.5",
        "cluster.cpus_per_generator=0.5", "rollout.gpu_memory_utilization=0.1"]


# One run, in each arm's process (that arm's tree first on PYTHONPATH): steps, then profiled syncs.
ARM = r"""
import json, sys
import ray
import synergy_ray
from synergy_ray.config import load_config
from synergy_ray.coordinator import Coordinator
from synergy_ray.run import pipeline
from synergy_ray.strategies import build

cfg = load_config("configs/demo_cpu.yaml", json.loads(sys.argv[1]))
steps, profiles = int(sys.argv[2]), int(sys.argv[3])
prepared = pipeline.prepare(cfg)
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
coordinator = ray.remote(Coordinator).options(num_cpus=0).remote(
    cfg, prepared.model_path, str(prepared.train_path), str(prepared.run_dir / "rl"), build(cfg))
try:
    stats = [ray.get(coordinator.step.remote()) for _ in range(steps)]
    profiled = [ray.get(coordinator.profile_sync.remote()) for _ in range(profiles)]
finally:
    ray.get(coordinator.shutdown.remote())
    ray.shutdown()
print("RESULT " + json.dumps({"tree": synergy_ray.__file__, "timings": [s.timings for s in stats],
                             "gaps": [s.sync_logprob_gap for s in stats], "profiles": profiled}))
"""


def summarize(run: dict) -> dict:
    """One run's sync seconds, shares of the step and profiles."""
    timings = run["timings"]
    return {
        "step_seconds": [t["step"] for t in timings], "sync_seconds_in_step": [t["sync"] for t in timings],
        "engine_load_seconds_in_sync": [t.get("sync_engine_load") for t in timings],
        "sync_share_median": median([t["sync"] / t["step"] for t in timings]),
        "gaps": run["gaps"], "profiles": run["profiles"],
        "profiled_sync_seconds": [p["seconds"] for p in run["profiles"]],
    }


def goals(profiles: list[dict], model_bytes: int, bucket_bytes: float, sync_share: float) -> dict:
    """The issue's goals, judged on the largest growth each process showed over all profiled syncs."""
    mib = 2**20
    growth = {k: max(p["peak_mib"][k] - p["before_mib"][k] for p in profiles) for k in profiles[0]["peak_mib"]}
    allowed = (bucket_bytes + 0.1 * model_bytes) / mib
    return {
        "max_growth_mib": growth,
        "coordinator_growth_below_5pct_of_model": growth["coordinator"] < 0.05 * model_bytes / mib,
        "every_process_below_bucket_plus_10pct": all(g <= allowed for g in growth.values()),
        "allowed_growth_mib": allowed,
        "sync_below_5pct_of_step": sync_share < 0.05,
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_env(args.threads)
    arms = ["baseline", "this_tree"] if args.baseline else ["this_tree"]
    head = short_rev("HEAD")
    rev = short_rev(args.baseline) if args.baseline else None
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    with baseline_tree(rev) if rev else contextlib.nullcontext() as base:
        trees = {"baseline": base, "this_tree": ROOT}
        for repeat, arm in interleaved(arms, args.repeats):
            run = summarize(run_arm(ARM, trees[arm], json.dumps(overrides(args)), str(args.steps),
                                    str(args.profiles), timeout_s=1800))
            print(f"== {arm} (repeat {repeat + 1}/{args.repeats}): sync {run['sync_share_median']:.1%} of the "
                  f"step, profiled syncs {', '.join(f'{x:.2f}' for x in run['profiled_sync_seconds'])} s", flush=True)
            runs[arm].append(run)
    mine = runs["this_tree"]
    profiles = [p for run in mine for p in run["profiles"]]
    model_bytes = profiles[0]["bytes"]
    shares = {arm: [r["sync_share_median"] for r in rs] for arm, rs in runs.items()}
    synced = {arm: [x for r in rs for x in r["profiled_sync_seconds"]] for arm, rs in runs.items()}
    results = {
        "commits": {"this_tree": head, "baseline": rev}, "model_bytes_synced": model_bytes,
        "buckets": profiles[0]["buckets"], "runs": runs,
        "sync_share_median": {arm: median(v) for arm, v in shares.items()},
        "profiled_sync_seconds_median": {arm: median(v) for arm, v in synced.items()},
        "goals": goals(profiles, model_bytes, args.bucket_mib * 2**20, median(shares["this_tree"])),
    }
    if rev:
        results["ratio_sync_seconds_this_tree_to_baseline"] = ratio(
            results["profiled_sync_seconds_median"]["this_tree"], results["profiled_sync_seconds_median"]["baseline"])
    print(format_table(["arm", "commit", "sync share of the step (median of each run)", "profiled sync s (median)"],
                       [[arm, rev if arm == "baseline" else head, ", ".join(f"{x:.1%}" for x in shares[arm]),
                         results["profiled_sync_seconds_median"][arm]] for arm in arms]))
    g = results["goals"]
    rows = [(k, profiles[-1]["before_mib"][k], median([p["peak_mib"][k] - p["before_mib"][k] for p in profiles]), v)
            for k, v in g["max_growth_mib"].items()]
    print(format_table(["process", "RSS before the last (MiB)", f"median growth over {len(profiles)} syncs (MiB)",
                        "largest growth (MiB)"], rows))
    print(f"synced {model_bytes / 2**20:.0f} MiB in {profiles[0]['buckets']} buckets; "
          f"allowed growth {g['allowed_growth_mib']:.0f} MiB")
    if rev:
        print(f"profiled sync seconds, this tree / baseline: {results['ratio_sync_seconds_this_tree_to_baseline']:.2f}")
    print({k: v for k, v in g.items() if isinstance(v, bool)})
    print(f"wrote {write_result('sync_scale', vars(args), results)}")
    return results


if __name__ == "__main__":
    main()
