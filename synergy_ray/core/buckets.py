"""How the learner cuts its weights into buckets for the sync to the generators.

`layer_key(name)`: the unit that must travel together, the name up to its first numeric part
(`model.text_model.layers.3.self_attn.q_proj.weight` -> `model.text_model.layers.3`); names without a number
(embeddings, final norm, head) are each their own unit. One decoder layer in one bucket keeps vLLM's fused
projections (q/k/v -> qkv_proj, gate/up -> gate_up_proj) whole, which its loader needs.

`plan_buckets(sizes, bucket_bytes)`: consecutive units packed greedily, in model order, into buckets of at
most `bucket_bytes`; a unit larger than a bucket goes alone (it cannot be split without breaking the rule
above). Every name lands in exactly one bucket, and the plan depends only on names and sizes, so every
learner rank computes the same one.
"""

from __future__ import annotations


def layer_key(name: str) -> str:
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:i + 1])
    return name


def plan_buckets(sizes: list[tuple[str, int]], bucket_bytes: int) -> list[list[str]]:
    """Names (with byte sizes, in model order) packed into buckets of whole layers of at most `bucket_bytes`."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    units: list[tuple[list[str], int]] = []
    for name, nbytes in sizes:
        key = layer_key(name)
        if units and layer_key(units[-1][0][0]) == key:
            units[-1][0].append(name)
            units[-1] = (units[-1][0], units[-1][1] + nbytes)
        else:
            units.append(([name], nbytes))
    buckets: list[list[str]] = []
    filled = 0
    for names, nbytes in units:
        if buckets and filled + nbytes <= bucket_bytes:
            buckets[-1] += names
            filled += nbytes
        else:
            buckets.append(list(names))
            filled = nbytes
    return buckets
