"""Learner forward-backward throughput on a GPU, and the learner's core loss on GPU against CPU.

What it measures, on a randomly initialised mid-size Idefics3 (the architecture the demo uses, here at about
0.9B parameters: Llama text 2048 x 16 layers, SigLIP vision 768 x 12 layers, 384-pixel images = 144 image
tokens) in bf16 autocast with fp32 master weights and a fused AdamW:

1. one GRPO learner step = policy forward + backward + frozen-reference forward + `core.objective.grpo_sft_loss`
   + optimiser step, on `batch` sequences of `seq_len` tokens (each: an image prompt, then a completion whose
   first `sft_tokens` tokens are given text with SFT weight 0.2 and the rest policy tokens);
2. tokens/s (median over `steps` timed steps after `warmup` steps) and model FLOPs utilisation:
   MFU = (6 N + 12 L T d) * tokens/s / peak bf16 dense FLOP/s, counting the trained forward-backward only
   (N parameters, L text layers, T sequence length, d hidden; the reference forward is extra work not counted);
3. the same core loss and its gradient on the GPU and on the CPU from identical log-prob tensors (fp32), and
   the bf16-autocast vs fp32 log-prob gap of the model on the same tokens.

Run (needs only torch, transformers, pydantic, PyYAML and this package; no Ray, vLLM or DeepSpeed):
    python benchmarks/gpu_learner.py --out benchmarks/results/gpu_learner.json
    python benchmarks/gpu_learner.py --device cpu --preset tiny        # a seconds-long check of the script
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synergy_ray.config import TinyVLMConfig  # noqa: E402
from synergy_ray.core.logprobs import gather_token_logprobs, shift_for_next_token  # noqa: E402
from synergy_ray.core.objective import grpo_sft_loss  # noqa: E402
from synergy_ray.model.prompting import encode_prompt, image_placeholder_ids, prompt_text  # noqa: E402
from synergy_ray.model.tiny_vlm import build_model_config, build_processor  # noqa: E402

PRESETS = {
    "mid": dict(text_hidden=2048, text_layers=16, text_heads=16, text_intermediate=5632, vision_hidden=768,
                vision_layers=12, vision_heads=12, vision_intermediate=3072, image_size=384, patch_size=16,
                scale_factor=2, max_position_embeddings=4096),
    "tiny": {},  # the demo's shape
}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense, no sparsity


def peak_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def build(preset: str, device: torch.device):
    shape = TinyVLMConfig(**PRESETS[preset])
    processor = build_processor(shape)
    from transformers import Idefics3ForConditionalGeneration

    torch.manual_seed(0)
    with device:
        model = Idefics3ForConditionalGeneration(build_model_config(shape, processor.tokenizer))
    return shape, processor, model


def make_batch(shape: TinyVLMConfig, processor, batch: int, seq_len: int, sft_tokens: int, device):
    """`batch` sequences: one image prompt each, then random completion tokens up to `seq_len`."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    pixels = (torch.rand(shape.image_size, shape.image_size, 3, generator=g) * 255).to(torch.uint8).numpy()
    enc = encode_prompt(processor, prompt_text(processor, "What is (red + green) * (blue + yellow)?"),
                        Image.fromarray(pixels))
    prompt = enc.pop("input_ids")[0]
    enc.pop("attention_mask", None)
    p = len(prompt)
    if seq_len <= p + sft_tokens:
        raise SystemExit(f"--seq-len {seq_len} leaves no policy tokens after a {p}-token prompt")
    special = set(processor.tokenizer.all_special_ids) | image_placeholder_ids(processor)
    plain = torch.tensor([t for t in range(len(processor.tokenizer)) if t not in special])
    completion = plain[torch.randint(0, len(plain), (batch, seq_len - p), generator=g)]
    ids = torch.cat([prompt.expand(batch, -1), completion], dim=1)
    vision = {k: torch.cat([v] * batch) for k, v in enc.items()}
    position = torch.arange(seq_len - 1).expand(batch, -1)  # on the shifted grid: position t scores token t+1
    given = (position >= p - 1) & (position < p - 1 + sft_tokens)
    sampled = position >= p - 1 + sft_tokens
    to = lambda t: t.to(device)  # noqa: E731
    return (to(ids), {k: to(v) for k, v in vision.items()}, to(given.float()), to(sampled.float()), p)


def token_logprobs(model, ids, vision):
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **vision).logits
    logits, targets, _ = shift_for_next_token(logits, ids)
    return gather_token_logprobs(logits, targets)


def loss_of(logp, ref, sft_mask, policy_mask, advantages):
    return grpo_sft_loss(
        logp, logp.detach(), ref, advantages, policy_mask, sft_mask, torch.full_like(logp, 0.2),
        clip_low=0.2, clip_high=0.28, kl_coef=0.005, kl_estimator="k3", aggregation="token_mean",
        total_tokens=int((policy_mask + sft_mask).sum()), total_sequences=logp.shape[0])


