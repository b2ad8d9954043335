"""synergy_ray.core must import with Ray, vLLM, DeepSpeed and synergy_ray.config unavailable."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

CHECK = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    BLOCKED = ("ray", "vllm", "deepspeed", "synergy_ray.config")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"blocked import of {name}")
            return None

    for name in BLOCKED:
        sys.modules[name] = None  # also catches `import ray` when a finder ahead of ours would find it
    sys.meta_path.insert(0, Block())

    import synergy_ray.core as core
    names = sorted(m.name for m in pkgutil.walk_packages(core.__path__, "synergy_ray.core."))
    for name in names:
        importlib.import_module(name)
    from synergy_ray.core.rewards import answers_match  # its math_verify import is lazy: run it too
    assert answers_match("0.5", "1/2")
    print(" ".join(names))
    """
)

EXPECTED = {"advantages", "aggregation", "answers", "choices", "curriculum", "difficulty", "kl", "log_ratio",
            "logprobs", "placement", "policy_loss", "pool", "rewards", "sft_loss", "eval_stats"}


def test_core_imports_without_ray_vllm_deepspeed_or_config():
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    imported = {name.rsplit(".", 1)[-1] for name in result.stdout.split()}
    assert EXPECTED <= imported
