"""Learner -> vLLM weight sync over shared memory, through vLLM's own weight-transfer API.

What this implements
--------------------
* `ShmWeightTransferEngine`, a worker-side engine for vLLM's RL weight-transfer API
  (`vllm.config.WeightTransferConfig`, `WeightTransferEngineFactory`), registered under the backend name
  ``"shm"``. vLLM's built-in backends (``nccl``, ``ipc``, ...) need CUDA; this one works on CPU (and GPU).
* The sender side (`weight_files`, which does not import vLLM, so learner ranks never load it):
  `send_weights(named_tensors) -> update_info` writes the tensors (HF checkpoint names, any subset of the
  model's parameters) into one safetensors file under ``/dev/shm`` and returns a tiny dict ``{"path": ...}``.
  Only that dict crosses vLLM's RPC; the tensors stay whole.
* The engine side: `apply_weight_update(llm, update_info)` drives the public session API on an in-process
  `vllm.LLM` (``collective_rpc("start_weight_update" | "update_weights" | "finish_weight_update")``, the same
  calls `AsyncLLM.update_weights` etc. make) and then invalidates what the old weights produced (prefix KV
  cache, encoder-output cache). `push_weights(llm, named_tensors)` is send + apply + delete in one call, for
  the usual case where the tensors reached the engine's process through Ray's object store.
* `engine_weight_transfer_kwargs()`: the extra `LLM(...)` arguments that switch the backend on.

Why this transport
------------------
`LLM.collective_rpc` serialises its arguments with msgpack: a dict of tensors arrives in the worker as nested
lists (slow, and the dtype is lost). A safetensors file on ``/dev/shm`` is RAM, keeps every tensor whole with
its name, dtype and shape, needs no process group (so no rendezvous with the engine's spawned processes), and
works identically for one worker or several (each worker of a tensor-parallel engine reads the same file).

How the backend reaches vLLM's spawned processes
------------------------------------------------
vLLM's engine core and workers are separate (spawned) processes; a registration made in the parent does not
exist there. `engine_weight_transfer_kwargs()` therefore also sets ``worker_extension_cls`` to
`WeightSyncWorkerExtension` (a documented `LLM`/`EngineArgs` option holding an import path): each worker
imports this module while it initialises, before it loads the model and builds its weight-transfer engine,
and importing this module registers the backend. (A ``vllm.general_plugins`` entry point would do the same.)

How weights are loaded into the model
-------------------------------------
Exactly as vLLM's own ``ipc`` backend and `reload_weights` do: layerwise reloading
(`initialize_layerwise_reload` / `model.load_weights(...)` / `finalize_layerwise_reload`). `load_weights` takes
HF checkpoint names and stacks q/k/v into ``qkv_proj`` and gate/up into ``gate_up_proj``; the layerwise
reload re-runs each touched layer's post-load processing, which matters on CPU: vLLM-CPU repacks linear
weights into oneDNN handles and drops the plain weight, so copying into ``param.data`` would change nothing.
Layers that receive nothing keep their current (kernel-format) tensors, so partial updates work, with one
rule: a fused vLLM layer is rebuilt from *all* its checkpoint pieces. If an update carries ``q_proj`` but not
``k_proj``/``v_proj`` of the same attention (LoRA on q,v only, say), the worker completes the group from the
model's checkpoint on disk, which is still those pieces' current value because they were never pushed (it
checks this and raises otherwise). That check runs before the model is touched; a name the model does not
know fails inside `load_weights`, after which the engine finalises the reload so the model stays servable
(layers completed before the bad name keep their new values). Either way the engine keeps serving.

After an update `apply_weight_update` resets the prefix cache and the encoder cache: measured here, without
the encoder-cache reset a repeated image reuses vision-tower outputs computed with the old weights.

What it leaves out
------------------
* Same-node only: the file lives in the node's ``/dev/shm``. Across nodes, move the tensors with Ray's object
  store and call `push_weights` in the engine's process (what the generator actor does). On multi-GPU
  clusters vLLM's ``nccl`` backend is the faster path; it plugs into the same session API.
* Buckets: a session (`begin_update` / `load_update` per bucket / `finish_update`) takes any number of
  files, one bucket each, so the RAM a sync needs beyond the model is one bucket (the learner plans them,
  `core.buckets`, whole layers per bucket).
* No tied-weight or quantised-checkpoint special cases beyond what `load_weights` already does.
* Fused groups are known by the HF suffixes vLLM stacks for the supported architectures
  (``q_proj/k_proj/v_proj`` and ``gate_proj/up_proj``); other fused layouts must be pushed whole.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from synergy_ray.weight_files import release_update, send_weights

BACKEND = "shm"
# vLLM stacks these HF projections into one layer (qkv_proj, gate_up_proj): such a layer is rebuilt only
# when every piece has arrived, so a partial update must carry all of them (the worker fills them in).
FUSED_FAMILIES: tuple[tuple[str, ...], ...] = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))

try:  # vLLM is an optional dependency of the package; everything below needs it except the sender helpers.
    from vllm.distributed.weight_transfer import WeightTransferEngine, WeightTransferEngineFactory
    from vllm.distributed.weight_transfer.base import WeightTransferInitInfo, WeightTransferUpdateInfo
except ImportError:  # pragma: no cover - exercised only where vLLM is absent
    WeightTransferEngine = WeightTransferEngineFactory = None  # type: ignore[assignment,misc]
    WeightTransferInitInfo = WeightTransferUpdateInfo = object  # type: ignore[assignment,misc]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------
# Engine configuration
# ---------------------------------------------------------------------------------------------------------
class WeightSyncWorkerExtension:
    """Empty worker mix-in: naming it as ``worker_extension_cls`` makes every vLLM worker import this module
    (and so register the ``shm`` backend) before it builds its weight-transfer engine. It adds no methods."""


def engine_weight_transfer_kwargs() -> dict[str, Any]:
    """Extra `vllm.LLM(...)` / `EngineArgs` arguments that enable the ``shm`` weight-transfer backend."""
    return {
        "weight_transfer_config": {"backend": BACKEND},
        "worker_extension_cls": f"{WeightSyncWorkerExtension.__module__}.{WeightSyncWorkerExtension.__qualname__}",
    }


# ---------------------------------------------------------------------------------------------------------
# Engine side (the process that owns the `vllm.LLM`)
# ---------------------------------------------------------------------------------------------------------
def begin_update(llm: Any) -> None:
    """Open a weight-update session on every worker of an in-process `vllm.LLM` (public session API)."""
    llm.collective_rpc("start_weight_update")


def load_update(llm: Any, update_info: Mapping[str, Any]) -> None:
    """Load one file of weights (a bucket) inside an open session; only a path crosses vLLM's RPC.

    A bucket must hold whole layers (see `core.buckets`): each layer is rebuilt from the pieces it receives.
    If this raises, the worker has already closed the session (and restored a runnable model).
    """
    llm.collective_rpc("update_weights", kwargs={"update_info": {"path": str(update_info["path"])}})


def finish_update(llm: Any, reset_caches: bool = True) -> None:
    """Close the session; drop the KV blocks and vision-encoder outputs the old weights computed."""
    llm.collective_rpc("finish_weight_update")
    if reset_caches:
        if not llm.reset_prefix_cache():
            raise RuntimeError("weight sync: could not reset the prefix cache (requests still running?)")
        llm.llm_engine.reset_encoder_cache()


def load_tensors(llm: Any, named_tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
                 directory: str | os.PathLike | None = None) -> float:
    """`send_weights` + `load_update` + `release_update` inside an open session; returns seconds."""
    start = time.perf_counter()
    info = send_weights(named_tensors, directory)
    try:
        load_update(llm, info)
    finally:
        release_update(info)
    return time.perf_counter() - start


def apply_weight_update(llm: Any, update_info: Mapping[str, Any], reset_caches: bool = True) -> None:
    """One whole session for one file: begin, load, finish. Must not overlap a `generate` call."""
    begin_update(llm)
    load_update(llm, update_info)
    finish_update(llm, reset_caches)


def push_weights(llm: Any, named_tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
                 directory: str | os.PathLike | None = None) -> float:
    """A whole session for one set of tensors on an in-process `vllm.LLM`; returns seconds."""
    start = time.perf_counter()
    begin_update(llm)
    load_tensors(llm, named_tensors, directory)
    finish_update(llm)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------------
# Worker side: the engine vLLM builds inside each worker process
# ---------------------------------------------------------------------------------------------------------
@dataclass
class ShmWeightTransferInitInfo(WeightTransferInitInfo):  # type: ignore[misc,valid-type]
    """No rendezvous: the data plane is a file, so `init_weight_transfer_engine` is optional and takes {}."""


@dataclass
class ShmWeightTransferUpdateInfo(WeightTransferUpdateInfo):  # type: ignore[misc,valid-type]
    path: str
    num_tensors: int | None = None
    num_bytes: int | None = None


def _module_of(name: str) -> tuple[str, str]:
    module, _, param = name.rpartition(".")
    return module, param


def required_pieces(names: Iterable[str]) -> set[str]:
    """HF names that must arrive together with `names` for vLLM to rebuild every layer they touch.

    For a piece of a fused family (``...self_attn.q_proj.weight``) that is the ``.weight`` of every sibling
    (k_proj, v_proj). A lone bias also needs its module's ``.weight`` (the bias itself stays live during a
    reload, the weight does not).
    """
    need: set[str] = set()
    for name in names:
        module, param = _module_of(name)
        parent, _, leaf = module.rpartition(".")
        family = next((f for f in FUSED_FAMILIES if leaf in f), None)
        if family is not None:
            need.update(f"{parent}.{member}.weight" for member in family)
        elif param != "weight":
            need.add(f"{module}.weight")
    return need


class _SuppressUntouchedLayerWarnings(logging.Filter):
    """During a partial update every layer that received nothing logs 'Failed to load weights'; that is the
    expected outcome here (it keeps its current tensors), so those lines are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to load weights" not in record.getMessage()


