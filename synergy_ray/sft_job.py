"""Long-CoT (or short-answer) SFT as a Ray Train `TorchTrainer` job with DeepSpeed inside each worker.

Each worker loads the model with `from_pretrained`, freezes the vision side (the paper's setting), optionally
adds LoRA, and trains with the token-weighted NLL from `core.sft_loss` on assistant tokens only. Checkpoints
are DeepSpeed checkpoints reported through `ray.train.report`; a restarted attempt (FailureConfig) resumes from
the latest one at the exact micro-batch it reached. The final model is exported as a plain Hugging Face
directory (LoRA merged) that vLLM loads.

Simplified: constant learning rate after a linear warm-up; sequences longer than `max_seq_len` are dropped
(and counted), never truncated; token-mean loss within each micro-batch.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from synergy_ray.config import ModelConfig, SFTConfig, SynergyConfig
from synergy_ray.console import log, ray_train_log_level
from synergy_ray.core.logprobs import gather_token_logprobs, shift_for_next_token
from synergy_ray.core.sft_loss import weighted_nll
from synergy_ray.model.prompting import IGNORE, collate, encode_example
from synergy_ray.model.training import EngineSetup, build_engine, export_hf, set_lr, warmup_lr


@dataclass(frozen=True)
class SFTJobSpec:
    """Everything a worker needs (it is pickled into Ray Train workers): the `model` and `sft` sections as this
    stage runs them, and what the run decides (paths, the dataset column to train on, fault injection)."""

    model_path: str
    data_path: str
    export_dir: str
    model: ModelConfig
    sft: SFTConfig
    target: str = "long_cot"  # dataset column holding the assistant response (a stage may build its own)
    prompt_suffix: str = ""
    metrics_path: str | None = None
    epochs_dir: str | None = None  # also export each epoch's model to <epochs_dir>/epoch_<n> (best-checkpoint pick)
    crash_at_step: int | None = None  # fault injection for tests: crash once, at this step, on rank 0
    log_every: int = 10


@dataclass
class SFTResult:
    export_dir: str
    history: list[dict] = field(default_factory=list)  # one row per optimiser step
    dropped_too_long: int = 0
    checkpoint_path: str | None = None
    attempts: int = 1


def spec_from_config(cfg: SynergyConfig, model_path: str, data_path: str, export_dir: str, **changes) -> SFTJobSpec:
    """The job for one SFT stage. `changes` may name fields of the `sft` section (a stage's own learning rate,
    epochs, ...), `lora` of the `model` section, or the spec's own fields; each is validated as the config is."""
    target = changes.pop("target", cfg.sft.target)  # any column: a stage may train on one it built
    sft = {k: changes.pop(k) for k in list(changes) if k in SFTConfig.model_fields}
    model = {k: changes.pop(k) for k in list(changes) if k in ("lora",)}
    return SFTJobSpec(
        model_path=model_path, data_path=data_path, export_dir=export_dir,
        model=ModelConfig.model_validate({**cfg.model.model_dump(), **model}),
        sft=SFTConfig.model_validate({**cfg.sft.model_dump(), **sft}),
        target=target, prompt_suffix=cfg.data.prompt_suffix, **changes)


def engine_setup(spec: SFTJobSpec, world_size: int) -> EngineSetup:
    """The shared trainer set-up for this job, with accumulation filling `batch_size`."""
    s = spec.sft
    return EngineSetup(spec.model_path, spec.model, s, seed=s.seed,
                       gradient_accumulation_steps=max(1, s.batch_size // (s.micro_batch_size * world_size)))


# ---------------------------------------------------------------- inside each Ray Train worker


def _encode_all(spec: SFTJobSpec, processor):
    """Every rank encodes the whole set (cheap here) so all ranks agree on indices and the dropped count."""
    import datasets

    ds = datasets.load_from_disk(spec.data_path)
    examples, dropped = [], 0
    for row in ds:
        ex = encode_example(processor, row["question"], spec.prompt_suffix, row["image"], row[spec.target],
                            spec.sft.max_seq_len)
        if ex is None:
            dropped += 1
        else:
            examples.append(ex)
    return examples, dropped


def _micro_batches(n_examples: int, spec: SFTJobSpec, epoch: int, rank: int, world: int) -> list[list[int]]:
    """This rank's micro-batches of example indices for one epoch; every rank sees the same permutation."""
    import numpy as np

    order = np.random.default_rng(spec.sft.seed + epoch).permutation(n_examples)
    per_step, micro = spec.sft.batch_size, spec.sft.micro_batch_size
    steps = n_examples // per_step
    batches = []
    for s in range(steps):
        mine = order[s * per_step:(s + 1) * per_step][rank::world]
        batches += [list(mine[i:i + micro]) for i in range(0, len(mine), micro)]
    return batches


def _sft_loss(engine, batch):
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "loss_weights")}
    logits = engine(**inputs).logits
    logits, targets, _ = shift_for_next_token(logits, batch["input_ids"])
    labels, weights = batch["labels"][:, 1:], batch["loss_weights"][:, 1:]
    logp = gather_token_logprobs(logits, targets)
    return weighted_nll(logp, weights, (labels != IGNORE).long(), "token_mean")


