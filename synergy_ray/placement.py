"""Placement of the RL roles on a Ray cluster: the config's demands, the live nodes, one placement group.

The plan itself is the pure `core.placement.plan_placement`; this module feeds it the config and the nodes
Ray reports, creates the placement group with each bundle pinned to its planned node (label
`ray.io/node-id`), and gives each actor its scheduling options. When the roles do not fit the nodes that are
up (an autoscaling cluster starts with no GPU workers), the bundles are requested unpinned and the
autoscaler may add nodes for them; that is said in one log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synergy_ray.config import SynergyConfig
from synergy_ray.core.placement import Node, PlacementError, PlacementPlan, RoleDemand, plan_placement

NODE_ID_LABEL = "ray.io/node-id"


def role_demands(cfg: SynergyConfig) -> tuple[RoleDemand, RoleDemand]:
    c = cfg.cluster
    return (RoleDemand("learner", cfg.learner.num_workers, c.gpus_per_learner, c.cpus_per_learner),
            RoleDemand("generator", cfg.rollout.num_generators, c.gpus_per_generator, c.cpus_per_generator))


def plan_for(cfg: SynergyConfig, nodes: list[Node]) -> PlacementPlan:
    learner, generator = role_demands(cfg)
    return plan_placement(cfg.cluster.layout, learner, generator, nodes)


def plan_sft(cfg: SynergyConfig, nodes: list[Node]) -> PlacementPlan:
    """The SFT phase (a Ray Train job of `sft.num_workers`), checked on the same nodes; it runs on its own."""
    s = cfg.sft
    workers = RoleDemand("sft", s.num_workers, s.gpus_per_worker, s.cpus_per_worker)
    plan = plan_placement("disaggregated", workers, RoleDemand("generator", 0, 0, 0), nodes)
    plan.layout = "Ray Train workers"
    return plan


def live_nodes() -> list[Node]:
    """The alive nodes of the connected Ray cluster, with the CPUs and GPUs each advertises."""
    import ray

    nodes = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        nodes.append(Node(name=f"{n['NodeManagerAddress']}/{n['NodeID'][:8]}", gpus=int(res.get("GPU", 0)),
                          cpus=float(res.get("CPU", 0)), node_id=n["NodeID"]))
    return nodes


@dataclass
class RolePlacement:
    """The placement group of a run and the plan it was made from."""

    plan: PlacementPlan
    group: Any  # ray.util.placement_group.PlacementGroup
    pinned: bool

    @classmethod
    def create(cls, cfg: SynergyConfig, timeout_s: float) -> RolePlacement:
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group

        nodes = live_nodes()
        try:
            plan, pinned = plan_for(cfg, nodes), True
        except PlacementError as err:
            # Bundle shapes do not depend on nodes: plan on an unbounded node to get them, unpinned.
            learner, generator = role_demands(cfg)
            plan = plan_placement(cfg.cluster.layout, learner, generator,
                                  [Node("any", gpus=10**6, cpus=None)])
            pinned = False
            print(f"[placement] the roles do not fit the nodes up now ({err}); requesting the placement group "
                  "unpinned so an autoscaler can add nodes", flush=True)
        by_name = {n.name: n.node_id for n in nodes}
        kwargs = {}
        if pinned:
            kwargs["bundle_label_selector"] = [{NODE_ID_LABEL: by_name[b.node]} for b in plan.bundles]
        group = placement_group([b.resources() for b in plan.bundles], strategy="PACK", **kwargs)
        try:
            ray.get(group.ready(), timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            remove_placement_group(group)
            raise PlacementError(
                f"placement group of {len(plan.bundles)} bundles {[b.resources() for b in plan.bundles]} not "
                f"ready after {timeout_s:.0f} s; cluster has {ray.available_resources()} free") from None
        print("[placement] " + plan.describe().replace("\n", "\n[placement] "), flush=True)
        return cls(plan, group, pinned)

    def options(self, role: str, index: int) -> dict[str, Any]:
        """`.options(...)` for a planned actor: its CPUs, its share of GPUs, its bundle."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        a = next(a for a in self.plan.of(role) if a.index == index)
        return {"num_cpus": a.cpus, "num_gpus": a.gpus, "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=self.group, placement_group_bundle_index=a.bundle)}

    def generator_slots(self) -> list[int]:
        return [a.index for a in self.plan.of("generator")]

    def remove(self) -> None:
        from ray.util.placement_group import remove_placement_group

        remove_placement_group(self.group)
