"""TRL's `GRPOTrainer` on a synergy-ray model and data set, timed per step; run in its own process.

    python -m benchmarks.trl_arm SPEC.json OUT.json

`step_vs_trl` writes SPEC.json (model, data, batch shape, completion length, learning rate, steps, whether to use
vLLM) and starts this module as a subprocess, so TRL's process holds nothing of Ray's and a crash (vLLM
colocate on CPU, say) is reported, not fatal. The settings mirror synergy-ray's GRPO: group-scaled advantages
(`scale_rewards="group"`), token-mean loss over the optimiser batch (`loss_type="dapo"`), clip 0.2 both ways,
no KL (`beta=0`, so neither side loads a reference model), a frozen vision tower, constant learning rate, one
optimiser update per generation batch, the same reward function (`core.rewards.score_completion`). Precision
(`bf16`) and gradient checkpointing come from SPEC.json and are always set explicitly: TRL's own defaults turn
both on. The reward function also records each completion's token count, for the length distributions.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path


def _dataset(train_path: str, prompt_suffix: str, limit: int | None):
    import datasets

    data = datasets.load_from_disk(train_path)
    if limit:
        data = data.select(range(min(limit, len(data))))

    def to_trl(row):  # the same user turn synergy-ray builds (image first, then the text); TRL inserts the image
        text = f"{row['question']} {prompt_suffix}".strip() if prompt_suffix else row["question"]
        return {"prompt": [{"role": "user", "content": text}]}

    return data.map(to_trl).select_columns(["prompt", "image", "answer", "choices"])


COMPLETION_LENGTHS: list[list[int]] = []  # tokens of each completion, one list per generation batch (= step)


def reward_fn(completions, answer, choices, completion_ids=None, **_):
    from synergy_ray.core.rewards import score_completion

    if completion_ids is not None:
        COMPLETION_LENGTHS.append([len(ids) for ids in completion_ids])
    return [score_completion(c[0]["content"], gold, tuple(ch)).reward
            for c, gold, ch in zip(completions, answer, choices)]


def run(spec: dict) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from synergy_ray.model.loading import freeze_vision
    from synergy_ray.processes.profiling import peak_rss_mib

    torch.manual_seed(spec["seed"])
    batch = spec["prompt_batch"] * spec["group_size"]
    accum = batch // spec["micro_batch"]
    length_key = "min_tokens" if spec["use_vllm"] else "min_new_tokens"
    args = GRPOConfig(
        output_dir=spec["output_dir"], per_device_train_batch_size=spec["micro_batch"],
        gradient_accumulation_steps=accum, steps_per_generation=accum, num_generations=spec["group_size"],
        max_completion_length=spec["max_tokens"], temperature=spec["temperature"], top_p=1.0, top_k=0,
        learning_rate=spec["lr"], lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=1.0,
        beta=0.0, epsilon=0.2, loss_type="dapo", scale_rewards="group", num_iterations=1,
        max_steps=spec["warmup"] + spec["steps"], logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=True, bf16=spec["bf16"], gradient_checkpointing=spec["gradient_checkpointing"], seed=spec["seed"], dataloader_num_workers=0, remove_unused_columns=False,
        generation_kwargs={length_key: spec["max_tokens"]} if spec["fixed_length"] else None,
        use_vllm=spec["use_vllm"], vllm_mode="colocate", vllm_gpu_memory_utilization=0.1,
        vllm_max_model_length=spec.get("max_model_len"), disable_dropout=True,
    )
    processor = AutoProcessor.from_pretrained(spec["model_path"])
    model = AutoModelForImageTextToText.from_pretrained(spec["model_path"], dtype=torch.float32)
    freeze_vision(model)

    class StepClock(TrainerCallback):
        walls: list[float] = []

        def on_step_begin(self, args, state, control, **kw):
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.walls.append(time.perf_counter() - self._t)

    clock = StepClock()
    trainer = GRPOTrainer(model=model, reward_funcs=[reward_fn], args=args, processing_class=processor,
                          train_dataset=_dataset(spec["train_path"], spec["prompt_suffix"], None), callbacks=[clock])
    generate_seconds = _time_generation(trainer)
    started = time.perf_counter()
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    return {"step_seconds": clock.walls, "generate_seconds": generate_seconds, "reward": [h["reward"] for h in logs],
            "completion_length": [h.get("completions/mean_length") for h in logs],
            "completion_lengths": COMPLETION_LENGTHS, "bf16": args.bf16,
            "gradient_checkpointing": args.gradient_checkpointing,
            "train_seconds": time.perf_counter() - started, "peak_rss_mib": peak_rss_mib(),
            "generation": "vllm colocate" if spec["use_vllm"] else "transformers generate"}


def _time_generation(trainer) -> list[float]:
    """Seconds of each of the trainer's generation calls (its `_generate`: sampling only, no scoring or training),
    filled in as it trains; the rest of a step is scoring, log-probs and the optimiser."""
    seconds: list[float] = []
    generate = trainer._generate

    def timed(*args, **kwargs):
        t = time.perf_counter()
        out = generate(*args, **kwargs)
        seconds.append(time.perf_counter() - t)
        return out

    trainer._generate = timed
    return seconds


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec_path, out_path = argv
    spec = json.loads(Path(spec_path).read_text())
    try:
        result = run(spec)
    except Exception as err:  # reported to the parent, which records it as this arm's outcome
        result = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-4000:]}
    Path(out_path).write_text(json.dumps(result, indent=2, default=str))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