def _save_checkpoint(engine, state: dict, metrics: dict) -> None:
    import ray.train

    with tempfile.TemporaryDirectory() as tmp:
        engine.save_checkpoint(tmp, tag="sft", client_state=state)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def train_loop_per_worker(config: dict) -> dict:
    import ray.train
    from transformers import AutoProcessor

    spec: SFTJobSpec = config["spec"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    processor = AutoProcessor.from_pretrained(spec.model_path, trust_remote_code=spec.model.trust_remote_code)
    setup = engine_setup(spec, world)
    engine = build_engine(setup, world)
    examples, dropped = _encode_all(spec, processor)

    state = {"epoch": 0, "micro": 0, "step": 0, "history": []}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            _, loaded = engine.load_checkpoint(d, tag="sft")
        state = {key: loaded[key] for key in state}  # drop DeepSpeed's own metadata keys
    accumulation = engine.gradient_accumulation_steps()
    pad = processor.tokenizer.pad_token_id
    for epoch in range(state["epoch"], spec.sft.epochs):
        batches = _micro_batches(len(examples), spec, epoch, rank, world)
        window = []
        for micro in range(state["micro"], len(batches)):
            set_lr(engine, warmup_lr(spec.sft.lr, state["step"], spec.sft.warmup_steps))
            loss = _sft_loss(engine, collate([examples[i] for i in batches[micro]], pad))
            engine.backward(loss)
            engine.step()
            window.append(loss.detach().item())
            if (micro + 1) % accumulation:
                continue
            state["step"] += 1
            row = {"step": state["step"], "epoch": epoch, "loss": sum(window) / len(window)}
            window = []
            state["history"].append(row)
            if rank == 0:
                _log(spec, row)
            if spec.crash_at_step == state["step"] and rank == 0 and _first_crash(spec):
                raise RuntimeError(f"injected failure at step {state['step']} (test hook crash_at_step)")
            if spec.sft.checkpoint_every_steps and state["step"] % spec.sft.checkpoint_every_steps == 0:
                _save_checkpoint(engine, {**state, "epoch": epoch, "micro": micro + 1}, row)
        state["micro"] = 0
        if spec.epochs_dir:
            export_hf(engine, processor, str(Path(spec.epochs_dir) / f"epoch_{epoch + 1}"), rank, setup)
        _save_checkpoint(engine, {**state, "epoch": epoch + 1, "micro": 0}, {"epoch": epoch + 1, **_last(state)})
    export_hf(engine, processor, spec.export_dir, rank, setup)
    return {"history": state["history"], "dropped_too_long": dropped}


def _last(state: dict) -> dict:
    return {"loss": state["history"][-1]["loss"]} if state["history"] else {}


def _first_crash(spec: SFTJobSpec) -> bool:
    marker = Path(spec.export_dir).parent / f".{Path(spec.export_dir).name}.crashed"
    if marker.exists():
        return False
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return True


def _log(spec: SFTJobSpec, row: dict) -> None:
    if spec.metrics_path:
        with open(spec.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
    if row["step"] == 1 or row["step"] % spec.log_every == 0:
        log().info(f"[sft] epoch {row['epoch'] + 1}/{spec.sft.epochs} step {row['step']} loss {row['loss']:.4f}")


# ---------------------------------------------------------------- the driver side


def run_sft(spec: SFTJobSpec, storage_dir: str | None = None, name: str = "sft") -> SFTResult:
    """Run the job on the connected Ray cluster (workers, resources and retries from `spec.sft`) and wait for
    it; raises if every attempt failed."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage = os.path.abspath(storage_dir or Path(spec.export_dir).parent / "ray_train")
    s = spec.sft
    resources = {"CPU": s.cpus_per_worker, **({"GPU": s.gpus_per_worker} if s.gpus_per_worker else {})}
    trainer = TorchTrainer(
        train_loop_per_worker=train_loop_per_worker,
        train_loop_config={"spec": spec},
        scaling_config=ScalingConfig(num_workers=s.num_workers, use_gpu=s.gpus_per_worker > 0,
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=name, storage_path=storage,
            failure_config=FailureConfig(max_failures=s.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            logging_config=LoggingConfig(log_level=ray_train_log_level()),  # its INFO lines only with --verbose
        ),
    )
    result = _fit(trainer)
    if result.error:
        raise RuntimeError(f"SFT job failed: {result.error}") from result.error
    out = result.return_value or {}
    return SFTResult(
        export_dir=spec.export_dir, history=out.get("history", []), dropped_too_long=out.get("dropped_too_long", 0),
        checkpoint_path=result.checkpoint.path if result.checkpoint else None,
    )


def _fit(trainer):
    """`trainer.fit()` from a helper thread, with this thread waiting on it.

    Called from the main thread, Ray Train installs a SIGINT handler of its own and never restores the one
    before it, so every Ctrl-C after an SFT stage (RL steps, evaluation) was only logged and the run went on.
    From another thread it installs none: Ctrl-C raises KeyboardInterrupt here, as anywhere else in a run,
    and the driver's exit ends the job's actors; a rerun resumes from the job's last checkpoint.
    """
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = trainer.fit()
        except BaseException as err:  # handed to the waiting thread, which raises it
            box["error"] = err

    worker = threading.Thread(target=target, name="sft-fit", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.5)  # short waits: the main thread stays responsive to signals
    if "error" in box:
        raise box["error"]
    return box["result"]
