"""The order in which `LearnerGroup.push_weights` moves buckets: rank 0 prepares bucket i+1 while the engines
load bucket i, bucket i is released before bucket i+2 is gathered (two in flight at most), and a member that
dies mid-push drops out without stopping the others.

Real Ray; the learner ranks and the generators are stand-ins that record when each call starts and ends (the
real roles, which move real weights through the same calls, are in test_rl_loop and test_elastic_pool).
"""

import time

import pytest
import ray

from synergy_ray.learner import LearnerGroup

LOAD_S = 0.3  # a load long enough that a gather started during it is seen to overlap it, even on a busy machine


@ray.remote(num_cpus=0)
class Log:
    def __init__(self):
        self.events = []

    def add(self, *event):
        self.events.append(event)

    def read(self):
        return self.events


@ray.remote(num_cpus=0)
class Rank:
    def __init__(self, rank, log):
        self.rank, self.log = rank, log

    def weight_bucket(self, index, as_file, as_tensors):
        if self.rank:
            return None, None
        ray.get(self.log.add.remote("gather", index))
        return {"path": f"bucket-{index}"}, None

    def release_bucket(self, info):
        ray.get(self.log.add.remote("release", int(info["path"].split("-")[1])))


@ray.remote(num_cpus=0, max_restarts=0)
class Member:
    def __init__(self, name, log, dies_at=None):
        self.name, self.log, self.dies_at = name, log, dies_at

    def node_id(self):
        return ray.get_runtime_context().get_node_id()

    def begin_weight_update(self):
        pass

    def load_weight_bucket(self, bucket):
        index = int(bucket["path"].split("-")[1])
        if index == self.dies_at:
            ray.actor.exit_actor()
        ray.get(self.log.add.remote("load", index, self.name))
        time.sleep(LOAD_S)
        ray.get(self.log.add.remote("loaded", index, self.name))
        return LOAD_S

    def finish_weight_update(self, version):
        ray.get(self.log.add.remote("finish", version, self.name))


def _group(log, buckets: int) -> LearnerGroup:
    group = object.__new__(LearnerGroup)  # the push's logic without real ranks behind it
    group._ray, group._call_timeout_s, group._setting_up = ray, 60.0, None
    group._num_buckets, group._rank0_node = buckets, ray.get_runtime_context().get_node_id()
    group.workers = [Rank.remote(r, log) for r in range(2)]
    return group


def _at(events, *event) -> int:
    return events.index(event)


def test_the_next_bucket_is_gathered_while_this_one_loads_and_two_at_most_exist(ray_local):
    log, n = Log.remote(), 5
    members = [Member.remote(f"g{i}", log) for i in range(2)]
    seconds, failed = _group(log, n).push_weights(members, version=7)
    events = ray.get(log.read.remote())

    assert failed == {} and seconds == pytest.approx(n * LOAD_S)
    for i in range(n - 1):  # overlap: bucket i+1 was gathered before the engines had finished bucket i
        assert _at(events, "gather", i + 1) < max(_at(events, "loaded", i, g) for g in ("g0", "g1"))
    for i in range(n - 2):  # bound: bucket i is gone before bucket i+2 is made
        assert _at(events, "release", i) < _at(events, "gather", i + 2)
    for i in range(1, n):  # a bucket is loaded only after the one before it, on every member
        for g in ("g0", "g1"):
            assert _at(events, "loaded", i - 1, g) < _at(events, "load", i, g)
    assert sorted(e[1] for e in events if e[0] == "release") == list(range(n))  # every bucket released once
    assert sorted(e[2] for e in events if e[0] == "finish") == ["g0", "g1"]


def test_a_member_that_dies_mid_push_drops_out_and_the_rest_get_every_bucket(ray_local):
    log, n = Log.remote(), 4
    members = [Member.remote("g0", log), Member.remote("g1", log, dies_at=1)]
    seconds, failed = _group(log, n).push_weights(members, version=3)
    events = ray.get(log.read.remote())

    assert list(failed) == [members[1]] and "died" in failed[members[1]]
    assert [e[1] for e in events if e[0] == "loaded" and e[2] == "g0"] == list(range(n))
    assert [e[1] for e in events if e[0] == "loaded" and e[2] == "g1"] == [0]
    assert sorted(e[1] for e in events if e[0] == "release") == list(range(n))
    assert [e[2] for e in events if e[0] == "finish"] == ["g0"]
    assert seconds == pytest.approx(n * LOAD_S)