if WeightTransferEngine is not None:

    class ShmWeightTransferEngine(WeightTransferEngine[ShmWeightTransferInitInfo, ShmWeightTransferUpdateInfo]):
        """Reads a safetensors file from shared memory and loads it with the model's own `load_weights`."""

        init_info_cls = ShmWeightTransferInitInfo
        update_info_cls = ShmWeightTransferUpdateInfo

        def __init__(self, config, vllm_config, device, model) -> None:
            super().__init__(config, vllm_config, device, model)
            self._reloading = False
            self._ever_pushed: set[str] = set()
            self._fill_cache: dict[str, torch.Tensor] = {}
            self._checkpoint_names: set[str] | None = None

        def init_transfer_engine(self, init_info: ShmWeightTransferInitInfo) -> None:
            pass

        def start_weight_update(self) -> None:
            # Layerwise reload starts at the first chunk, after it has been validated: an update rejected
            # before then leaves the model untouched.
            self._reloading = False

        def update_weights(self, update_info: dict[str, Any]) -> None:
            self.receive_weights(self.parse_update_info(update_info))
            if self.device.type != "cpu":  # the base class syncs unconditionally, which fails on CPU
                torch.accelerator.synchronize()

        def receive_weights(self, update_info: ShmWeightTransferUpdateInfo) -> None:
            from safetensors import safe_open

            from vllm.model_executor.model_loader.mtp_validation import disable_mtp_completeness_check
            from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

            # Tensors are read one at a time as the loader asks for them (the file is memory-mapped), so the
            # worker's extra memory is about one tensor, not the whole bucket.
            with safe_open(update_info.path, framework="pt", device="cpu") as f:
                names = list(f.keys())
                fills = self._complete_fused_groups(set(names))
                self._ever_pushed.update(names)
                for name in names:
                    self._fill_cache.pop(name, None)
                weights = itertools.chain(((n, f.get_tensor(n)) for n in names), fills)
                if not self._reloading:
                    initialize_layerwise_reload(self.model)
                    self._reloading = True
                try:
                    with disable_mtp_completeness_check():
                        self.model.load_weights(weights)
                except BaseException:
                    # e.g. a name the model does not know. The worker ends the session without calling
                    # finish_weight_update, so put the layers back in serving form here before re-raising
                    # (layers completed before the error keep their new values).
                    self.finish_weight_update()
                    raise

        def finish_weight_update(self) -> None:
            if not self._reloading:
                return
            from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

            quiet = _SuppressUntouchedLayerWarnings()
            reload_logger = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
            reload_logger.addFilter(quiet)
            try:
                finalize_layerwise_reload(self.model, self.model_config)
            finally:
                reload_logger.removeFilter(quiet)
                self._reloading = False

        def shutdown(self) -> None:
            self._fill_cache.clear()

        # -- partial updates ---------------------------------------------------------------------------
        def _complete_fused_groups(self, pushed: set[str]) -> list[tuple[str, torch.Tensor]]:
            missing = required_pieces(pushed) - pushed
            if not missing:
                return []
            if self._checkpoint_names is None or not missing <= (self._checkpoint_names | set(self._fill_cache)):
                self._read_checkpoint(missing)
            assert self._checkpoint_names is not None
            unknown = sorted(n for n in missing if n not in self._checkpoint_names)
            if unknown:
                raise ValueError(
                    "weight sync: the update does not hold every piece of the layers it touches and the "
                    f"checkpoint has no such names to complete it from: {unknown[:6]} "
                    f"({len(unknown)} in all). Send the whole fused group (q/k/v_proj, gate/up_proj).")
            stale = sorted(n for n in missing if n in self._ever_pushed)
            if stale:
                raise ValueError(
                    "weight sync: pieces of fused layers were pushed before but are missing now, so the "
                    f"checkpoint no longer holds their current value: {stale[:6]}. Push the whole group.")
            return [(n, self._fill_cache[n]) for n in sorted(missing)]

        def _read_checkpoint(self, wanted: set[str]) -> None:
            """One pass over the served checkpoint with vLLM's loader, keeping only the `wanted` tensors."""
            from vllm.model_executor.model_loader import get_model_loader

            loader = get_model_loader(self.vllm_config.load_config)
            names: set[str] = set()
            for name, tensor in loader.get_all_weights(self.model_config, self.model):
                names.add(name)
                if name in wanted and name not in self._ever_pushed:
                    self._fill_cache[name] = tensor.detach().to("cpu", copy=True)
            self._checkpoint_names = names

    def _register() -> None:
        try:
            WeightTransferEngineFactory.register_engine(BACKEND, ShmWeightTransferEngine)
        except ValueError:  # already registered in this process (module imported twice / plugin + import)
            pass

    _register()