def timed_steps(model, batch, advantages, steps: int, warmup: int, device, autocast: bool) -> list[float]:
    ids, vision, given, sampled, _ = batch
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=device.type == "cuda")
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            with torch.no_grad():
                ref = token_logprobs(model, ids, vision)  # the frozen reference's pass (same weights here)
            logp = token_logprobs(model, ids, vision)
        loss, _ = loss_of(logp, ref, given, sampled, advantages)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def loss_on_both(batch, model, advantages, device) -> dict:
    """The core loss and its gradient from identical fp32 log-probs, on `device` and on the CPU."""
    ids, vision, given, sampled, _ = batch
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        lp_bf16 = token_logprobs(model, ids, vision)
    with torch.no_grad():
        lp_fp32 = token_logprobs(model, ids, vision)
    ref = lp_fp32 + 0.01 * torch.randn_like(lp_fp32)
    out = {}
    for where in (device, torch.device("cpu")):
        logp = lp_fp32.detach().to(where).requires_grad_(True)
        loss, _ = loss_of(logp, ref.to(where), given.to(where), sampled.to(where), advantages.to(where))
        loss.backward()
        out[where.type] = (float(loss.detach()), logp.grad.detach().cpu())
    mask = (given + sampled) > 0
    return {
        "loss_device": out[device.type][0], "loss_cpu": out["cpu"][0],
        "loss_abs_diff": abs(out[device.type][0] - out["cpu"][0]),
        "grad_max_abs_diff": float((out[device.type][1] - out["cpu"][1]).abs().max()),
        "bf16_vs_fp32_logprob_max_abs_diff": float((lp_bf16 - lp_fp32).abs()[mask].max()),
        "bf16_vs_fp32_logprob_mean_abs_diff": float((lp_bf16 - lp_fp32).abs()[mask].mean()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="mid")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--sft-tokens", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (the loss stays eager)")
    ap.add_argument("--out", default=None, help="write the JSON record here")
    args = ap.parse_args(argv)
    if args.preset == "tiny" and args.seq_len == 1024:
        args.seq_len, args.batch = 160, 4
    device = torch.device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"

    shape, processor, model = build(args.preset, device)
    n_params = sum(p.numel() for p in model.parameters())
    batch = make_batch(shape, processor, args.batch, args.seq_len, args.sft_tokens, device)
    advantages = torch.where(torch.arange(args.batch) % 2 == 0, 1.0, -1.0).to(device)
    check = loss_on_both(batch, model, advantages, device)
    if args.compile:
        model = torch.compile(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = timed_steps(model, batch, advantages, args.steps, args.warmup, device, autocast=True)
    step_s = statistics.median(times)
    tokens = args.batch * args.seq_len
    flops_per_token = 6 * n_params + 12 * shape.text_layers * args.seq_len * shape.text_hidden
    peak = peak_flops(card) if device.type == "cuda" else None
    record = {
        "what": "GRPO learner step (policy fwd+bwd, reference fwd, core loss, fused AdamW), bf16 autocast",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/gpu_learner.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": card, "torch": torch.__version__, "cuda": torch.version.cuda,
        "preset": args.preset, "compiled": args.compile, "shape": shape.model_dump(), "parameters": n_params,
        "batch": args.batch, "seq_len": args.seq_len, "image_tokens": shape.image_tokens, "prompt_tokens": batch[4],
        "step_seconds": times, "step_seconds_median": step_s, "tokens_per_s": tokens / step_s,
        "model_flops_per_token": flops_per_token,
        "mfu": None if peak is None else flops_per_token * tokens / step_s / peak, "peak_bf16_flops": peak,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "core_loss_check": check,
    }
    print(f"{card}: {n_params / 1e6:.0f}M parameters, batch {args.batch} x {args.seq_len} tokens"
          + (", torch.compile" if args.compile else ""))
    print(f"  step {step_s * 1000:.1f} ms (median of {len(times)}), {tokens / step_s:,.0f} tokens/s"
          + ("" if record["mfu"] is None else f", MFU {100 * record['mfu']:.1f}%")
          + ("" if record["peak_memory_gib"] is None else f", peak memory {record['peak_memory_gib']:.1f} GiB"))
    print(f"  core loss {check['loss_device']:.6f} ({device.type}) vs {check['loss_cpu']:.6f} (cpu): "
          f"|diff| {check['loss_abs_diff']:.2e}, grad max |diff| {check['grad_max_abs_diff']:.2e}; "
          f"bf16 vs fp32 log-probs max |diff| {check['bf16_vs_fp32_logprob_max_abs_diff']:.3f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1))
    ok = check["loss_abs_diff"] < 1e-4 * max(1.0, abs(check["loss_cpu"])) and check["grad_max_abs_diff"] < 1e-6
    print("core loss on", device.type, "matches the CPU" if ok else "DIFFERS from the CPU")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
