"""`synergy-ray submit` and `synergy-ray jobs` against a real Ray head started on loopback (`ray start --head
--block`, dashboard included: the job API lives there), the way a user would drive a cluster.

The submitted job runs `synergy-ray sft` on the smoke config (prepare the tiny model and data, then a Ray Train
+ DeepSpeed SFT job), which exercises the job's working directory, its environment and Ray inside the job in
about a minute; `train` adds two vLLM evaluations to that and takes several.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
HEAD_START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 420


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "synergy_ray.cli", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def ray_head():
    """A standalone Ray head with its dashboard, on free loopback ports; stopped (only it) at the end."""
    gcs, dash, agent, agent_grpc, metrics, client, runtime_env = _free_ports(7)
    temp_dir = tempfile.mkdtemp(prefix="/tmp/srjob")  # short: Ray's socket paths must stay under 108 bytes
    # A user's shell has the environment's bin first; the job's `python` is resolved from it.
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [str(VENV_BIN / "ray"), "start", "--head", "--block", f"--port={gcs}", "--node-ip-address=127.0.0.1",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
         f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
         f"--metrics-export-port={metrics}", f"--ray-client-server-port={client}",
         f"--runtime-env-agent-port={runtime_env}", "--num-cpus=2", f"--temp-dir={temp_dir}",
         "--disable-usage-stats"],
        env=env, cwd=temp_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + HEAD_START_TIMEOUT_S
        while True:
            probe = _cli("jobs", "status", "raysubmit_none", "--address", address, timeout=60)
            if "cannot reach" not in probe.stderr:  # the dashboard answers (here: no such job)
                break
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray head did not come up: {head.stdout.read() if head.poll() is not None else ''}"
                                   f"{probe.stderr}")
            time.sleep(2)
        yield address
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        for pid in _pids_mentioning(temp_dir):  # any straggler of this head, by id
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_submit_smoke_sft_follow_to_success_and_read_logs(ray_head, tmp_path):
    out = tmp_path / "runs"
    submitted = _cli("submit", "configs/smoke_cpu.yaml", f"run.output_dir={out}", f"model.path={out}/model_init",
                     "run.name=jobsmoke", "--command", "sft", "--address", ray_head, "--env", "SYNERGY_PROBE=42")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("raysubmit_"), submitted.stdout
    assert "python -m synergy_ray.cli sft configs/smoke_cpu.yaml" in submitted.stderr

    followed = _cli("jobs", "logs", job_id, "--follow", "--address", ray_head, timeout=JOB_TIMEOUT_S)
    assert followed.returncode == 0, followed.stdout[-3000:] + followed.stderr[-3000:]
    assert f"job {job_id} SUCCEEDED" in followed.stderr

    status = _cli("jobs", "status", job_id, "--address", ray_head)
    assert status.returncode == 0 and status.stdout.startswith("SUCCEEDED"), status.stdout
    logs = _cli("jobs", "logs", job_id, "--address", ray_head).stdout
    assert "[sft] " in logs and " steps, loss " in logs  # the Ray Train SFT stage's own summary line
    exported = out / "jobsmoke" / "sft"
    assert f"SFT model exported to {exported}" in logs
    assert (exported / "config.json").exists()  # written by the job on this (the only) node


def test_bad_config_never_reaches_the_cluster(ray_head):
    before = _cli("jobs", "status", "raysubmit_none", "--address", ray_head)
    refused = _cli("submit", "configs/smoke_cpu.yaml", "rl.mini_batch=3", "--address", ray_head)
    assert refused.returncode == 2 and "rl.mini_batch" in refused.stderr and not refused.stdout
    assert before.returncode == 4 and "raysubmit_none" in before.stderr  # an unknown job id is reported clearly


def test_stop_a_running_job(ray_head, tmp_path):
    submitted = _cli("submit", "configs/smoke_cpu.yaml", f"run.output_dir={tmp_path}", "--address", ray_head)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    stopped = _cli("jobs", "stop", job_id, "--address", ray_head)
    assert stopped.returncode == 0 and stopped.stdout.strip() in ("stop requested", "job had already ended")
    deadline = time.monotonic() + 60
    while (state := _cli("jobs", "status", job_id, "--address", ray_head).stdout).startswith(("PENDING", "RUNNING")):
        assert time.monotonic() < deadline, state
        time.sleep(1)
    assert state.startswith("STOPPED"), state
