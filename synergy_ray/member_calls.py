"""Calls to the members of the generator pool that survive a member's failure.

A member has failed when its call raised `RayActorError` (the actor died; a generator whose vLLM engine died
ends its own actor, see `generator.engine_call`, so a dead engine reads the same) or did not answer within the
time allowed (a hung engine). Either way the caller gets the answers of the others and the failed members with
a reason, and decides what becomes of them (the coordinator kills, counts and replaces them). Any other error
is a bug in the request, not in the member, and is raised.
"""

from __future__ import annotations

from typing import Any


def answers(refs: dict[Any, Any], timeout_s: float) -> tuple[dict[Any, Any], dict[Any, str]]:
    """`refs` maps each member to the ref of one call to it: (member -> result, failed member -> reason)."""
    import ray
    from ray.exceptions import RayActorError

    if not refs:
        return {}, {}
    done, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    done = set(done)
    results: dict[Any, Any] = {}
    failed: dict[Any, str] = {}
    for member, ref in refs.items():
        if ref not in done:
            failed[member] = f"no answer within {timeout_s:g} s"
            continue
        try:
            results[member] = ray.get(ref)
        except RayActorError as err:
            failed[member] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'actor died'}"
    return results, failed
