"""Peak resident memory of a role's process tree, for the benchmarks' per-role memory table.

Each role actor answers `peak_rss()` with this. A vLLM engine lives mostly in processes it spawned (the engine
core and its worker), so the tree is walked: the actor's own peak plus the peak of every live descendant. The
descendants' peaks may have happened at different moments, so their sum is an upper bound of the tree's true
peak. Linux reads `VmHWM` from /proc; elsewhere only the process itself is counted (getrusage).

The same /proc walk finds the shared memory (/dev/shm) a process tree maps, so what a killed engine never
unlinked can be removed once nothing maps it (`remove_unused_shm`). `timed` times one part of a step.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return 0.0


def _children(pid: int) -> list[int]:
    """Live child pids of `pid` (from each process's stat line: field 4 is the parent pid)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        fields = text.rsplit(")", 1)[-1].split()  # the name in parentheses may contain spaces
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def peak_rss_mib(pid: int | None = None) -> dict[str, float]:
    """{"self": peak MiB of the process, "children": summed peaks of its live descendants, "total": both}."""
    pid = pid or os.getpid()
    if not sys.platform.startswith("linux"):
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
        return {"self": own, "children": 0.0, "total": own}
    own = _hwm_mib(pid)
    children, stack = 0.0, _children(pid)
    while stack:
        child = stack.pop()
        try:
            children += _hwm_mib(child)
        except OSError:
            continue
        stack += _children(child)
    return {"self": own, "children": children, "total": own + children}


def process_tree(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack += _children(p)
    return out


def _status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def mark_rss() -> float:
    """Current resident MiB of this process tree, and its peak reset to now (Linux `clear_refs` 5), so a
    later `peak_rss_mib()` measures the peak since this mark. Elsewhere returns 0 and resets nothing."""
    if not sys.platform.startswith("linux"):
        return 0.0
    total = 0.0
    for pid in process_tree(os.getpid()):
        try:
            total += _status_mib(pid, "VmRSS")
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            continue
    return total


def process_names(pid: int | None = None) -> dict[int, str]:
    """The live descendants of a process (this one by default): pid -> command line as it names itself
    (vLLM's engine process reads `VLLM::EngineCore`). Linux only; elsewhere empty."""
    if not sys.platform.startswith("linux"):
        return {}
    names = {}
    for child in process_tree(pid or os.getpid())[1:]:
        try:
            names[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # it ended while we looked
            continue
    return names


PYTHON_SHM_PREFIXES = ("/dev/shm/psm_", "/dev/shm/sem.mp-")  # multiprocessing's segments and semaphores


def python_shm_by_inode() -> dict[int, str]:
    """Inode -> path of every multiprocessing file in /dev/shm now."""
    found = {}
    for prefix in PYTHON_SHM_PREFIXES:
        root, _, start = prefix.rpartition("/")
        for entry in Path(root).glob(f"{start}*"):
            try:
                found[entry.lstat().st_ino] = str(entry)
            except OSError:  # removed meanwhile
                continue
    return found


def _mapped_shm_inodes(proc: Path) -> set[int]:
    """Inodes of the /dev/shm files one process (given by its /proc directory) maps.

    By inode, not by name: glibc's `sem_open` maps a semaphore under a temporary name it then links to the
    real one and unlinks, so the maps show `/dev/shm/sem.XXXXXX (deleted)` for a live `sem.mp-*` semaphore."""
    try:
        lines = (proc / "maps").read_text().splitlines()
    except OSError:  # another user's process, or it ended
        return set()
    inodes = set()
    for line in lines:
        fields = line.split(maxsplit=5)  # address perms offset dev inode path
        if len(fields) == 6 and fields[5].startswith("/dev/shm/"):
            inodes.add(int(fields[4]))
    return inodes


def mapped_shm_of(proc: Path, by_inode: dict[int, str] | None = None) -> set[str]:
    """The multiprocessing /dev/shm files (segments and semaphores) that one process maps."""
    by_inode = python_shm_by_inode() if by_inode is None else by_inode
    return {by_inode[i] for i in _mapped_shm_inodes(proc) if i in by_inode}


def mapped_shm(pid: int | None = None) -> set[str]:
    """The /dev/shm files of Python's multiprocessing (shared-memory segments, named semaphores) that a process
    or its descendants map; Ray's own (its object store) are left alone.

    vLLM's engine and its workers talk through such segments (`psm_*`) and semaphores (`sem.mp-*`); their
    creator unlinks them only when it exits cleanly, so an engine that is killed leaves them behind.
    """
    if not sys.platform.startswith("linux"):
        return set()
    by_inode = python_shm_by_inode()
    names: set[str] = set()
    for p in process_tree(pid or os.getpid()):
        names |= mapped_shm_of(Path(f"/proc/{p}"), by_inode)
    return names


def unlink_all(paths: set[str]) -> int:
    """Remove those of `paths` that still exist; returns how many were removed."""
    removed = 0
    for path in paths:
        try:
            os.unlink(path)
            removed += 1
        except OSError:
            continue
    return removed


def shm_in_use() -> set[str]:
    """The multiprocessing /dev/shm files that some process this user can see maps or holds open."""
    if not sys.platform.startswith("linux"):
        return set()
    inodes: set[int] = set()
    for proc in Path("/proc").glob("[0-9]*"):
        inodes |= _mapped_shm_inodes(proc)
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:  # another user's process, or it ended
            continue
        for fd in fds:
            try:
                if os.readlink(fd).startswith("/dev/shm/"):
                    inodes.add(os.stat(fd).st_ino)
            except OSError:
                continue
    by_inode = python_shm_by_inode()
    return {by_inode[i] for i in inodes if i in by_inode}


def shm_created_since(t: float) -> set[str]:
    """This user's multiprocessing /dev/shm files created at or after time `t` (seconds since the epoch)."""
    root = Path("/dev/shm")
    if not root.is_dir():
        return set()
    found = set()
    for entry in root.iterdir():
        path = str(entry)
        if not path.startswith(PYTHON_SHM_PREFIXES):
            continue
        try:
            st = entry.lstat()
        except OSError:
            continue
        if st.st_uid == os.getuid() and st.st_ctime >= t - 1:  # 1 s of slack: ctime is coarse on some filesystems
            found.add(path)
    return found


def remove_unused_shm(candidates: set[str]) -> int:
    """Remove those of `candidates` that no process maps or holds open any more (so nothing alive can lose
    them); returns how many were removed. This is how memory a killed process never unlinked is found."""
    if not candidates:
        return 0
    return unlink_all(candidates - shm_in_use())


def start_time(pid: int) -> int | None:
    """When a process started (clock ticks since boot, /proc/PID/stat field 22); None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    return int(fields[19])  # fields after the name start at field 3


def kill_if_same(processes: tuple[tuple[int, int], ...]) -> int:
    """SIGKILL each (pid, start time) still running as that same process (a stopped or hung one included);
    returns how many were killed."""
    import signal

    killed = 0
    for pid, started in processes:
        if start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                continue
    return killed


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """`timings[key]` = wall seconds the `with` block took (also when it raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = time.perf_counter() - start
