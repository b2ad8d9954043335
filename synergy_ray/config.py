"""The whole run configuration as one validated pydantic tree.

Read from YAML, patched by dotted command-line overrides (`rl.kl_coef=0.005`), validated before Ray or any
heavy library is imported, and dumped resolved next to the run's outputs. Every section forbids unknown keys
and is frozen: a config is never repaired in place, a new one is validated instead.

This file is long because it is the one place every knob lives; each section is a small class.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PAPER_PROMPT_SUFFIX = (
    "Please reason step by step within <think> </think> tags, and put your final answer within \\boxed{}."
)
REASONING_WORDS = ("wait", "check", "alternatively", "verify", "however")


class ConfigError(ValueError):
    """An invalid configuration; the message names every offending field by its dotted path."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- model


class TinyVLMConfig(Section):
    """Shape of the randomly initialised Idefics3 the embedded demo builds for itself."""

    text_hidden: int = Field(128, gt=0)
    text_layers: int = Field(2, gt=0)
    text_heads: int = Field(2, gt=0)
    text_intermediate: int = Field(256, gt=0)
    vision_hidden: int = Field(64, gt=0)
    vision_layers: int = Field(2, gt=0)
    vision_heads: int = Field(2, gt=0)
    vision_intermediate: int = Field(128, gt=0)
    image_size: int = Field(32, gt=0)
    patch_size: int = Field(8, gt=0)
    scale_factor: int = Field(2, gt=0)
    max_position_embeddings: int = Field(2048, gt=0)
    seed: int = 0

    @model_validator(mode="after")
    def _shapes_fit(self) -> TinyVLMConfig:
        if self.text_hidden % self.text_heads:
            raise ValueError("text_heads: text_hidden must be divisible by text_heads")
        if self.text_hidden // self.text_heads < 32:
            # vLLM's CPU attention rejects small heads (head_dim 16 measured); 64 is known to work.
            raise ValueError("text_heads: text_hidden / text_heads (head_dim) must be at least 32 for vLLM's CPU attention")
        if self.vision_hidden % self.vision_heads:
            raise ValueError("vision_heads: vision_hidden must be divisible by vision_heads")
        if self.image_size % (self.patch_size * self.scale_factor):
            raise ValueError("image_size: must be a multiple of patch_size * scale_factor")
        return self

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2 // self.scale_factor**2


class LoraConfig(Section):
    rank: int = Field(16, gt=0)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class BaseWarmupConfig(Section):
    """SFT on short answers that turns the randomly initialised tiny VLM into the demo's "base" model.

    The analogue of an Instruct checkpoint: it answers in the target format and its pass rates spread over the
    five levels, which is what makes measuring SFT and RL per level meaningful.
    """

    lr: float = Field(2e-3, gt=0)
    epochs: int = Field(12, gt=0)
    batch_size: int = Field(64, gt=0)
    micro_batch_size: int = Field(64, gt=0)


class ModelConfig(Section):
    path: str = "runs/tiny_vlm"  # HF checkpoint directory or hub name
    build_tiny: TinyVLMConfig | None = None  # when set, `path` is built locally if absent
    trust_remote_code: bool = False
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    freeze_vision: bool = True  # the paper freezes the vision encoder and connector
    lora: LoraConfig | None = None
    make_base: BaseWarmupConfig | None = None  # when set, the run first warms `path` up into a base model


# ---------------------------------------------------------------- data


class DataConfig(Section):
    source: str = "synthetic"  # "synthetic", a local jsonl/parquet/dataset dir/image folder, or a hub name
    column_map: dict[str, str] = {}  # our column -> the user's column
    image_root: str | None = None
    num_per_level: int = Field(200, gt=0)  # synthetic: training items per design level
    eval_per_level: int = Field(40, gt=0)  # synthetic: held-out items per design level
    val_per_level: int = Field(8, ge=0)  # synthetic: validation items per level (checkpoint choice, tuning)
    seed: int = 0
    image_size: int = Field(32, gt=0)
    prompt_suffix: str = PAPER_PROMPT_SUFFIX
    max_prompt_tokens: int = Field(1024, gt=0)  # longer prompts (after image expansion) are dropped, counted
    # synthetic: the long-CoT column's style. "verbose" reads like long-CoT SFT data (~10x the short answer);
    # "compact" keeps its steps and re-checks at 2-5x, for models too small to carry a long trace.
    trace_style: Literal["verbose", "compact"] = "verbose"


