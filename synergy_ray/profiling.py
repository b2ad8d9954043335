"""Peak resident memory of a role's process tree, for the benchmarks' per-role memory table.

Each role actor answers `peak_rss()` with this. A vLLM engine lives mostly in processes it spawned (the engine
core and its worker), so the tree is walked: the actor's own peak plus the peak of every live descendant. The
descendants' peaks may have happened at different moments, so their sum is an upper bound of the tree's true
peak. Linux reads `VmHWM` from /proc; elsewhere only the process itself is counted (getrusage).
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path


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


def _tree(pid: int) -> list[int]:
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
    for pid in _tree(os.getpid()):
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
    for child in _tree(pid or os.getpid())[1:]:
        try:
            names[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # it ended while we looked
            continue
    return names


PYTHON_SHM_PREFIXES = ("/dev/shm/psm_", "/dev/shm/sem.mp-")  # multiprocessing's segments and semaphores


def mapped_shm(pid: int | None = None) -> set[str]:
    """The /dev/shm files of Python's multiprocessing (shared-memory segments, named semaphores) that a process
    or its descendants map; Ray's own (its object store) are left alone.

    vLLM's engine and its workers talk through such segments (`psm_*`) and semaphores (`sem.mp-*`); their
    creator unlinks them only when it exits cleanly, so an engine that is killed leaves them behind.
    """
    if not sys.platform.startswith("linux"):
        return set()
    names = set()
    for p in _tree(pid or os.getpid()):
        try:
            lines = Path(f"/proc/{p}/maps").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
            if path.startswith(PYTHON_SHM_PREFIXES) and not path.endswith(" (deleted)"):
                names.add(path)
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
