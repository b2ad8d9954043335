"""Verifier actors on a real local Ray: exact rewards through a pool, and a hung check cut off at the time limit.

The hang is a real input, not a fake: `\\boxed{9^{9^{9^{9}}}}` keeps sympy busy for as long as it is allowed (over
40 s measured with math_verify's own guard off; that guard, on in the scoring child, stops it after 5 s), so a
2 s limit always fires first.
"""

import os
import subprocess
import sys
import time

import pytest
import ray

from synergy_ray.config import RewardConfig
from synergy_ray.verifier import ScorerProcess, ScoreRequest, ScoreResult, Verifier, VerifierPool

pytestmark = pytest.mark.slow

TIMEOUT_S = 2.0
MARGIN_S = 3.0  # kill + starting the replacement (in the background) + Ray call overhead, on a loaded 2-core box
HANG = ScoreRequest("tower/0", "<think>a tower of nines</think> \\boxed{9^{9^{9^{9}}}}", "1")
SHAPES = ("3", "4", "5")  # choices for "how many sides has a square": B

# (request, reward, correct, formatted) with the default weights 0.9 accuracy + 0.1 format
MIXED = [
    (ScoreRequest("sum/0", "<think>2 + 3 = 5</think> So the answer is \\boxed{5}.", "5"), 1.0, True, True),
    (ScoreRequest("sum/1", "2 + 3 = 5, so \\boxed{5}", "5"), 0.9, True, False),  # no think block
    (ScoreRequest("sum/2", "<think>a guess</think> \\boxed{7}", "5"), 0.1, False, True),
    (ScoreRequest("half/0", "<think>one of two</think> \\boxed{0.5}", "\\frac{1}{2}"), 1.0, True, True),
    (ScoreRequest("half/1", "<think>two of four</think> \\boxed{\\dfrac{2}{4}}", "0.5"), 1.0, True, True),
    (ScoreRequest("square/0", "<think>count</think> \\boxed{B}", "B", SHAPES), 1.0, True, True),
    (ScoreRequest("square/1", "<think>count</think> \\boxed{4}", "B", SHAPES), 1.0, True, True),  # option text
    # No box and no </think>: there is no final answer to grade (a letter in free text may be reasoning).
    (ScoreRequest("square/2", "The answer is (B)", "B", SHAPES), 0.0, False, False),
    (ScoreRequest("square/3", "<think>count</think> \\boxed{C}", "B", SHAPES), 0.1, False, True),
    (ScoreRequest("fmt/0", "<think></think> \\boxed{5}", "5"), 0.9, True, False),  # empty reasoning
    (ScoreRequest("fmt/1", "<think>a</think><think>b</think> \\boxed{5}", "5"), 0.9, True, False),
    (ScoreRequest("fmt/2", "<think>no idea</think> I give up.", "5"), 0.0, False, False),
]
BAD_GOLD = ScoreRequest("bad/0", "<think>x</think> \\boxed{A}", "Z", ("1", "2"))  # gold is not an option


def _gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie left for a non-reaping init counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _gone(pid)


@pytest.fixture(scope="module")
def pool(ray_local):
    pool = VerifierPool.create(RewardConfig(num_workers=2, timeout_s=TIMEOUT_S))
    yield pool
    pool.shutdown()


def test_pool_scores_a_mixed_batch_with_exact_rewards_in_input_order(pool):
    requests = [r for r, *_ in MIXED] + [BAD_GOLD]
    results = pool.score(requests)

    assert pool.size == 2
    assert [r.key for r in results] == [r.key for r in requests]
    assert [r.reward for r in results] == pytest.approx([reward for _, reward, *_ in MIXED] + [0.0])
    assert [(r.correct, r.formatted) for r in results[:-1]] == [(c, f) for _, _, c, f in MIXED]
    assert [r.extracted for r in results[:3]] == ["5", "5", "7"] and results[6].extracted == "B"
    assert not any(r.timed_out for r in results)
    assert "neither an option letter nor one of the choices" in results[-1].error
    assert pool.stats() == {"scored": 13, "timed_out": 0, "errors": 1, "restarts": 0}  # a raising check: no restart
    assert pool.score([]) == []
    assert pool.score([MIXED[2][0]]) == [ScoreResult("sum/2", pytest.approx(0.1), False, True, "7")]