# ---------------------------------------------------------------- rollouts and rewards


class RolloutConfig(Section):
    group_size: int = Field(8, ge=2)  # completions per prompt; GRPO needs at least two to compare
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(-1, ge=-1)  # -1 = off
    max_tokens: int = Field(4096, gt=0)
    min_tokens: int = Field(0, ge=0)  # the end token is held back until this many (benchmarks fix lengths with it)
    num_generators: int = Field(1, ge=1)
    min_generators: int = Field(1, ge=1)
    max_generators: int = Field(1, ge=1)
    truncated: Literal["keep", "zero_reward", "drop"] = "keep"  # completions cut at max_tokens
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_num_seqs: int = Field(256, gt=0)
    cpu_kvcache_space_gib: int = Field(1, ge=1)  # vLLM-CPU KV cache (GiB), set as VLLM_CPU_KVCACHE_SPACE
    max_model_len: int | None = Field(None, gt=0)
    enforce_eager: bool = True
    # The generators' vLLM engine runs inside the generator actor's process (vLLM's in-process engine core and
    # single-worker executor) instead of in two processes vLLM spawns, each importing vLLM afresh: a generator
    # is up in 22.8 s instead of 55.8 s on a 2-core AMD host (benchmarks/RESULTS.md section 10). A dead engine is
    # then a dead actor, which the pool replaces as it does any. false keeps vLLM's own processes (a killed
    # engine process leaves the actor to report it); the GPU configs keep them.
    inline_engine: bool = True
    # Colocated layout: engines release GPU memory (vLLM sleep level 1) while the learner trains and get the
    # new weights after waking. Needs a GPU; on CPU it is skipped with a log line.
    sleep_during_training: bool = False
    # Elastic pool (between steps, within [min_generators, max_generators]): grow into free resources when
    # generation took at least this share of the last step's time; give one member back below the other.
    grow_when_generation_share: float = Field(0.5, ge=0, le=1)
    shrink_when_generation_share: float = Field(0.0, ge=0, le=1)  # 0 = never shrink voluntarily
    # A generator call (a step's share of sampling, one weight bucket) that takes longer than this counts as a
    # failed member, like a dead actor or engine: it is killed, its prompts go to the others, it is replaced.
    call_timeout_s: float = Field(1800.0, gt=0)
    # Between steps every engine is asked a round trip (an idle one answers in milliseconds); one that does not
    # answer within this is a hung member and is replaced like a dead one.
    health_timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _pool_bounds(self) -> RolloutConfig:
        if not self.min_generators <= self.num_generators <= self.max_generators:
            raise ValueError("num_generators: need min_generators <= num_generators <= max_generators")
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens: {self.min_tokens} exceeds max_tokens ({self.max_tokens})")
        if self.shrink_when_generation_share > self.grow_when_generation_share:
            raise ValueError("shrink_when_generation_share: must not exceed grow_when_generation_share")
        return self


class RewardConfig(Section):
    accuracy_weight: float = Field(0.9, ge=0)
    format_weight: float = Field(0.1, ge=0)
    timeout_s: float = Field(5.0, gt=0)  # per completion; a hung checker scores 0
    num_workers: int = Field(1, ge=1)


# ---------------------------------------------------------------- training


class OptimizerFields(Section):
    """AdamW and its schedule; the RL learner (`learner`) and the SFT job (`sft`) each have their own."""

    lr: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = Field(1.0, gt=0)
    warmup_steps: int = Field(0, ge=0)  # optimiser steps of linear warm-up, then constant
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~1.3x compute


