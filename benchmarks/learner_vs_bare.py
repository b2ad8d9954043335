"""The learner as the RL loop uses it against a bare torch forward / backward / AdamW loop on the same batch.

    python -m benchmarks.learner_vs_bare [--size small] [--lengths natural|fixed] [--precision fp32|bf16]
                                         [--checkpointing] [--repeats 4]

One process, one thread count, the same model directory and the same samples (prompts from the data set's
rows, completions of random tokens; `natural` lengths are drawn uniformly between an eighth of `--tokens` and
`--tokens`, `fixed` are all `--tokens`). Arms, each one optimiser step per round, rounds alternated
(bare, learner, learner-unsorted, bare, ...), the first round of every arm a dropped warm-up:

* `learner`: `LearnerWorker.train_step` itself, as the loop calls it on one rank (DeepSpeed, ZeRO stage of the
  config, micro-batches planned by `core.microbatch`: shortest first, within `--micro-batch` rows and
  `--micro-batch-tokens` padded tokens, the head run from the first completion position, the GRPO loss of
  `core.objective`);
* `learner-unsorted`: the same worker in arrival order, micro-batches of `--micro-batch` rows, to show what
  the plan buys;
* `bare`: the same model loaded with `load_policy`, vision frozen, plain `torch.optim.AdamW` with the same
  settings, micro-batches of the same size in arrival order, full logits, the clipped surrogate written out
  (on-policy ratio exp(logp - logp.detach())), token mean, gradient clipping; in bf16 it runs under CPU
  autocast with fp32 weights, the usual bare recipe, where the learner keeps bf16 weights and fp32 masters
  (DeepSpeed's bf16 section).

Reported per arm: median wall seconds and CPU seconds of a step (the process's CPU time over its wall time tells
contention, CPU time over the bare arm's tells extra work), completion tokens per second, and the step's peak
memory growth (Linux `VmHWM` reset before the step, after returning freed memory with `malloc_trim`, so one
arm's freed pages do not hide the next arm's growth). The worker's inputs do not cross Ray here: the loop's
extra cost of shipping a batch to the learner actor is in step_vs_trl's `train` part.
"""

from __future__ import annotations

import argparse
import ctypes
import random
import socket
import time

from benchmarks.common import format_table, interleaved, median, ratio, write_result
from benchmarks.workload import SIZES, bench_config, quiet_env