def test_a_hung_check_scores_zero_in_time_and_the_same_actor_keeps_scoring(ray_local):
    verifier = Verifier.remote(accuracy_weight=0.8, format_weight=0.2, timeout_s=TIMEOUT_S)
    [warm] = ray.get(verifier.score.remote([MIXED[0][0]]))  # waits out the child's start-up, unclocked
    first_child = ray.get(verifier.stats.remote())["child_pid"]

    start = time.monotonic()
    [hung] = ray.get(verifier.score.remote([HANG]))
    elapsed = time.monotonic() - start

    assert hung == ScoreResult("tower/0", 0.0, False, False, timed_out=True)
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + MARGIN_S
    assert _wait_gone(first_child, within_s=2.0)  # the hung child was killed, not left spinning
    [after] = ray.get(verifier.score.remote([MIXED[1][0]]))  # no think block: accuracy weight only
    assert warm.reward == pytest.approx(1.0) and after.reward == pytest.approx(0.8) and after.correct
    stats = ray.get(verifier.stats.remote())
    assert {k: v for k, v in stats.items() if k != "child_pid"} == {
        "scored": 3, "timed_out": 1, "errors": 0, "restarts": 1,
    }
    assert stats["child_pid"] != first_child
    ray.kill(verifier)


def test_a_hang_mid_batch_spares_its_neighbours_and_a_killed_actor_takes_its_child_along(ray_local):
    verifier = Verifier.remote(timeout_s=TIMEOUT_S)
    batch = [MIXED[3][0], HANG, MIXED[0][0], MIXED[5][0]]
    results = ray.get(verifier.score.remote(batch))

    assert [r.key for r in results] == [r.key for r in batch]
    assert [r.timed_out for r in results] == [False, True, False, False]
    assert [r.reward for r in results] == pytest.approx([1.0, 0.0, 1.0, 1.0])

    # Kill the actor while its child is stuck in a check: the child must not outlive it.
    child = ray.get(verifier.stats.remote())["child_pid"]
    pending = verifier.score.remote([HANG])
    time.sleep(0.5)
    ray.kill(verifier)
    assert _wait_gone(child), f"verifier child {child} outlived its actor"
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(pending)


def test_a_child_killed_while_idle_is_replaced_without_charging_the_next_item():
    scorer = ScorerProcess(timeout_s=TIMEOUT_S)  # no Ray: the timed child on its own
    try:
        assert scorer.score(MIXED[0][0]).reward == pytest.approx(1.0)
        os.kill(scorer.pid, 9)
        assert _wait_gone(scorer.pid)
        result = scorer.score(MIXED[3][0])
        assert (result.reward, result.error, result.timed_out) == (pytest.approx(1.0), None, False)
        assert scorer.counts == {"scored": 2, "timed_out": 0, "errors": 0, "restarts": 1}
    finally:
        scorer.close()


def test_a_child_dies_with_a_parent_killed_mid_check_even_without_ray():
    # Ray reaps a killed worker's children itself; outside Ray only the child's PR_SET_PDEATHSIG does.
    parent = subprocess.Popen(
        [sys.executable, "-c", "from synergy_ray.verifier import ScorerProcess, ScoreRequest\n"
         "s = ScorerProcess(timeout_s=60)\nprint(s.pid, flush=True)\n"
         f"s.score(ScoreRequest('t', {HANG.text!r}, '1'))"],
        stdout=subprocess.PIPE, text=True,
    )
    child = int(parent.stdout.readline())
    time.sleep(3.0)  # let the child start up (~1.3 s) and get stuck in the check
    parent.kill()
    parent.wait()
    # Within 1.5 s: left alone, the child would live on until math_verify's own 5 s guard ends the check.
    assert _wait_gone(child, within_s=1.5), f"verifier child {child} outlived its parent"