class LearnerConfig(OptimizerFields):
    """The RL learner group (DeepSpeed ZeRO over `num_workers` ranks)."""

    zero_stage: Literal[0, 1, 2, 3] = 2
    num_workers: int = Field(1, ge=1)
    micro_batch_size: int = Field(8, gt=0)
    # Weights go learner -> generators in buckets of at most this many MiB (a tensor larger than a bucket
    # travels alone): no process holds more than one bucket beyond its own model copy during a sync; two
    # buckets exist at a time (rank 0 prepares the next while the engines load this one).
    sync_bucket_mib: float = Field(256.0, gt=0)
    # After every k-th sync (from the first), vLLM and the learner score the same few rollouts and the step
    # records their mean log-prob gap; 0 = never. The check costs a learner forward and a vLLM prefill.
    sync_check_every: int = Field(1, ge=0)
    sort_by_length: bool = True  # micro-batches of like-length rows: less padding, same gradient
    # At most this many padded tokens (rows x longest row) per micro-batch; None: rows only. Long rows then
    # go in smaller micro-batches (more of them, every rank as many): less padding, bounded activations.
    micro_batch_tokens: int | None = Field(None, gt=0)


class SFTConfig(OptimizerFields):
    target: Literal["long_cot", "short_solution"] = "long_cot"
    lr: float = Field(1e-5, gt=0)
    epochs: int = Field(5, gt=0)
    batch_size: int = Field(32, gt=0)
    micro_batch_size: int = Field(4, gt=0)
    max_seq_len: int = Field(4096, gt=0)
    zero_stage: Literal[0, 1, 2, 3] = 2
    num_workers: int = Field(1, ge=1)
    cpus_per_worker: int = Field(1, ge=1)
    gpus_per_worker: float = Field(0.0, ge=0)
    max_failures: int = Field(1, ge=0)  # Ray Train FailureConfig retries
    seed: int = 0
    checkpoint_every_steps: int = Field(0, ge=0)  # 0 = once per epoch
    export_every_epoch: bool = True  # keep each epoch's model (two_stage starts RL from the best by validation)

    @model_validator(mode="after")
    def _batch_divides(self) -> SFTConfig:
        if self.batch_size % (self.micro_batch_size * self.num_workers):
            raise ValueError("batch_size: must be a multiple of micro_batch_size * num_workers")
        return self


class RLConfig(Section):
    steps: int = Field(100, gt=0)
    prompt_batch: int = Field(128, gt=0)
    mini_batch: int = Field(64, gt=0)  # prompts per optimiser update
    kl_coef: float = Field(0.005, ge=0)
    kl_estimator: Literal["k1", "k3"] = "k3"
    clip_low: float = Field(0.2, ge=0, lt=1)
    clip_high: float = Field(0.2, ge=0)
    advantage: Literal["grpo", "dr_grpo", "rloo"] = "grpo"
    aggregation: Literal["token_mean", "seq_mean"] = "token_mean"
    tis_cap: float | None = Field(None, gt=0)  # truncated importance-sampling vs the sampler's log-probs
    # Generate step t+1 while step t trains (rollouts one weight version stale); needs tis_cap for the correction.
    async_mode: bool = False
    max_staleness: int = Field(1, ge=1)  # async mode: older rollouts are dropped (counted)
    checkpoint_every: int = Field(0, ge=0)  # steps; 0 = only at the end
    keep_checkpoints: int = Field(3, ge=1)  # newest RL checkpoints kept; older ones are deleted as new ones land

    @model_validator(mode="after")
    def _mini_batch_divides(self) -> RLConfig:
        if self.prompt_batch % self.mini_batch:
            raise ValueError(f"mini_batch: prompt_batch ({self.prompt_batch}) must be a multiple of mini_batch ({self.mini_batch})")
        if self.async_mode and self.tis_cap is None:
            raise ValueError("tis_cap: async_mode trains on rollouts one version stale and needs the importance-"
                             "sampling correction; set rl.tis_cap (2.0 is common)")
        return self


