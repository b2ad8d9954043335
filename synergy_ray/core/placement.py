"""Where the learner ranks and generator engines go: nodes, GPU indices and Ray placement-group bundles.

One pure function, `plan_placement`, turns role demands and a list of nodes into a plan. `synergy-ray plan`
prints it for a cluster shape written by hand; the coordinator builds its placement group from the same plan
computed on the live cluster's nodes, each bundle pinned to its planned node, so the printout and the running
placement cannot disagree.

Layouts:
- `disaggregated`: every learner rank and every generator owns its bundle and its GPUs; no GPU is shared.
- `colocated`: unit i is one bundle holding learner rank i and generator i on the same GPUs (and the CPUs of
  both); each actor asks for half the unit's GPUs (Ray accounting only: memory is split by vLLM's
  `gpu_memory_utilization`, and the engines sleep while the learner trains). It needs the two roles to use
  the same number of GPUs each.

Packing is first-fit in node order with the learner first, all its ranks on one node when one can hold them
(NCCL inside a node is the fast path). A bundle of more than one GPU takes whole GPUs; a fraction of a GPU
packs onto a GPU already partly used when one has room. Left out: topology (NVLink islands, racks), and
tensor-parallel engines spanning nodes.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

EPS = 1e-9


class PlacementError(ValueError):
    """The roles do not fit the cluster, or the shape/demand is malformed; the message says by how much."""


@dataclass(frozen=True)
class Node:
    name: str
    gpus: int = 0
    cpus: float | None = None  # None: not counted (a shape that gives only GPUs)
    node_id: str | None = None  # the Ray node id when the node is live


@dataclass(frozen=True)
class RoleDemand:
    role: str  # "learner" or "generator"
    count: int
    gpus: float  # per actor
    cpus: float  # per actor


@dataclass(frozen=True)
class Bundle:
    node: str
    gpu_ids: tuple[int, ...]
    gpus: float
    cpus: float

    def resources(self) -> dict[str, float]:
        res = {"CPU": self.cpus}
        if self.gpus:
            res["GPU"] = self.gpus
        return res


@dataclass(frozen=True)
class Assignment:
    role: str
    index: int
    bundle: int  # index into PlacementPlan.bundles
    gpus: float  # what the actor asks Ray for, inside its bundle
    cpus: float


@dataclass
class PlacementPlan:
    layout: str
    nodes: list[Node]
    bundles: list[Bundle] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    spare_generators: int = 0  # how many more generators the capacity left over would hold

    def of(self, role: str) -> list[Assignment]:
        return [a for a in self.assignments if a.role == role]

    def node_of(self, a: Assignment) -> str:
        return self.bundles[a.bundle].node

    def describe(self) -> str:
        roles = dict.fromkeys(a.role for a in self.assignments)
        counts = ", ".join(f"{len(self.of(r))} {r}(s)" for r in roles) or "nothing"
        lines = [f"layout {self.layout}: {counts}, {len(self.bundles)} placement-group bundle(s)"]
        for node in self.nodes:
            here = [a for a in self.assignments if self.node_of(a) == node.name]
            cpus = "uncounted CPUs" if node.cpus is None else f"{node.cpus:g} CPU"
            lines.append(f"{node.name} ({node.gpus} GPU, {cpus}):")
            if not here:
                lines.append("  (unused)")
            by_gpu: dict[int, list[str]] = {}
            for a in here:
                b = self.bundles[a.bundle]
                label = f"{a.role}/{a.index} ({a.gpus:g} GPU, {a.cpus:g} CPU, bundle {a.bundle})"
                for gpu in b.gpu_ids or (-1,):
                    by_gpu.setdefault(gpu, []).append(label)
            for gpu in sorted(by_gpu):
                where = f"GPU {gpu}" if gpu >= 0 else "no GPU"
                lines.append(f"  {where}: {', '.join(by_gpu[gpu])}")
        if "generator" in roles:
            lines.append(f"spare capacity: {self.spare_generators} more generator(s) of the same size would fit")
        return "\n".join(lines)


# ---------------------------------------------------------------- cluster shapes

_ITEM = re.compile(r"^(\d+)x(.+)$")
_RES = re.compile(r"^(\d+(?:\.\d+)?)?(gpu|cpu)$")


def parse_cluster_shape(shape: str) -> list[Node]:
    """`2x8gpu`, `1x8gpu:96cpu,1x16cpu`, `1xcpu` (a CPU node, CPUs uncounted), or a YAML/JSON file.

    The file holds `nodes:` (or is a list) of `{name?, gpus?, cpus?, count?}` mappings.
    """
    path = Path(shape)
    if path.suffix in (".yaml", ".yml", ".json") and path.exists():
        return _nodes_from_file(path)
    nodes: list[Node] = []
    for item in (s.strip() for s in shape.split(",")):
        m = _ITEM.match(item)
        if not m:
            raise PlacementError(f"cluster shape {item!r}: expected COUNTxRESOURCES, e.g. 1x8gpu or 2x8gpu:96cpu")
        count, gpus, cpus = int(m.group(1)), 0, None
        for part in m.group(2).split(":"):
            r = _RES.match(part)
            if not r:
                raise PlacementError(f"cluster shape {item!r}: {part!r} is not NGPUgpu, NCPUcpu or cpu")
            if r.group(2) == "gpu":
                if r.group(1) is None or "." in r.group(1):
                    raise PlacementError(f"cluster shape {item!r}: a node's GPU count is a whole number")
                gpus = int(r.group(1))
            elif r.group(1) is not None:
                cpus = float(r.group(1))
        nodes += [Node(f"node-{len(nodes) + i}", gpus, cpus) for i in range(count)]
    if not nodes:
        raise PlacementError(f"cluster shape {shape!r}: no nodes")
    return nodes


def _nodes_from_file(path: Path) -> list[Node]:
    import yaml

    data = yaml.safe_load(path.read_text()) if path.suffix != ".json" else json.loads(path.read_text())
    items = data.get("nodes") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise PlacementError(f"cluster file {path}: expected a non-empty list under `nodes:`")
    nodes: list[Node] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - {"name", "gpus", "cpus", "count"}:
            raise PlacementError(f"cluster file {path}: nodes[{i}] must map name/gpus/cpus/count, got {item!r}")
        gpus, cpus, count = item.get("gpus", 0), item.get("cpus"), item.get("count", 1)
        if not isinstance(gpus, int) or gpus < 0 or not isinstance(count, int) or count < 1 or \
                (cpus is not None and (not isinstance(cpus, (int, float)) or cpus < 0)):
            raise PlacementError(f"cluster file {path}: nodes[{i}]: gpus and count are whole numbers, cpus >= 0")
        base = item.get("name", f"node-{len(nodes)}")
        nodes += [Node(base if count == 1 else f"{base}-{k}", gpus, cpus) for k in range(count)]
    return nodes


# ---------------------------------------------------------------- packing


class _Capacity:
    """Free CPUs and per-GPU free fractions of every node while bundles are placed."""

    def __init__(self, nodes: list[Node]):
        self.nodes = nodes
        self.cpus = [n.cpus if n.cpus is not None else math.inf for n in nodes]
        self.gpu_free = [[1.0] * n.gpus for n in nodes]

    def take(self, i: int, gpus: float, cpus: float) -> tuple[int, ...] | None:
        """Reserve on node i; the GPU indices taken, or None when it does not fit."""
        if self.cpus[i] + EPS < cpus:
            return None
        free = self.gpu_free[i]
        if gpus >= 1:
            ids = [g for g, f in enumerate(free) if f >= 1 - EPS][: int(gpus)]
            if len(ids) < gpus:
                return None
            for g in ids:
                free[g] = 0.0
        elif gpus > 0:
            fits = [g for g, f in enumerate(free) if f + EPS >= gpus]
            if not fits:
                return None
            g = min(fits, key=lambda k: (free[k], k))  # best fit: fill partly used GPUs first
            free[g] -= gpus
            ids = [g]
        else:
            ids = []
        self.cpus[i] -= cpus
        return tuple(ids)

    def place(self, gpus: float, cpus: float, prefer: int | None = None) -> tuple[int, tuple[int, ...]] | None:
        order = list(range(len(self.nodes)))
        if prefer is not None:
            order.remove(prefer)
            order.insert(0, prefer)
        for i in order:
            ids = self.take(i, gpus, cpus)
            if ids is not None:
                return i, ids
        return None

    def describe_free(self) -> str:
        return ", ".join(f"{n.name}: {sum(1 for f in free if f >= 1 - EPS)} whole GPU(s)"
                         + ("" if math.isinf(c) else f", {c:g} CPU")
                         for n, free, c in zip(self.nodes, self.gpu_free, self.cpus))


def _check_demand(d: RoleDemand) -> None:
    if d.count < 0 or d.gpus < 0 or d.cpus < 0:
        raise PlacementError(f"{d.role}: counts and resources must be >= 0")
    if d.gpus > 1 and d.gpus != int(d.gpus):
        raise PlacementError(f"{d.role}: {d.gpus:g} GPUs per actor; more than one GPU must be a whole number")


def _units(layout: str, learner: RoleDemand, generator: RoleDemand) -> list[tuple[float, float, list[tuple]]]:
    """Bundles to place as (gpus, cpus, [(role, index, gpus asked, cpus asked)])."""
    if layout == "disaggregated":
        return [(d.gpus, d.cpus, [(d.role, i, d.gpus, d.cpus)]) for d in (learner, generator) for i in range(d.count)]
    if learner.gpus != generator.gpus:
        raise PlacementError(
            f"colocated layout shares each GPU set between a learner rank and a generator: gpus per learner "
            f"({learner.gpus:g}) and per generator ({generator.gpus:g}) must be equal")
    # Each unit keeps half its GPUs for a generator even before one runs there, so the elastic pool can
    # start a generator in a learner-only unit later without moving anything.
    share = learner.gpus / 2
    units = []
    for i in range(max(learner.count, generator.count)):
        members = [(d.role, i, share, d.cpus) for d in (learner, generator) if i < d.count]
        cpus = learner.cpus + generator.cpus
        units.append((learner.gpus, cpus, members))
    return units


def _total_gpus_message(layout: str, learner: RoleDemand, generator: RoleDemand, have: int) -> str | None:
    if layout == "disaggregated":
        need = learner.count * learner.gpus + generator.count * generator.gpus
        how = (f"{learner.count} learner(s) x {learner.gpus:g} + {generator.count} generator(s) x "
               f"{generator.gpus:g}")
    else:
        need = max(learner.count, generator.count) * learner.gpus
        how = (f"max({learner.count} learner(s), {generator.count} generator(s)) colocated x "
               f"{learner.gpus:g}")
    if need > have + EPS:
        return f"needs {need:g} GPUs for {how}, cluster has {have}"
    return None


def plan_placement(layout: str, learner: RoleDemand, generator: RoleDemand, nodes: list[Node]) -> PlacementPlan:
    """Assign every learner rank and generator to a bundle on a node (and GPUs); raise PlacementError if not."""
    if layout not in ("colocated", "disaggregated"):
        raise PlacementError(f"layout {layout!r}: expected colocated or disaggregated")
    for d in (learner, generator):
        _check_demand(d)
    short = _total_gpus_message(layout, learner, generator, sum(n.gpus for n in nodes))
    if short:
        raise PlacementError(short)
    cap = _Capacity(nodes)
    plan = PlacementPlan(layout, list(nodes))
    units = _units(layout, learner, generator)
    home = _learner_home(cap, units, learner)
    for gpus, cpus, members in units:
        learner_unit = any(m[0] == "learner" for m in members)
        spot = cap.place(gpus, cpus, prefer=home if learner_unit else None)
        if spot is None:
            who = " + ".join(f"{r}/{k}" for r, k, _, _ in members)
            raise PlacementError(f"{who} needs {gpus:g} GPU and {cpus:g} CPU on one node; "
                                 f"free after the actors before it: {cap.describe_free()}")
        node, ids = spot
        plan.bundles.append(Bundle(nodes[node].name, ids, gpus, cpus))
        plan.assignments += [Assignment(r, k, len(plan.bundles) - 1, g, c) for r, k, g, c in members]
    open_units = sum(1 for b in range(len(plan.bundles)) if layout == "colocated"
                     and not any(a.bundle == b and a.role == "generator" for a in plan.assignments))
    plan.spare_generators = open_units + _spare(cap, generator)
    return plan


def _learner_home(cap: _Capacity, units: list, learner: RoleDemand) -> int | None:
    """The first node that can hold every learner unit at once, so the ranks share a node when possible."""
    need_gpus = sum(u[0] for u in units if any(m[0] == "learner" for m in u[2]))
    need_cpus = sum(u[1] for u in units if any(m[0] == "learner" for m in u[2]))
    for i, node in enumerate(cap.nodes):
        if node.gpus + EPS >= need_gpus and cap.cpus[i] + EPS >= need_cpus:
            return i
    return None


def _spare(cap: _Capacity, generator: RoleDemand) -> int:
    """How many more generators fit in what is left (a generator added later owns its bundle)."""
    if generator.gpus == 0 and (generator.cpus == 0 or all(math.isinf(c) for c in cap.cpus)):
        return 0  # nothing bounds it: report none rather than infinity
    n = 0
    while n < 10_000 and cap.place(generator.gpus, generator.cpus) is not None:
        n += 1
    return n
