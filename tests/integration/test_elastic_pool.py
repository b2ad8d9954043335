"""Multi-node runs on a simulated cluster: learner ranks on two nodes train and sync; elastic rollouts (a node
added grows the generator pool, a node removed shrinks it, no prompt is lost, and a member that joins mid-run
serves the current weights).

Each scenario runs in its own process (elastic_pool_scenario.py, learner_nodes_scenario.py): it needs a `ray.cluster_utils.Cluster`, and
this test session is already connected to the `ray_local` Ray that made the smoke base model.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYNC_GAP_MAX = 2e-3  # as in test_rl_loop: after a sync vLLM's and the learner's log-probs agree to ~1e-7
SCENARIO_TIMEOUT_S = 600


def _scenario(script: str, smoke_run, smoke_base, tmp_path) -> dict:
    """Run a multi-node scenario script in its own process; its RESULT line, parsed."""
    _, prepared = smoke_run
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name(script)), str(smoke_base),
         str(prepared.train_path), str(tmp_path / "work"), str(tmp_path / "runs")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_learner_ranks_on_two_nodes_train_and_sync_lora(smoke_run, smoke_base, tmp_path):
    r = _scenario("learner_nodes_scenario.py", smoke_run, smoke_base, tmp_path)
    planned = r["placement"]["planned"]  # bundles: learner 0, learner 1, generator 0
    assert planned == r["placement"]["placed"] and planned[0] != planned[1], planned
    assert [s["version"] for s in r["steps"]] == [1, 2, 3]
    assert all(s["updates"] == 2.0 for s in r["steps"])  # prompt_batch 4 / mini_batch 2
    assert all(s["gap"] is not None and s["gap"] < SYNC_GAP_MAX for s in r["steps"]), r["steps"]
    # LoRA merged into a plain checkpoint: only the adapted projections moved.
    assert r["changed"] and all("q_proj" in n or "v_proj" in n for n in r["changed"]), r["changed"][:5]


def test_pool_follows_nodes_and_new_members_serve_current_weights(smoke_run, smoke_base, tmp_path):
    r = _scenario("elastic_pool_scenario.py", smoke_run, smoke_base, tmp_path)

    # The run's placement group is where the plan put it: every bundle on its planned (pinned) node.
    assert r["placement"]["planned"] == r["placement"]["placed"] and None not in r["placement"]["placed"]
    assert r["pool_start"] == 1  # the head has room for one generator beside the learner
    assert r["pool_after_add"] == 2  # the added node's CPU took a second member
    assert r["pool_after_remove"] == 1  # its node went away: the run continues at min_generators
    assert [s["pool"] for s in r["steps"]] == [1, 2, 1]
    assert [s["version"] for s in r["steps"]] == [1, 2, 3]
    # No prompt lost: every step produced all 4 prompts x 4 samples, and nothing was re-sent.
    assert [s["num_rollouts"] for s in r["steps"]] == [16, 16, 16]
    assert r["steps"][-1]["lost"] == 0
    assert r["steps"][-1]["failures"] == 1  # the member on the removed node, found dead between steps
    # The member that joined after step 1 got version 1 before serving: its log-probs match the learner's.
    assert len(r["gaps_after_add"]) == 2 and max(r["gaps_after_add"]) < SYNC_GAP_MAX, r["gaps_after_add"]
    assert all(s["gap"] < SYNC_GAP_MAX for s in r["steps"]), r["steps"]
    assert len(r["gaps_after_remove"]) == 1 and r["gaps_after_remove"][0] < SYNC_GAP_MAX
    assert r["cpus_free_after_kill"] == r["cpus_total"]  # shutdown gave back every placement group
