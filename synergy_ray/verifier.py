"""Verifier workers: a pool of CPU actors that score completions with `core.rewards`, each item under a time limit.

Scoring itself is `core.rewards.score_completion` (math_verify equivalence, multiple choice, format); this module
only adds the time limit, the worker and the pool.

The time limit. A pathological answer can make the checker hang inside sympy, in C code that holds the GIL
(`\\boxed{9^{9^{9^{9}}}}` ran for over 40 s here with math_verify's own guard off), so neither a thread nor a Python
timer in the actor can stop it. Each actor therefore owns one long-lived child process that does the scoring: a
fresh interpreter (`python -c`, so no Ray or CUDA state is forked) that talks over a socket pair through
multiprocessing's Connection. Not multiprocessing's "spawn"/"forkserver": they re-run the parent's `__main__` in
the child (a Ray worker's default_worker.py; a user's script without a main guard fails). The actor sends one
item at a time and waits at most `timeout_s`; on expiry it kills the child (SIGTERM, then SIGKILL), records the
item as timed out with reward 0 (format included: a hung check earns nothing), and starts a fresh child for the
next item. The replacement starts in the background and is waited for, without a clock, before the next item is
sent, so no item's time limit pays for start-up (importing sympy takes seconds on a busy machine).

Why one item at a time rather than a batch with per-item acks: on a timeout we know exactly which item hung, and
no late answer from a killed child can be mistaken for the next item's; a socket round trip costs ~0.04 ms, small
next to a math_verify check (~3 ms here). math_verify's own signal.alarm limits (core.rewards.MATH_VERIFY_TIMEOUT_S
per parse and per comparison) stay on, since the child scores in its main thread: a second, cheaper guard that
ends most slow checks without a restart, but scores the answer as wrong (keeping the format reward) rather than
timed out. With `timeout_s` at or below that limit, the worker's own limit usually fires first.

Orphans: the child asks the kernel (PR_SET_PDEATHSIG) to kill it when the actor dies, since a hung child holds
the GIL and could not notice by itself. Inside Ray a killed worker's children are also cleaned up by Ray.

Resources: a Verifier reserves `num_cpus` (default 0) Ray CPUs. Scoring is light and bursty and the generator and
learner need the cores on a small machine, so by default the verifiers share whatever CPU is left over; reserve a
fraction or a whole core on a cluster with cores to spare. The child is not counted by Ray either way.

Left out: retries of timed-out items, restarting dead actors (a Ray error reaches the caller, the coordinator
decides), and work stealing across actors (items are dealt round-robin, so one prompt's group is spread out).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Sequence, TypeVar

import ray

from synergy_ray.core.rewards import score_completion
from synergy_ray.processes.profiling import peak_rss_mib
from synergy_ray.records import ScoreRequest, ScoreResult

if TYPE_CHECKING:
    from synergy_ray.config import RewardConfig

T = TypeVar("T")

STARTUP_TIMEOUT_S = 120.0  # a new interpreter importing sympy; generous, the machine may be loaded
_KILL_GRACE_S = 1.0
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # so the child imports this checkout
_WARMUP = ("<think>half</think> \\boxed{\\frac{1}{2}}", "0.5")  # loads math_verify's parsers before the clock runs


def deal(items: Sequence[T], parts: int) -> list[list[T]]:
    """Round-robin: part j gets items j, j + parts, j + 2 * parts, ... (some parts may be empty)."""
    return [list(items[j::parts]) for j in range(parts)]


def undeal(chunks: Sequence[Sequence[T]]) -> list[T]:
    """Inverse of `deal`: the items back in their original order."""
    n = sum(len(c) for c in chunks)
    return [chunks[i % len(chunks)][i // len(chunks)] for i in range(n)]


# ---------------------------------------------------------------- the child process


def _die_with_parent(parent_pid: int) -> None:
    # Linux only; elsewhere close() and the socket's EOF (once a check ends) are the only cleanup.
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def _child_main(fd: int, parent_pid: int, accuracy_weight: float, format_weight: float) -> None:
    """Score requests from the socket `fd` until it closes; in the child's main thread, so math_verify's alarms work."""
    _die_with_parent(parent_pid)
    conn = Connection(fd)

    score_completion(*_WARMUP)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            req: ScoreRequest = conn.recv()
        except (EOFError, OSError):
            return
        try:
            s = score_completion(req.text, req.gold, req.choices, accuracy_weight, format_weight)
            result = ScoreResult(req.key, s.reward, s.correct, s.formatted, s.extracted)
        except Exception as err:  # a bad item must not take the child down
            result = ScoreResult(req.key, 0.0, False, False, error=f"{type(err).__name__}: {err}")
        conn.send(result)


class ScorerProcess:
    """One scoring child with a per-item time limit; replaced after a timeout or a crash. Usable without Ray."""

    def __init__(self, accuracy_weight: float = 0.9, format_weight: float = 0.1, timeout_s: float = 5.0,
                 startup_timeout_s: float = STARTUP_TIMEOUT_S):
        self.weights = (accuracy_weight, format_weight)
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.counts = {"scored": 0, "timed_out": 0, "errors": 0, "restarts": 0}
        self._proc = None
        self._conn: Connection | None = None
        self._ready = False
        self._start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def score(self, req: ScoreRequest) -> ScoreResult:
        if self._ready and self._proc.poll() is not None:  # died while idle (killed from outside): not the item's fault
            self._restart()
        self._wait_ready()
        try:
            self._conn.send(req)
            answered = self._conn.poll(self.timeout_s)
            result = self._conn.recv() if answered else self._replace_after(req, timed_out=True)
        except (EOFError, OSError):
            result = self._replace_after(req, error=f"verifier child died (exit code {self._exitcode()})")
        self.counts["scored"] += 1
        self.counts["timed_out"] += result.timed_out
        self.counts["errors"] += result.error is not None
        return result

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(_KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc, self._conn, self._ready = None, None, False

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        weights = ",".join(repr(w) for w in self.weights)
        boot = f"from synergy_ray.verifier import _child_main; _child_main({theirs.fileno()}, {os.getpid()}, {weights})"
        path = [_PACKAGE_ROOT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        self._proc = subprocess.Popen([sys.executable, "-c", boot], pass_fds=(theirs.fileno(),), env=env)
        theirs.close()  # the child holds its own copy; without ours, a dead child reads as EOF here
        self._conn, self._ready = Connection(ours.detach()), False

    def _wait_ready(self) -> None:
        if self._ready:
            return
        if not self._conn.poll(self.startup_timeout_s):
            self.close()
            raise RuntimeError(f"verifier child did not start within {self.startup_timeout_s:.0f} s")
        try:
            self._conn.recv()
        except (EOFError, OSError):
            code = self._exitcode()
            self.close()
            raise RuntimeError(f"verifier child exited during start-up (exit code {code}); see the worker log")
        self._ready = True

    def _restart(self) -> None:
        self.close()
        self._start()  # the replacement imports in the background; the next score() waits for it
        self.counts["restarts"] += 1

    def _replace_after(self, req: ScoreRequest, timed_out: bool = False, error: str | None = None) -> ScoreResult:
        self._restart()
        return ScoreResult(req.key, 0.0, False, False, timed_out=timed_out, error=error)

    def _exitcode(self) -> int | None:
        try:
            return self._proc.wait(_KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            return None


# ---------------------------------------------------------------- the actor and the pool


@ray.remote(num_cpus=0)
class Verifier:
    """Scores completions. Pure scoring lives in core.rewards; this only adds the time limit (in ScorerProcess)."""

    def __init__(self, accuracy_weight: float = 0.9, format_weight: float = 0.1, timeout_s: float = 5.0,
                 startup_timeout_s: float = STARTUP_TIMEOUT_S):
        self.scorer = ScorerProcess(accuracy_weight, format_weight, timeout_s, startup_timeout_s)

    def score(self, items: list[ScoreRequest]) -> list[ScoreResult]:
        return [self.scorer.score(item) for item in items]

    def stats(self) -> dict:
        """Counts since start: scored (every item, timed out or not), timed_out, errors, restarts; and child_pid."""
        return {**self.scorer.counts, "child_pid": self.scorer.pid}

    def close(self) -> None:
        self.scorer.close()

    def peak_rss(self) -> dict[str, float]:
        """Peak memory (MiB) of this actor and its scoring child (see synergy_ray.processes.profiling)."""

        return peak_rss_mib()


class VerifierPool:
    """Verifier actors held by the coordinator; `score` deals items round-robin and returns them in input order."""

    def __init__(self, num_workers: int = 1, accuracy_weight: float = 0.9, format_weight: float = 0.1,
                 timeout_s: float = 5.0, num_cpus: float = 0.0, startup_timeout_s: float = STARTUP_TIMEOUT_S):
        if num_workers < 1:
            raise ValueError(f"num_workers must be at least 1, got {num_workers}")
        self.actors = [
            Verifier.options(num_cpus=num_cpus).remote(accuracy_weight, format_weight, timeout_s, startup_timeout_s)
            for _ in range(num_workers)
        ]

    @classmethod
    def create(cls, cfg: RewardConfig, num_cpus: float = 0.0) -> VerifierPool:
        """A pool as the config says: reward.num_workers actors with its weights and time limit."""
        return cls(cfg.num_workers, cfg.accuracy_weight, cfg.format_weight, cfg.timeout_s, num_cpus)

    @property
    def size(self) -> int:
        return len(self.actors)

    def score(self, items: Sequence[ScoreRequest]) -> list[ScoreResult]:
        if not items:
            return []
        chunks = deal(items, min(self.size, len(items)))  # no actor gets an empty call
        return undeal(ray.get([actor.score.remote(chunk) for actor, chunk in zip(self.actors, chunks)]))

    def stats(self) -> dict:
        """Counts summed over the actors (child pids dropped)."""
        per_actor = ray.get([a.stats.remote() for a in self.actors])
        return {k: sum(s[k] for s in per_actor) for k in ("scored", "timed_out", "errors", "restarts")}

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor)  # its scoring child dies with it (see Orphans above)
        self.actors = []
