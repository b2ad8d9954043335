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
from synergy_ray.console import log
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
    workers = RoleDemand("sft-worker", s.num_workers, s.gpus_per_worker, s.cpus_per_worker)
    plan = plan_placement("disaggregated", workers, RoleDemand("generator", 0, 0, 0), nodes)
    plan.layout = "Ray Train job"
    return plan


RL_FIELDS = ("learner.num_workers, rollout.num_generators, cluster.cpus_per_learner, cluster.cpus_per_generator, "
             "cluster.gpus_per_learner, cluster.gpus_per_generator")
SFT_FIELDS = "sft.num_workers, sft.cpus_per_worker, sft.gpus_per_worker"


def placement_failures(cfg: SynergyConfig, nodes: list[Node], uses_rl: bool, uses_sft: bool) -> list[str]:
    """Why the parts of the run it uses (the RL roles, the SFT job; `strategies.roles_in_use`) cannot be placed
    on `nodes`, naming the fields; [] if they fit."""
    failed = []
    for used, make, fields in ((uses_rl, plan_for, RL_FIELDS), (uses_sft, plan_sft, SFT_FIELDS)):
        if not used:
            continue
        try:
            make(cfg, nodes)
        except PlacementError as err:
            failed.append(f"{fields}: {err}")
    return failed


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
    """The placement group of a run, the plan it was made from, and the generator demand (for new members)."""

    plan: PlacementPlan
    group: Any  # ray.util.placement_group.PlacementGroup
    pinned: bool
    generator: RoleDemand

    @classmethod
    def create(cls, cfg: SynergyConfig, timeout_s: float) -> RolePlacement:
        import ray
        from ray.util.placement_group import placement_group

        learner, generator = role_demands(cfg)
        nodes = live_nodes()
        try:
            plan, pinned = plan_placement(cfg.cluster.layout, learner, generator, nodes), True
        except PlacementError as err:
            # Bundle shapes do not depend on nodes: plan on one unbounded node to get them, unpinned.
            plan = plan_placement(cfg.cluster.layout, learner, generator, [Node("any", gpus=10**6, cpus=None)])
            pinned = False
            log().warning(f"[placement] the roles do not fit the nodes up now ({err}); requesting the placement group "
                  "unpinned so an autoscaler can add nodes")
        kwargs = {}
        if pinned:
            node_ids = {n.name: n.node_id for n in nodes}
            kwargs["bundle_label_selector"] = [{NODE_ID_LABEL: node_ids[b.node]} for b in plan.bundles]
        group = placement_group([b.resources() for b in plan.bundles], strategy="PACK", **kwargs)
        if not _wait_ready(group, timeout_s):
            raise PlacementError(
                f"placement group of {len(plan.bundles)} bundles {[b.resources() for b in plan.bundles]} not "
                f"ready after {timeout_s:.0f} s; the cluster has {ray.available_resources()} free")
        log().info("[placement] " + plan.describe().replace("\n", "\n[placement] "))
        return cls(plan, group, pinned, generator)

    def options(self, role: str, index: int) -> dict[str, Any]:
        """`.options(...)` for a planned actor: its CPUs, its share of GPUs, its bundle."""
        a = next(a for a in self.plan.of(role) if a.index == index)
        return self.bundle_options(a.bundle, a.gpus, a.cpus)

    def bundle_options(self, bundle: int, gpus: float, cpus: float, group: Any = None) -> dict[str, Any]:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        return {"num_cpus": cpus, "num_gpus": gpus, "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=group or self.group, placement_group_bundle_index=bundle)}

    def generator_bundles(self) -> list[tuple[int, float, float]]:
        """(bundle, gpus, cpus) a generator may use inside the run's group: the planned generators' bundles, then
        (colocated) the learner-only units, which keep a generator's share free for the elastic pool."""
        slots = [(a.bundle, a.gpus, a.cpus) for a in self.plan.of("generator")]
        if self.plan.layout == "colocated":
            taken = {b for b, _, _ in slots}
            slots += [(a.bundle, a.gpus, self.generator.cpus) for a in self.plan.of("learner") if a.bundle not in taken]
        return slots

    def reserve_extra_generator(self, timeout_s: float) -> Any | None:
        """A one-bundle placement group for a generator beyond the run's group; None when the cluster cannot
        hold it within `timeout_s` (the request is withdrawn)."""
        from ray.util.placement_group import placement_group

        bundle = {"CPU": self.generator.cpus, **({"GPU": self.generator.gpus} if self.generator.gpus else {})}
        group = placement_group([bundle])
        return group if _wait_ready(group, timeout_s) else None

    def node_ids(self) -> dict[str, list[str | None]]:
        """Per bundle: the node the plan pinned it to and the node Ray placed it on (they agree when pinned)."""
        from ray.util.placement_group import placement_group_table

        placed = placement_group_table(self.group).get("bundles_to_node_id", {})
        by_name = {n.name: n.node_id for n in self.plan.nodes}
        return {"planned": [by_name.get(b.node) for b in self.plan.bundles],
                "placed": [placed.get(i) for i in range(len(self.plan.bundles))]}

    def remove(self) -> None:
        from ray.util.placement_group import remove_placement_group

        remove_placement_group(self.group)


def _wait_ready(group: Any, timeout_s: float) -> bool:
    """Wait for a placement group; on timeout withdraw it (never leave a pending reservation behind)."""
    import ray
    from ray.util.placement_group import remove_placement_group

    ready, _ = ray.wait([group.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(group)
    return bool(ready)
