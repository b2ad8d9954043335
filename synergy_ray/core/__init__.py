"""Pure post-training logic: losses, advantages, rewards, difficulty levels, curriculum.

Everything here runs on plain tensors, strings and numbers, on CPU, in milliseconds. Nothing in this package
imports Ray, vLLM, DeepSpeed or `synergy_ray.config`: workers pass plain arguments in, so the math can be tested
(and reused) without a cluster. `tests/unit/test_core_boundary.py` keeps it that way.

Modules: aggregation (token/sequence means), advantages (GRPO, Dr.GRPO, RLOO), logprobs, policy_loss (clipped
surrogate with clip-higher and truncated importance sampling), kl (k1/k3), sft_loss (weighted NLL), rewards
(answer extraction and verification), difficulty (the paper's L1-L5), curriculum (pass-rate-weighted sampling),
eval_stats (per-question and per-level evaluation statistics).
"""