# ---------------------------------------------------------------- strategies


class SFTStrategy(Section):
    name: Literal["sft"] = "sft"


class RLStrategy(Section):
    name: Literal["rl"] = "rl"


class TwoStageStrategy(Section):
    name: Literal["two_stage"] = "two_stage"
    rl_max_tokens: int = Field(16384, gt=0)  # the paper lengthens generation after SFT
    val_k: int = Field(4, gt=0)  # samples per validation question when picking the best SFT epoch


class InterleavedStrategy(Section):
    name: Literal["interleaved"] = "interleaved"
    sft_weight: float = Field(1.0, gt=0)  # not stated in the paper


class ProgressiveStrategy(Section):
    name: Literal["progressive"] = "progressive"
    prefix_weight: float = Field(0.2, ge=0)
    schedule: Literal["linear", "cosine", "step"] = "linear"
    schedule_steps: int = Field(100, gt=0)  # prefix reaches zero length at this RL step
    num_stages: int = Field(4, gt=0)  # for the step schedule


class DataMixStrategy(Section):
    name: Literal["data_mix"] = "data_mix"
    samples_per_question: int = Field(8, gt=0)
    epochs: int = Field(2, gt=0)


class MergeStrategy(Section):
    name: Literal["merge"] = "merge"
    method: Literal["linear", "ties", "slerp"] = "linear"
    sft_weight: float = Field(0.25, ge=0, le=1)
    sweep: list[float] | None = None  # e.g. [0, .25, .5, .75, 1]: merge and evaluate each

    @field_validator("sweep")
    @classmethod
    def _sweep_in_unit_interval(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not all(0 <= w <= 1 for w in v):
            raise ValueError("every sweep weight must lie in [0, 1]")
        return v


class AdaptiveStrategy(Section):
    """`adaptive` (ours): rescue all-fail groups with minimal hints in the model's own format, spend the step's
    rollouts where the signal is, and draw informative questions (strategies/adaptive.py). Each component can
    be switched off on its own: `rescue`, `budget`, `curriculum: hardness` (the ablations)."""

    name: Literal["adaptive"] = "adaptive"
    rescue: bool = True
    hint_column: str = "short_solution"  # training-set column of solutions in the model's own answer format
    hint_levels: int = Field(4, ge=1)  # rungs on a question's hint ladder (core.rescue.hint_ladder)
    rescue_size: int = Field(4, ge=2)  # rollouts per hinted subgroup
    rescue_budget: int = Field(16, ge=0)  # rollouts per step kept for rescues, out of prompt_batch x group_size
    rescue_after: int = Field(5, ge=0)  # warm-up steps without rescues
    rescue_until: float = Field(0.8, gt=0, le=1)  # share of rl.steps after which no hints (plain RL to the end)
    hint_loss_weight: float = Field(0.0, ge=0)  # NLL weight on hint tokens; 0 = hints are context only
    budget: bool = True  # group sizes by pass rate (core.allocation); false = the same size for every question
    # "signal": each extra rollout where it most raises the chance of a mixed group; "need": shares by 1 - p
    budget_rule: Literal["signal", "need"] = "signal"
    min_group: int = Field(4, ge=2)
    max_group: int = Field(16, ge=2)
    curriculum: Literal["informative", "hardness"] = "informative"  # p(1 - p), or the curriculum section's focus
    # A question's pass-rate prior is its level's current pass rate (core.curriculum.PooledPassRateTable),
    # worth `prior_strength` samples; false = the plain Beta(1, 1) prior, 0.5 for every unseen question.
    pooled_prior: bool = True
    prior_strength: float = Field(2.0, gt=0)

    def unhinted_range(self, prompt_batch: int, group_size: int) -> tuple[int, int]:
        """The fewest and most unhinted rollouts a step's groups must hold (`core.allocation.unhinted_budget`):
        the whole budget less the rescue reserve on a rescuing step, the whole budget on a step without. A
        previous step's unspent reserve comes on top only as far as `max_group` leaves room."""
        total, reserve = prompt_batch * group_size, (self.rescue_budget if self.rescue else 0)
        return total - reserve, total


class TraceHintStrategy(Section):
    """`trace_hint`: the first `adaptive` rule, kept as an ablation: a never-solved question's prompt opens with
    its long-CoT trace cut to (1 - p / hint_below) of its length (strategies/trace_hint.py)."""

    name: Literal["trace_hint"] = "trace_hint"
    hint_below: float = Field(0.25, ge=0, le=1)  # pass rate under which a question gets an expert hint
    # SFT weight on hint tokens; 0 = hints only as context. On the demo, 0.2 pulled easy answers toward the
    # trace style (benchmarks/results/compare_demo_cpu).
    hint_weight: float = Field(0.2, ge=0)
    length_penalty: float = Field(0.0, ge=0)  # on questions solved at >= easy_above
    easy_above: float = Field(0.75, ge=0, le=1)


# Each strategy's section, tagged by its name; its behaviour is the module of the same name in strategies/.
STRATEGY_SECTIONS = (SFTStrategy, RLStrategy, TwoStageStrategy, InterleavedStrategy, ProgressiveStrategy,
                     DataMixStrategy, MergeStrategy, AdaptiveStrategy, TraceHintStrategy)
STRATEGY_NAMES = tuple(section.model_fields["name"].default for section in STRATEGY_SECTIONS)

Strategy = Annotated[Union[STRATEGY_SECTIONS], Field(discriminator="name")]


class CurriculumConfig(Section):
    focus: float = Field(2.0, ge=0)  # 0 = uniform sampling; higher = more weight on low pass rates
    floor: float = Field(0.1, gt=0, le=1)  # every question keeps at least this share of uniform weight


# ---------------------------------------------------------------- evaluation, serving, cluster


BENCHMARK_NAMES = ("mathvision", "mathverse", "mathvista", "mmmu", "mmstar")


class BenchmarkConfig(Section):
    """One of the paper's benchmarks in its authors' level-tagged copy, read from a local directory."""

    name: Literal[BENCHMARK_NAMES]
    path: str  # directory holding the downloaded files (or one data file)
    limit: int | None = Field(None, gt=0)  # only the first N published rows, for a quick look


class EvalConfig(Section):
    k: int = Field(16, ge=1)  # samples per question; the paper's levels come from pass@16
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int = Field(20, ge=-1)
    max_tokens: int = Field(4096, gt=0)
    reasoning_words: list[str] = list(REASONING_WORDS)
    benchmarks: list[BenchmarkConfig] = []  # `eval` runs these instead of the held-out set when given
    concurrency: int = Field(8, ge=1)  # requests in flight when evaluating through a served endpoint
    # What evaluation measures and stores levels in: the held-out set, or the validation split (tune there,
    # report on held_out; a run directory keeps one split).
    split: Literal["held_out", "validation"] = "held_out"


class ServeConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    num_replicas: int = Field(1, ge=1)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    api_key_env: str | None = None  # name of the environment variable holding the bearer key
    allowed_image_dirs: list[str] = []
    max_image_bytes: int = Field(8 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(4096 * 4096, gt=0)  # width x height, read from the header before decoding
    max_request_bytes: int = Field(16 * 1024 * 1024, gt=0)  # a request body beyond this is refused (413)
    cpus_per_replica: float = Field(1.0, ge=0)  # Ray CPUs per model replica (fractions let small models share)
    gpus_per_replica: float = Field(0.0, ge=0)
    target_ongoing_requests: float = Field(4.0, gt=0)  # autoscaling target per replica (min < max replicas)
    max_ongoing_requests: int = Field(16, gt=0)  # per replica; vLLM batches these together, more wait in line
    # A streamed answer's tokens are sent on in batches every this many ms (fewer messages through Serve,
    # a later first token); None: ray.serve.llm's own default (50 ms); 0: every token as it comes
    stream_batching_interval_ms: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _replica_bounds(self) -> ServeConfig:
        if not self.min_replicas <= self.num_replicas <= self.max_replicas:
            raise ValueError("num_replicas: need min_replicas <= num_replicas <= max_replicas")
        return self


class ClusterConfig(Section):
    address: str | None = None  # None: a local embedded Ray (RAY_ADDRESS still wins when set)
    layout: Literal["colocated", "disaggregated"] = "disaggregated"
    gpus_per_learner: float = Field(0.0, ge=0)
    gpus_per_generator: float = Field(0.0, ge=0)
    cpus_per_learner: float = Field(1.0, ge=0)
    cpus_per_generator: float = Field(1.0, ge=0)
    num_cpus: int | None = Field(None, gt=0)  # cap for a local Ray

    @model_validator(mode="after")
    def _colocated_shares_gpus(self) -> ClusterConfig:
        if self.layout == "colocated" and self.gpus_per_learner != self.gpus_per_generator:
            raise ValueError("gpus_per_generator: the colocated layout puts one generator on each learner rank's "
                             f"GPUs, so it must equal gpus_per_learner ({self.gpus_per_learner:g})")
        return self


class RunConfig(Section):
    name: str = "run"
    output_dir: str = "runs"
    seed: int = 0
    wandb_project: str | None = None  # also log to Weights & Biases (when the wandb package is installed)


class CompareConfig(Section):
    """`synergy-ray compare`: which strategies next to base, and whether they run side by side."""

    strategies: list[str] = ["sft", "rl", "merge", "adaptive", "interleaved", "progressive", "data_mix", "two_stage"]
    # Each strategy as a Ray task of its own, started as soon as the strategies it builds on have finished
    # (merge after sft and rl, data_mix after rl, two_stage after sft); on a cluster they spread over the nodes.
    parallel: bool = False
    # Each strategy made only of GRPO from the base (rl, adaptive, ...) runs with run.seed, run.seed + 1, ...;
    # `compare/seeds.md` gives mean +- sd per level and the difference to rl paired by seed, with its standard
    # error. The base, its levels and the SFT-based strategies are made once.
    seeds: int = Field(1, ge=1)
    # Named variants of a strategy, run like strategies under their own names (ablations), e.g.
    # {adaptive_rescue_only: {name: adaptive, budget: false, curriculum: hardness}}; list them in `strategies`.
    variants: dict[str, dict[str, Any]] = {}

    @model_validator(mode="after")
    def _known(self) -> CompareConfig:
        from pydantic import TypeAdapter

        for name, section in self.variants.items():
            if name in STRATEGY_NAMES:
                raise ValueError(f"compare.variants.{name}: a variant cannot take a strategy's own name")
            try:
                TypeAdapter(Strategy).validate_python(section)
            except ValueError as e:
                raise ValueError(f"compare.variants.{name}: not a valid strategy section: {e}") from None
        v, known = self.strategies, [*STRATEGY_NAMES, *self.variants]
        unknown = [s for s in v if s not in known]
        if unknown or not v or len(set(v)) < len(v):
            raise ValueError(f"compare.strategies: unknown, repeated or no strategies {unknown or v}; choose from "
                             f"{known}")
        return self


class SynergyConfig(Section):
    run: RunConfig = RunConfig()
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    rollout: RolloutConfig = RolloutConfig()
    reward: RewardConfig = RewardConfig()
    learner: LearnerConfig = LearnerConfig()
    sft: SFTConfig = SFTConfig()
    rl: RLConfig = RLConfig()
    strategy: Strategy = RLStrategy()
    curriculum: CurriculumConfig = CurriculumConfig()
    eval: EvalConfig = EvalConfig()
    serve: ServeConfig = ServeConfig()
    cluster: ClusterConfig = ClusterConfig()
    compare: CompareConfig = CompareConfig()

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy_by_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v  # `strategy: rl` is shorthand

    @model_validator(mode="after")
    def _combinations(self) -> SynergyConfig:
        s = self.strategy
        if isinstance(s, ProgressiveStrategy) and s.schedule_steps > self.rl.steps:
            raise ValueError(
                f"strategy.schedule_steps: the schedule ({s.schedule_steps} steps) ends after the run's last step "
                f"rl.steps ({self.rl.steps}): the prefix would never shrink to nothing"
            )
        if isinstance(s, TwoStageStrategy) and self.rollout.max_model_len is not None and \
                s.rl_max_tokens + self.data.max_prompt_tokens > self.rollout.max_model_len:
            raise ValueError(
                f"strategy.rl_max_tokens: {s.rl_max_tokens} completion tokens + data.max_prompt_tokens "
                f"({self.data.max_prompt_tokens}) exceed rollout.max_model_len ({self.rollout.max_model_len})"
            )
        if isinstance(s, AdaptiveStrategy):
            self._adaptive_budget_fits(s)
        if self.eval.split == "validation" and self.data.source == "synthetic" and self.data.val_per_level == 0:
            raise ValueError("eval.split: validation needs a validation split; set data.val_per_level > 0")
        self._lengths_fit()
        if self.rl.prompt_batch < self.rollout.num_generators:
            raise ValueError("rl.prompt_batch: must be at least rollout.num_generators")
        if self.rl.async_mode and self.rollout.sleep_during_training:
            raise ValueError("rl.async_mode: the engines generate the next step while the learner trains, so "
                             "they cannot sleep then; set rollout.sleep_during_training=false")
        if self.model.lora is not None and self.learner.zero_stage == 3:
            raise ValueError("model.lora: LoRA with learner.zero_stage 3 is not supported; use stage 2")
        return self

    def _adaptive_budget_fits(self, s: AdaptiveStrategy) -> None:
        """The unhinted rollouts must split over the drawn questions within the group-size bounds."""
        b, g = self.rl.prompt_batch, self.rollout.group_size
        fewest, most = s.unhinted_range(b, g)
        if s.rescue and s.rescue_budget and s.rescue_budget < s.rescue_size:
            raise ValueError(f"strategy.rescue_budget: {s.rescue_budget} rollouts cannot hold one subgroup of "
                             f"strategy.rescue_size ({s.rescue_size})")
        low, high = (s.min_group, s.max_group) if s.budget else (2, most)
        if s.budget and s.min_group > s.max_group:
            raise ValueError(f"strategy.max_group: {s.max_group} is below strategy.min_group ({s.min_group})")
        if not b * low <= fewest <= most <= b * high:
            raise ValueError(f"strategy.rescue_budget: rl.prompt_batch x rollout.group_size ({b * g}), with and "
                             f"without the rescue budget, gives {fewest}-{most} unhinted rollouts, which {b} "
                             f"questions cannot share at {low}-{high} each")

    def _lengths_fit(self) -> None:
        """A prompt and its answer must fit the engine's context (`rollout.max_model_len`, else the model's
        own limit where the config knows it: the tiny model's `max_position_embeddings`)."""
        d, r, tiny = self.data, self.rollout, self.model.build_tiny
        model_limit = tiny.max_position_embeddings if tiny is not None else None
        if model_limit is not None and r.max_model_len is not None and r.max_model_len > model_limit:
            raise ValueError(f"rollout.max_model_len: {r.max_model_len} exceeds the model's "
                             f"model.build_tiny.max_position_embeddings ({model_limit})")
        limit, named = ((r.max_model_len, "rollout.max_model_len") if r.max_model_len is not None
                        else (model_limit, "model.build_tiny.max_position_embeddings"))
        if limit is None:
            return  # a hub model's limit is known once its config is read; vLLM checks it then
        if d.max_prompt_tokens >= limit:
            raise ValueError(f"data.max_prompt_tokens: {d.max_prompt_tokens} leaves no room to answer within "
                             f"{named} ({limit})")
        if d.max_prompt_tokens + r.max_tokens > limit:
            raise ValueError(f"rollout.max_tokens: {r.max_tokens} + data.max_prompt_tokens ({d.max_prompt_tokens}) "
                             f"exceed {named} ({limit})")
        if model_limit is not None and d.max_prompt_tokens + self.eval.max_tokens > model_limit:
            raise ValueError(f"eval.max_tokens: {self.eval.max_tokens} + data.max_prompt_tokens "
                             f"({d.max_prompt_tokens}) exceed the model's limit ({model_limit})")

    @property
    def run_dir(self) -> Path:
        return Path(self.run.output_dir) / self.run.name


# ---------------------------------------------------------------- loading


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if isinstance(child, str) and key == "strategy":
            child = {"name": child}  # allow `strategy.sft_weight=...` on top of `strategy: interleaved`
        if child is None:
            child = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: cannot set a field inside {'.'.join(keys[:-1])}, which is not a section")
        node[key] = child
        node = child
    node[keys[-1]] = value


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` strings; values are parsed as YAML scalars or lists (`[1, 2]`)."""
    tree = dict(tree)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        key, raw = item.split("=", 1)
        if not key:
            raise ConfigError(f"override {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
    return tree


def _error_path(loc: tuple) -> list[str]:
    # pydantic puts the strategy's tag into the path (strategy.progressive.x); a user wrote strategy.x.
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] == "strategy" and parts[1] in STRATEGY_NAMES:
        del parts[1]
    return parts


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        path, msg = _error_path(e["loc"]), e["msg"]
        if e["type"] == "value_error":
            # Our cross-field checks say "field: why"; join the field onto the section's path.
            msg = msg.removeprefix("Value error, ")
            field, sep, why = msg.partition(": ")
            if sep and field.replace("_", "").replace(".", "").isalnum():
                path, msg = path + [field], why
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        lines.append(f"{'.'.join(path) or '<root>'}: {msg}{got}")
    return "invalid config:\n  " + "\n  ".join(lines)


RUN_DIR_TOKEN = "{run_dir}"  # in any path of a config: this run's directory, run.output_dir/run.name


def validate_tree(tree: dict) -> SynergyConfig:
    """The config a tree of sections describes; `{run_dir}` in its strings is replaced by the run directory
    (so `model.path: "{run_dir}/model_init"` follows `run.output_dir`)."""
    try:
        cfg = SynergyConfig.model_validate(tree)
        resolved = _replace_token(tree, str(cfg.run_dir))
        return cfg if resolved == tree else SynergyConfig.model_validate(resolved)
    except ValidationError as err:
        raise ConfigError(_format_errors(err)) from None


def _replace_token(value, run_dir: str):
    if isinstance(value, str):
        return value.replace(RUN_DIR_TOKEN, run_dir)
    if isinstance(value, dict):
        return {k: _replace_token(v, run_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_token(v, run_dir) for v in value]
    return value


def _deep_merge(base: dict, top: dict) -> dict:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_tree(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict:
    """Read one YAML file; `inherit: other.yaml` (relative to this file) deep-merges this file over it."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(f"config file {path}: inherit cycle through {' -> '.join(map(str, _seen))}")
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"config file {path}: {err.strerror}") from None
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path}: not valid YAML: {err}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
    parent = tree.pop("inherit", None)
    if parent is None:
        return tree
    if not isinstance(parent, str):
        raise ConfigError(f"config file {path}: inherit must be a file name")
    return _deep_merge(read_tree(path.parent / parent, (*_seen, path.resolve())), tree)


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> SynergyConfig:
    """Read YAML (or start from defaults when path is None), apply overrides, validate."""
    tree = read_tree(path) if path is not None else {}
    return validate_tree(apply_overrides(tree, list(overrides)))


def dump_config(cfg: SynergyConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def write_resolved(cfg: SynergyConfig, run_dir: str | os.PathLike | None = None) -> Path:
    """Write the fully resolved config beside the run's outputs; returns its path."""
    out = Path(run_dir) if run_dir is not None else cfg.run_dir
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.resolved.yaml"
    path.write_text(dump_config(cfg))
    return path