ARMS = ("bare", "learner", "learner-unsorted")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="small", choices=sorted(SIZES))
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--tokens", type=int, default=256, help="completion length (natural: the maximum)")
    p.add_argument("--lengths", choices=["natural", "fixed"], default="natural")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--checkpointing", action="store_true", help="gradient checkpointing on in every arm")
    p.add_argument("--micro-batch", type=int, default=32)
    p.add_argument("--micro-batch-tokens", type=int, default=None, help="learner.micro_batch_tokens (learner arm)")
    p.add_argument("--repeats", type=int, default=4, help="rounds of every arm; the first is a warm-up")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny model, 4 x 4 completions, 2 rounds")
    p.add_argument("--work-dir", default="runs/bench")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.prompts, args.group, args.tokens, args.repeats = "tiny", 4, 4, 32, 2
    return args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_samples(args, processor, data) -> list:
    """Prompts of the first `--prompts` rows (the learner's own encoding), `--group` random completions each,
    group-normalised advantages of random 0/1 rewards."""
    from synergy_ray.model.prompting import encode_prompt, prompt_text
    from synergy_ray.records import TrainSample

    rng = random.Random(0)
    vocab = processor.tokenizer.vocab_size
    special = set(processor.tokenizer.all_special_ids)
    samples = []
    for row in range(args.prompts):
        item = data[row]
        prompt = encode_prompt(processor, prompt_text(processor, item["question"], ""), item["image"])["input_ids"][0]
        rewards = [float(rng.random() < 0.5) for _ in range(args.group)]
        mean = sum(rewards) / len(rewards)
        sd = (sum((r - mean) ** 2 for r in rewards) / len(rewards)) ** 0.5
        for r in rewards:
            n = args.tokens if args.lengths == "fixed" else rng.randint(max(1, args.tokens // 8), args.tokens)
            ids = [t for t in (rng.randrange(vocab) for _ in range(2 * n)) if t not in special][:n]
            samples.append(TrainSample(row=row, prompt_ids=prompt.tolist(), completion_ids=ids,
                                       sampler_logprobs=[-1.0] * n, advantage=(r - mean) / (sd + 1e-6)))
    return samples


class BareLoop:
    """A plain torch loop over the same micro-batch tensors the learner would build, in arrival order."""

    def __init__(self, cfg, model_path: str, batches: list[dict], advantages: list, total_tokens: int):
        import torch

        from synergy_ray.model.loading import freeze_vision, load_policy, trainable_parameters

        self.cfg = cfg
        self.model = load_policy(model_path, "float32")  # bf16 runs under autocast with fp32 weights
        freeze_vision(self.model)
        if cfg.learner.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.model.config.use_cache = False
        self.params = trainable_parameters(self.model)
        t = cfg.learner
        self.opt = torch.optim.AdamW(self.params, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
        self.batches, self.advantages, self.total_tokens = batches, advantages, total_tokens

    def step(self) -> None:
        import torch

        self.model.train()
        bf16 = self.cfg.model.dtype == "bfloat16"
        for batch, adv in zip(self.batches, self.advantages):
            inputs = {k: v for k, v in batch.items() if k != "completion"}
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = self.model(**inputs).logits[:, :-1].float()
            logp = torch.log_softmax(logits, -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
            mask = batch["completion"][:, 1:].float()
            ratio_ = torch.exp(logp - logp.detach())
            clipped = ratio_.clamp(1 - self.cfg.rl.clip_low, 1 + self.cfg.rl.clip_high)
            surrogate = torch.minimum(ratio_ * adv[:, None], clipped * adv[:, None])
            (-(surrogate * mask).sum() / self.total_tokens).backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.cfg.learner.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def measure(step) -> dict:
    """Wall and CPU seconds of one call of `step`, and this process's peak memory growth during it."""
    from synergy_ray.processes.profiling import mark_rss, peak_rss_mib

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = mark_rss()
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "growth_mib": peak_rss_mib()["self"] - before}


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_env(args.threads)
    import datasets
    import torch

    from synergy_ray.core.microbatch import plan_ranks
    from synergy_ray.learner import LearnerWorker
    from synergy_ray.run import pipeline

    torch.set_num_threads(args.threads)
    overrides = [f"learner.micro_batch_size={args.micro_batch}", "rl.kl_coef=0",
                 f"learner.gradient_checkpointing={str(args.checkpointing).lower()}",
                 f"model.dtype={'bfloat16' if args.precision == 'bf16' else 'float32'}",
                 *([f"learner.micro_batch_tokens={args.micro_batch_tokens}"] if args.micro_batch_tokens else [])]
    cfg = bench_config(args.size, args.work_dir, overrides)
    prepared = pipeline.prepare(cfg)
    worker = LearnerWorker(cfg, prepared.model_path, str(prepared.train_path), 0, 1)
    worker.setup("127.0.0.1", _free_port())
    samples = make_samples(args, worker.processor, datasets.load_from_disk(str(prepared.train_path)))
    total_tokens = sum(s.loss_tokens(worker.pad_id) for s in samples)
    size = args.micro_batch
    batches = [worker._batch(samples[i:i + size]) for i in range(0, len(samples), size)]
    advantages = [torch.tensor([s.advantage for s in samples[i:i + size]]) for i in range(0, len(samples), size)]
    bare = BareLoop(cfg, prepared.model_path, batches, advantages, total_tokens)
    sorted_cfg = cfg
    unsorted_cfg = cfg.model_copy(update={"learner": cfg.learner.model_copy(update={
        "sort_by_length": False, "micro_batch_tokens": None})})

    def learner_step(arm_cfg):
        """The step as `LearnerGroup.train_step` gives it to its one rank: the samples in the plan's order
        (`core.microbatch`) with the plan's micro-batch sizes."""
        c = arm_cfg.learner
        [(order, sizes)] = plan_ranks([[s.num_tokens for s in samples]], [0], c.micro_batch_size,
                                      c.micro_batch_tokens, c.sort_by_length)
        ordered = [samples[i] for i in order]
        return lambda: worker.train_step(ordered, total_tokens, len(samples), 0, sizes)

    steps = {"bare": bare.step, "learner": learner_step(sorted_cfg), "learner-unsorted": learner_step(unsorted_cfg)}
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for repeat, arm in interleaved(list(ARMS), args.repeats):
        runs[arm].append(measure(steps[arm]))
        print(f"[{arm}] round {repeat + 1}: {runs[arm][-1]['wall_s']:.2f} s wall, {runs[arm][-1]['cpu_s']:.2f} s CPU",
              flush=True)
    measured = {arm: rs[1:] if len(rs) > 1 else rs for arm, rs in runs.items()}
    tokens = sum(len(s.completion_ids) for s in samples)
    summary = {arm: {"wall_s": median([r["wall_s"] for r in rs]), "cpu_s": median([r["cpu_s"] for r in rs]),
                     "growth_mib": median([r["growth_mib"] for r in rs])} for arm, rs in measured.items()}
    for arm, s in summary.items():
        s["completion_tokens_per_s"] = tokens / s["wall_s"]
        s["cpu_over_wall"] = ratio(s["cpu_s"], s["wall_s"])
    ratios = {"learner_throughput_over_bare": ratio(summary["bare"]["wall_s"], summary["learner"]["wall_s"]),
              "learner_cpu_over_bare": ratio(summary["learner"]["cpu_s"], summary["bare"]["cpu_s"]),
              "learner_memory_growth_over_bare": ratio(summary["learner"]["growth_mib"], summary["bare"]["growth_mib"]),
              "unsorted_throughput_over_bare": ratio(summary["bare"]["wall_s"],
                                                     summary["learner-unsorted"]["wall_s"])}
    print(format_table(["arm", "wall s", "CPU s", "CPU / wall", "completion tok/s", "step memory growth MiB"],
                       [[a, s["wall_s"], s["cpu_s"], s["cpu_over_wall"], s["completion_tokens_per_s"],
                         s["growth_mib"]] for a, s in summary.items()]))
    print(", ".join(f"{k} {v:.3f}" for k, v in ratios.items() if v is not None))
    settings = {k: v for k, v in vars(args).items() if k != "quick"}
    settings.update(parameters=prepared.num_parameters, completion_tokens=tokens, sequences=len(samples),
                    zero_stage=cfg.learner.zero_stage, padded_tokens_bare=sum(b["input_ids"].numel() for b in batches))
    path = write_result("learner_vs_bare" + ("_quick" if args.quick else ""), settings,
                        {"summary": summary, "ratios": ratios, "runs": runs})
    print(f"wrote {path}")
    return {"summary": summary, "ratios": ratios}


if __name__ == "__main__":
    main()
