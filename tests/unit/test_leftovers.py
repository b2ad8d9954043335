"""What a command leaves behind: /dev/shm that nothing uses is removed, what a live process uses is kept, and
SIGTERM stops a command the way Ctrl-C does (exit 143, the same clean-up)."""

import os
import subprocess
import sys
import textwrap
import time
from multiprocessing import shared_memory
from pathlib import Path

import pytest

from synergy_ray.processes.profiling import remove_unused_shm, shm_created_since, shm_in_use

pytestmark = pytest.mark.skipif(not Path("/dev/shm").is_dir() or not sys.platform.startswith("linux"),
                                reason="Linux /dev/shm")


def test_unused_shm_is_removed_and_shm_in_use_is_kept():
    since = time.time()
    orphan = f"/dev/shm/psm_synergy_test_{os.getpid()}"
    Path(orphan).write_bytes(b"x" * 64)  # what a killed engine leaves: nobody maps it
    live = shared_memory.SharedMemory(create=True, size=4096)  # mapped by this process
    try:
        path = f"/dev/shm/{live.name.lstrip('/')}"
        assert {orphan, path} <= shm_created_since(since)
        assert path in shm_in_use() and orphan not in shm_in_use()
        assert remove_unused_shm({orphan, path}) == 1
        assert not os.path.exists(orphan) and os.path.exists(path)
    finally:
        live.close()
        live.unlink()
        if os.path.exists(orphan):
            os.unlink(orphan)


def test_a_live_semaphore_is_in_use_although_its_mapping_has_another_name():
    """glibc maps a named semaphore under a temporary name it unlinks (`sem.XXXXXX (deleted)`), so only its
    inode ties the mapping to `sem.mp-*`: found by name alone, a starting engine's semaphores were removed
    (its worker then failed to start: FileNotFoundError in SemLock._rebuild)."""
    import multiprocessing

    from synergy_ray.processes.profiling import mapped_shm

    since = time.time()
    lock = multiprocessing.get_context("spawn").Lock()  # what vLLM's engine hands its worker
    path = "/dev/shm/sem." + lock._semlock.name.lstrip("/")
    assert path in shm_created_since(since)
    assert path in mapped_shm() and path in shm_in_use()
    assert remove_unused_shm({path}) == 0 and os.path.exists(path)
    del lock


def test_only_files_created_since_are_candidates():
    old = f"/dev/shm/sem.mp-synergy_test_{os.getpid()}"
    Path(old).write_bytes(b"x")
    try:
        os.utime(old, (time.time() - 3600, time.time() - 3600))  # ctime is now; mtime does not matter
        assert old in shm_created_since(time.time() - 60)
        assert old not in shm_created_since(time.time() + 60)
    finally:
        os.unlink(old)


def test_sigterm_is_handled_like_ctrl_c_and_says_so():
    code = textwrap.dedent("""
        import os, signal, sys, time
        from synergy_ray.processes import leftovers
        try:
            with leftovers.none_left():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        except KeyboardInterrupt:
            sys.exit(143 if leftovers.was_terminated() else 130)
        sys.exit(0)
    """)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert done.returncode == 143
    assert time.monotonic() - start < 5  # stopped at once, not after the sleep


def test_a_ray_started_by_the_caller_is_left_running():
    """A command run inside a process that already has Ray (a test, a notebook) must not shut it down."""
    code = textwrap.dedent("""
        import ray
        from synergy_ray.processes import leftovers
        ray.init(num_cpus=1, include_dashboard=False)
        with leftovers.none_left():
            pass
        assert ray.is_initialized()
        ray.shutdown()
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert done.returncode == 0
