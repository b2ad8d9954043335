"""Weight sync at a size where copies matter: a random Idefics3 of ~120M parameters, 2 learner ranks under
ZeRO-3, one generator, on CPU.

    python -m benchmarks.sync_scale [--steps 3] [--bucket-mib 64]

Runs a few real RL steps (each ends with a sync), then profiles syncs one at a time: every role's resident
memory just before (`profiling.mark_rss`, which also restarts the peak) and its peak during the sync, the
bytes and buckets moved, and the sync's share of the step. Goals (issue 13): the coordinator grows by less
than 5% of the model's bytes during a sync; no process grows by more than one bucket plus 10% of the model;
the sync is under 5% of the step. Each goal is reported met or missed.

KL is off (`rl.kl_coef=0`): a reference copy per rank would only add a constant to the learner ranks.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.common import format_table, write_result
from benchmarks.workload import quiet_env

SHAPE = {"text_hidden": 768, "text_layers": 12, "text_heads": 12, "text_intermediate": 3072,
         "vision_hidden": 128, "vision_layers": 2, "vision_heads": 2, "vision_intermediate": 256}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3, help="RL steps (each with its sync)")
    p.add_argument("--profiles", type=int, default=2, help="syncs profiled one at a time after the steps")
    p.add_argument("--bucket-mib", type=float, default=64.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work-dir", default="runs/bench")
    return p.parse_args(argv)


def config(args):
    from pathlib import Path

    from synergy_ray.config import load_config

    work = Path(args.work_dir).resolve()
    return load_config("configs/demo_cpu.yaml", [
        f"run.output_dir={work}", "run.name=sync_scale", f"model.path={work / 'sync_scale' / 'model_init'}",
        "data.num_per_level=16", "data.eval_per_level=2", *[f"model.build_tiny.{k}={v}" for k, v in SHAPE.items()],
        "model.make_base=null", "rl.prompt_batch=4", "rl.mini_batch=4", "rollout.group_size=4",
        "rollout.max_tokens=32", "rollout.num_generators=1", "rollout.max_generators=1", "rl.kl_coef=0",
        "learner.num_workers=2", "learner.zero_stage=3", "learner.micro_batch_size=8",
        f"learner.sync_bucket_mib={args.bucket_mib}", "cluster.cpus_per_learner=0.5",
        "cluster.cpus_per_generator=0.5", "rollout.gpu_memory_utilization=0.1"])


def goals(profile: dict, model_bytes: int, bucket_bytes: float, sync_share: float) -> dict:
    mib = 2**20
    growth = {k: profile["peak_mib"][k] - profile["before_mib"][k] for k in profile["peak_mib"]}
    allowed = (bucket_bytes + 0.1 * model_bytes) / mib
    return {
        "growth_mib": growth,
        "coordinator_growth_below_5pct_of_model": growth["coordinator"] < 0.05 * model_bytes / mib,
        "every_process_below_bucket_plus_10pct": all(g <= allowed for g in growth.values()),
        "allowed_growth_mib": allowed,
        "sync_below_5pct_of_step": sync_share < 0.05,
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_env(args.threads)
    import ray

    from synergy_ray.run import pipeline
    from synergy_ray.coordinator import Coordinator
    from synergy_ray.strategies import build

    cfg = config(args)
    prepared = pipeline.prepare(cfg)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    coordinator = ray.remote(Coordinator).options(num_cpus=0).remote(
        cfg, prepared.model_path, str(prepared.train_path), str(prepared.run_dir / "rl"), build(cfg))
    try:
        steps = [ray.get(coordinator.step.remote()) for _ in range(args.steps)]
        profiles = [ray.get(coordinator.profile_sync.remote()) for _ in range(args.profiles)]
    finally:
        ray.get(coordinator.shutdown.remote())
        ray.shutdown()
    timings = [s.timings for s in steps]
    share = statistics.median(t["sync"] / t["step"] for t in timings)
    model_bytes = profiles[0]["bytes"]
    results = {
        "model_bytes_synced": model_bytes, "buckets": profiles[0]["buckets"],
        "step_seconds": [t["step"] for t in timings], "sync_seconds_in_step": [t["sync"] for t in timings],
        "engine_load_seconds_in_sync": [t.get("sync_engine_load") for t in timings],
        "sync_share_median": share, "gaps": [s.sync_logprob_gap for s in steps], "profiles": profiles,
        "goals": goals(profiles[-1], model_bytes, args.bucket_mib * 2**20, share),
    }
    path = write_result("sync_scale", vars(args), results)
    g = results["goals"]
    rows = [(k, profiles[-1]["before_mib"][k], profiles[-1]["peak_mib"][k], v) for k, v in g["growth_mib"].items()]
    print(format_table(["process", "RSS before (MiB)", "peak during sync (MiB)", "growth (MiB)"], rows))
    print(f"synced {model_bytes / 2**20:.0f} MiB in {profiles[0]['buckets']} buckets; sync {share:.1%} of the step; "
          f"allowed growth {g['allowed_growth_mib']:.0f} MiB")
    print({k: v for k, v in g.items() if isinstance(v, bool)})
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
