"""The learner's peak memory with gradient checkpointing on and off, on the same batch.

    python -m benchmarks.checkpointing_memory [--size small] [--batch 8] [--tokens 512]

Each arm runs in a fresh process (peak resident memory is per process): the learner's own set-up
(`model.training.build_engine`, DeepSpeed, one rank) and one forward/backward/step of the GRPO-style token
log-prob loss on random tokens. It reports each arm's peak RSS, its growth over the loaded engine, the
step time, and the ratios on/off. Arms alternate (off, on, off, on, ...) and medians are compared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from benchmarks.common import format_table, interleaved, median, ratio, write_result
from benchmarks.workload import SIZES


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="small", choices=sorted(SIZES))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--work-dir", default="runs/bench")
    p.add_argument("--arm", choices=["on", "off"], help=argparse.SUPPRESS)  # one arm, in a child process
    p.add_argument("--model", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def one_arm(args) -> dict:
    import os
    import time

    import deepspeed
    import torch

    from synergy_ray.core.logprobs import gather_token_logprobs, shift_for_next_token
    from synergy_ray.config import LearnerConfig, ModelConfig
    from synergy_ray.model.training import EngineSetup, build_engine
    from synergy_ray.processes.profiling import mark_rss, peak_rss_mib

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533", RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    deepspeed.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)
    learner = LearnerConfig(micro_batch_size=args.batch, lr=1e-5, gradient_checkpointing=args.arm == "on")
    engine = build_engine(EngineSetup(args.model, ModelConfig(), learner), 1)
    engine.train()
    vocab = engine.module.config.text_config.vocab_size
    ids = torch.randint(10, vocab, (args.batch, args.tokens), generator=torch.Generator().manual_seed(0))
    loaded = mark_rss()
    start = time.perf_counter()
    logits = engine.module.model.text_model(input_ids=ids).last_hidden_state @ engine.module.lm_head.weight.T
    logits, targets, _ = shift_for_next_token(logits, ids)
    loss = -gather_token_logprobs(logits, targets).mean()
    engine.backward(loss)
    engine.step()
    seconds = time.perf_counter() - start
    return {"loaded_mib": loaded, "peak_mib": peak_rss_mib()["self"], "seconds": seconds, "loss": float(loss)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.arm:
        print("ARM " + json.dumps(one_arm(args)), flush=True)
        return {}
    from synergy_ray.run import pipeline
    from benchmarks.workload import bench_config

    model = pipeline.ensure_model(bench_config(args.size, args.work_dir))
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _, arm in interleaved(["off", "on"], args.repeats):
        out = subprocess.run([sys.executable, "-m", "benchmarks.checkpointing_memory", "--arm", arm, "--model",
                              str(model), "--batch", str(args.batch), "--tokens", str(args.tokens)],
                             capture_output=True, text=True, check=True)
        runs[arm].append(json.loads(next(x for x in out.stdout.splitlines() if x.startswith("ARM "))[4:]))
    growth = {a: median([r["peak_mib"] - r["loaded_mib"] for r in rs]) for a, rs in runs.items()}
    peak = {a: median([r["peak_mib"] for r in rs]) for a, rs in runs.items()}
    secs = {a: median([r["seconds"] for r in rs]) for a, rs in runs.items()}
    results = {"runs": runs, "peak_mib_median": peak, "step_growth_mib_median": growth, "seconds_median": secs,
               "peak_ratio_on_off": ratio(peak["on"], peak["off"]),
               "growth_ratio_on_off": ratio(growth["on"], growth["off"]),
               "time_ratio_on_off": ratio(secs["on"], secs["off"]),
               "same_loss": all(abs(a["loss"] - b["loss"]) < 1e-5 for a, b in zip(runs["on"], runs["off"]))}
    path = write_result("checkpointing_memory", {k: v for k, v in vars(args).items() if k not in ("arm", "model")},
                        results)
    print(format_table(["checkpointing", "peak RSS (MiB)", "growth in the step (MiB)", "step (s)"],
                       [(a, peak[a], growth[a], secs[a]) for a in ("off", "on")]))
    print(f"peak on/off {results['peak_ratio_on_off']:.2f}, step growth on/off {results['growth_ratio_on_off']:.2f}, "
          f"time on/off {results['time_ratio_on_off']:.2f}; wrote {path}")
    return results


if __name__ == "__main__":
    main()
