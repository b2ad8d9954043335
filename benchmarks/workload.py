"""The model sizes and the run config the benchmarks share, built on the demo config.

`tiny` is the demo's model (TinyVLMConfig defaults, 0.48M parameters). `small` is the same Idefics3
architecture at 14M parameters: head_dim 64 (vLLM's CPU attention rejects 16), 4 text layers of width 512.
Each size gets its own directory under the work dir, prepared once (`pipeline.prepare` reuses what exists).
"""

from __future__ import annotations

import os
from pathlib import Path

SIZES: dict[str, dict[str, int]] = {
    "tiny": {},  # TinyVLMConfig defaults = the demo's model
    "small": {"text_hidden": 512, "text_layers": 4, "text_heads": 8, "text_intermediate": 1536,
              "vision_hidden": 128, "vision_layers": 2, "vision_heads": 2, "vision_intermediate": 256},
}


def bench_config(size: str, work_dir: str | Path, overrides: list[str] = ()):
    """The demo config at `size`, with its own small synthetic data set under `work_dir/size`."""
    from synergy_ray.config import load_config

    if size not in SIZES:
        raise ValueError(f"size: expected one of {sorted(SIZES)}, got {size!r}")
    work = Path(work_dir).resolve()
    shape = [f"model.build_tiny.{k}={v}" for k, v in SIZES[size].items()]
    return load_config("configs/demo_cpu.yaml", [
        f"run.output_dir={work}", f"run.name={size}", f"model.path={work / size / 'model_init'}",
        "data.num_per_level=160", "data.eval_per_level=4", *shape, *overrides])


def quiet_env(threads: int) -> None:
    """Environment every benchmark process sets before importing vLLM, Ray or TRL; children inherit it.

    Threads: every process (bare vLLM, each Ray role, TRL's trainer) gets OMP_NUM_THREADS=`threads` (Ray then
    leaves it alone). The default of one thread is for a machine shared with other jobs: there, an OpenMP team
    wider than the free cores spins at every barrier waiting for a descheduled thread, and a step slows down
    by an order of magnitude (TRL's tiny step measured 5 s with two threads and 0.2 s with one, load ~8 on 2
    cores). On a dedicated machine pass the core count; both sides of every comparison get the same value.

    Niceness: Ray starts its workers at niceness 15 by default while this process (bare vLLM, TRL) runs at 0,
    which on a shared machine alone gives the actors a smaller share of the cores; worker niceness 0 puts every
    arm on equal terms.

    Ray: `RAY_ADDRESS=local` makes `ray.init` start the benchmark's own Ray even when another local Ray is
    running on the machine (without it, `ray.init()` joins the latest one it finds).
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("RAY_worker_niceness", "0")
    os.environ.setdefault("RAY_ADDRESS", "local")
