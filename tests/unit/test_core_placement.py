"""The placement plan on hand-written cluster shapes: who lands on which node and GPU, and clear refusals."""

import json

import pytest

from synergy_ray.core.placement import Node, PlacementError, RoleDemand, parse_cluster_shape, plan_placement


def demands(learners=1, learner_gpus=1.0, generators=1, generator_gpus=1.0, cpus=1.0):
    return RoleDemand("learner", learners, learner_gpus, cpus), RoleDemand("generator", generators, generator_gpus, cpus)


def test_shape_strings():
    nodes = parse_cluster_shape("2x8gpu:96cpu,1x16cpu,1xcpu")
    assert [(n.gpus, n.cpus) for n in nodes] == [(8, 96.0), (8, 96.0), (0, 16.0), (0, None)]
    assert len({n.name for n in nodes}) == 4


@pytest.mark.parametrize("bad, why", [("8gpu", "COUNTxRESOURCES"), ("1x8tpu", "not NGPUgpu"),
                                      ("1x1.5gpu", "whole number")])
def test_bad_shape_strings_say_why(bad, why):
    with pytest.raises(PlacementError, match=why):
        parse_cluster_shape(bad)


def test_shape_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"nodes": [{"name": "head", "cpus": 16}, {"name": "gpu", "gpus": 8, "count": 2}]}))
    assert [(n.name, n.gpus) for n in parse_cluster_shape(str(path))] == [("head", 0), ("gpu-0", 8), ("gpu-1", 8)]
    path.write_text(json.dumps({"nodes": [{"gpu": 8}]}))
    with pytest.raises(PlacementError, match=r"nodes\[0\]"):
        parse_cluster_shape(str(path))


def test_disaggregated_gives_each_actor_its_own_gpus():
    plan = plan_placement("disaggregated", *demands(learners=2, learner_gpus=2, generators=3),
                          parse_cluster_shape("1x8gpu"))
    gpus = {(a.role, a.index): plan.bundles[a.bundle].gpu_ids for a in plan.assignments}
    assert gpus == {("learner", 0): (0, 1), ("learner", 1): (2, 3), ("generator", 0): (4,), ("generator", 1): (5,),
                    ("generator", 2): (6,)}
    assert [b.resources() for b in plan.bundles[:2]] == [{"CPU": 1.0, "GPU": 2.0}] * 2
    assert plan.spare_generators == 1  # GPU 7


def test_learner_ranks_share_a_node_and_generators_fill_the_rest():
    plan = plan_placement("disaggregated", *demands(learners=8, generators=6), parse_cluster_shape("2x8gpu"))
    assert {plan.node_of(a) for a in plan.of("learner")} == {"node-0"}
    assert {plan.node_of(a) for a in plan.of("generator")} == {"node-1"}
    assert plan.spare_generators == 2


def test_learner_goes_to_the_first_node_that_holds_all_its_ranks():
    nodes = [Node("small", gpus=2), Node("big", gpus=8)]
    plan = plan_placement("disaggregated", *demands(learners=4, generators=2), nodes)
    assert {plan.node_of(a) for a in plan.of("learner")} == {"big"}
    assert {plan.node_of(a) for a in plan.of("generator")} == {"small"}


def test_colocated_units_share_gpus_and_keep_room_for_more_generators():
    plan = plan_placement("colocated", *demands(learners=8, generators=4), parse_cluster_shape("1x8gpu"))
    assert len(plan.bundles) == 8 and all(b.gpus == 1 for b in plan.bundles)
    g0 = plan.of("generator")[0]
    assert g0.bundle == plan.of("learner")[0].bundle and g0.gpus == 0.5
    assert [a.gpus for a in plan.of("learner")] == [0.5] * 8
    assert plan.spare_generators == 4  # units 4-7 hold a learner rank only


def test_fractional_generators_pack_onto_one_gpu():
    plan = plan_placement("disaggregated", *demands(learners=1, generators=4, generator_gpus=0.5),
                          parse_cluster_shape("1x4gpu"))
    assert [plan.bundles[a.bundle].gpu_ids for a in plan.of("generator")] == [(1,), (1,), (2,), (2,)]
    assert plan.spare_generators == 2


def test_too_few_gpus_names_the_arithmetic():
    with pytest.raises(PlacementError, match="needs 9 GPUs for 1 learner.* x 4 \\+ 5 generator.* x 1, cluster has 8"):
        plan_placement("disaggregated", *demands(learners=1, learner_gpus=4, generators=5),
                       parse_cluster_shape("1x8gpu"))


def test_enough_gpus_in_total_but_not_on_one_node():
    with pytest.raises(PlacementError, match="learner/0 needs 4 GPU.*node-0: 2 whole GPU"):
        plan_placement("disaggregated", *demands(learners=1, learner_gpus=4, generators=0),
                       parse_cluster_shape("2x2gpu"))


def test_cpus_count_when_the_shape_gives_them():
    learner, generator = demands(learners=1, learner_gpus=0, generators=2, generator_gpus=0, cpus=1)
    plan = plan_placement("disaggregated", learner, generator, parse_cluster_shape("1x3cpu"))
    assert plan.spare_generators == 0
    with pytest.raises(PlacementError, match="generator/1 needs 0 GPU and 1 CPU"):
        plan_placement("disaggregated", learner, generator, parse_cluster_shape("1x2cpu"))


def test_colocated_needs_equal_gpus_per_role():
    with pytest.raises(PlacementError, match="must be equal"):
        plan_placement("colocated", *demands(learner_gpus=2, generator_gpus=1), parse_cluster_shape("1x8gpu"))


def test_more_than_one_gpu_must_be_whole():
    with pytest.raises(PlacementError, match="whole number"):
        plan_placement("disaggregated", *demands(generator_gpus=1.5), parse_cluster_shape("1x8gpu"))


def test_describe_names_every_actor_on_its_gpu():
    text = plan_placement("colocated", *demands(learners=2, generators=2), parse_cluster_shape("1x2gpu")).describe()
    assert "GPU 1: learner/1 (0.5 GPU, 1 CPU, bundle 1), generator/1 (0.5 GPU, 1 CPU, bundle 1)" in text


def test_run_placement_offers_generators_the_planned_then_the_open_colocated_units():
    from synergy_ray.config import load_config
    from synergy_ray.cluster.placement import RolePlacement, plan_for, role_demands

    cfg = load_config("configs/paper/qwen25vl7b_rl.yaml")
    nodes = [Node("10.0.0.5/abcd", gpus=8, cpus=96, node_id="abcd")]
    placement = RolePlacement(plan_for(cfg, nodes), group=None, pinned=True, generator=role_demands(cfg)[1])
    slots = placement.generator_bundles()
    assert [b for b, _, _ in slots] == [0, 1, 2, 3, 4, 5, 6, 7]  # planned 0-3, then learner-only units 4-7
    assert all(gpus == 0.5 and cpus == 4 for _, gpus, cpus in slots)
    assert len(slots) == cfg.rollout.max_generators  # the pool can reach its maximum without new reservations
