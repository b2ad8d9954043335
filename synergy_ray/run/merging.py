"""Model merging for the `merge` strategy: an SFT and an RL checkpoint combined with mergekit.

Methods: linear (weights w_sft and 1 - w_sft), SLERP (t = w_sft, from the RL model toward the SFT model) and
TIES (task vectors against the common base, weights w_sft / 1 - w_sft, density 1). The paper reports linear
with w_sft = 0.25 as its best. The processor files (image processor, chat template) are copied from the SFT
checkpoint so the merged directory serves and trains like any other.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "chat_template.jinja",
                   "chat_template.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _shape_signature(path: Path) -> dict:
    from safetensors import safe_open

    shapes = {}
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            for name in f.keys():
                shapes[name] = tuple(f.get_slice(name).get_shape())
    return shapes


def check_mergeable(a: str | Path, b: str | Path) -> None:
    """Raise a ValueError naming the first difference when two checkpoints are not the same architecture."""
    a, b = Path(a), Path(b)
    arch = [json.loads((p / "config.json").read_text()).get("architectures") for p in (a, b)]
    if arch[0] != arch[1]:
        raise ValueError(f"cannot merge {a} ({arch[0]}) with {b} ({arch[1]}): different architectures")
    sa, sb = _shape_signature(a), _shape_signature(b)
    if sa.keys() != sb.keys():
        missing = sorted(sa.keys() ^ sb.keys())[:3]
        raise ValueError(f"cannot merge {a} with {b}: different tensors, e.g. {missing}")
    for name in sa:
        if sa[name] != sb[name]:
            raise ValueError(f"cannot merge {a} with {b}: {name} is {sa[name]} vs {sb[name]}")


def merge_config(sft: str, rl: str, method: str, sft_weight: float, base: str | None = None) -> dict:
    if method == "linear":
        return {"merge_method": "linear", "dtype": "float32", "models": [
            {"model": sft, "parameters": {"weight": sft_weight}},
            {"model": rl, "parameters": {"weight": 1.0 - sft_weight}}]}
    if method == "slerp":
        return {"merge_method": "slerp", "dtype": "float32", "base_model": rl,
                "models": [{"model": rl}, {"model": sft}], "parameters": {"t": sft_weight}}
    if method == "ties":
        if base is None:
            raise ValueError("TIES merging needs the common base model")
        return {"merge_method": "ties", "dtype": "float32", "base_model": base, "parameters": {"normalize": True},
                "models": [{"model": sft, "parameters": {"weight": sft_weight, "density": 1.0}},
                           {"model": rl, "parameters": {"weight": 1.0 - sft_weight, "density": 1.0}}]}
    raise ValueError(f"unknown merge method {method!r}; expected linear, slerp or ties")


def merge_checkpoints(sft: str | Path, rl: str | Path, out: str | Path, method: str = "linear",
                      sft_weight: float = 0.25, base: str | Path | None = None) -> Path:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    check_mergeable(sft, rl)
    if base is not None:
        check_mergeable(sft, base)
    config = MergeConfiguration.model_validate(
        merge_config(str(sft), str(rl), method, sft_weight, str(base) if base else None))
    out = Path(out)
    run_merge(config, str(out), MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True,
                                            random_seed=0))
    for name in PROCESSOR_FILES:
        if (Path(sft) / name).exists():
            shutil.copy(Path(sft) / name, out / name)
    return out
