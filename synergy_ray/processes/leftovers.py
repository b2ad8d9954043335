"""A command leaves nothing behind on this machine when it ends, whether it finished, failed, was interrupted
(Ctrl-C) or terminated (SIGTERM, which `stop_on_sigterm` turns into Ctrl-C's KeyboardInterrupt, so the same
clean-up runs).

Two kinds of leftover are handled, both seen after runs here:
- the local Ray's processes (raylet, workers and the vLLM engines they spawned) that outlive the driver for a
  while: the embedded Ray is shut down and its processes are waited for;
- the /dev/shm files of Python's multiprocessing (`psm_*` segments, `sem.mp-*` semaphores) that vLLM's engine
  and its workers create and unlink only on a clean exit. Every such file of this user created since the
  command started and mapped or held open by no process any more is removed. A file some live process still
  uses (another run's engine, say) is never touched.

A SIGKILL of the driver runs none of this.

`end_member` does the same for one generator the coordinator let go without a clean stop (a hung engine does
not exit when its actor is killed): it runs as a task on that member's node.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

from synergy_ray.processes.profiling import kill_if_same, process_tree, remove_unused_shm, shm_created_since, start_time

PROCESS_EXIT_WAIT_S = 20.0  # Ray's workers and vLLM's engine processes end within seconds of the raylet

_terminated = threading.Event()


def _raise_terminated(signum, frame) -> None:
    _terminated.set()  # Ray's `get` turns any exception raised by a handler into KeyboardInterrupt: say it here
    raise KeyboardInterrupt


def was_terminated() -> bool:
    """Whether the KeyboardInterrupt being handled came from SIGTERM rather than Ctrl-C."""
    return _terminated.is_set()


def stop_on_sigterm():
    """SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does; returns the handler it replaced.
    `ray.init` installs its own handler (`sys.exit`), so this is called again after it."""
    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, _raise_terminated)
    return None


@contextlib.contextmanager
def none_left() -> Iterator[None]:
    """Run the body; whatever ends it, stop the local Ray it started (one already running, a caller's, is left
    alone) and remove the /dev/shm its engines left unused."""
    since = time.time()
    ray_before = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    previous = stop_on_sigterm()
    try:
        yield
    finally:
        if not ray_before:
            stop_local_ray()

        remove_unused_shm(shm_created_since(since))
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def stop_local_ray() -> None:
    """Shut down the Ray this process started (a cluster it only joined is left running) and wait for the
    processes it spawned to end."""
    if "ray" not in sys.modules:
        return
    import ray

    if not ray.is_initialized():
        return

    # Listed before the shutdown: afterwards the workers are no longer our descendants. This process's own
    # multiprocessing resource tracker lives until it exits, so it is not waited for.
    spawned = [pid for pid in process_tree(os.getpid())[1:] if not _is_resource_tracker(pid)]
    ray.shutdown()
    deadline = time.monotonic() + PROCESS_EXIT_WAIT_S
    while time.monotonic() < deadline and any(_alive(pid) for pid in spawned):
        time.sleep(0.2)


def _is_resource_tracker(pid: int) -> bool:
    try:
        return b"multiprocessing.resource_tracker" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def end_member(processes: tuple[tuple[int, int], ...], shm: tuple[str, ...]) -> tuple[int, int]:
    """Kill what is left of a member's processes and remove the /dev/shm they used once nothing maps it;
    returns (processes killed, files removed). Runs on the member's node."""

    killed = kill_if_same(processes)
    deadline = time.monotonic() + PROCESS_EXIT_WAIT_S
    while time.monotonic() < deadline and any(start_time(pid) == t and _alive(pid) for pid, t in processes):
        time.sleep(0.1)
    return killed, remove_unused_shm(set(shm))
