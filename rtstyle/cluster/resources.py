"""How big a worker is and how many there are, from the nodes' own resources.

A worker must fit one node: its threads come from a node's CPUs, never from the cluster's total
divided by the workers (two 1-CPU nodes cannot host a 2-CPU worker). ``plan_workers(nodes, ...)``
takes the alive nodes' total resources (``ray.nodes()``'s ``Resources``) and returns the
``WorkerShape`` that Ray's placement group then reserves:

* GPU workers (``--device`` not cpu and the cluster has GPUs): one GPU each, with the CPUs of the
  leanest GPU node shared out per GPU (decode and encode run beside the engine); default one per GPU.
* CPU workers: ``cpus`` threads each; by default one per node of the smallest node's size (on
  nodes of equal size: one per node, all its CPUs); ``--workers N``: the most threads per worker
  for which N workers still fit the nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ClusterError


@dataclass(frozen=True)
class WorkerShape:
    workers: int
    cpus: int  # CPUs reserved per worker: its engine threads (CPU workers), decode and encode
    gpus: int = 0  # 0 or 1

    @property
    def bundle(self) -> dict[str, float]:
        return {"CPU": float(self.cpus), **({"GPU": float(self.gpus)} if self.gpus else {})}

    def describe(self) -> str:
        each = f"1 GPU + {self.cpus} CPU" if self.gpus else f"{self.cpus} CPU"
        return f"{self.workers} worker{'s' if self.workers != 1 else ''} of {each}"

    def fits(self, resources: dict) -> bool:
        """Whether a node with these total resources can host one worker."""
        return resources.get("CPU", 0) >= self.cpus and resources.get("GPU", 0) >= self.gpus


def _count(nodes: list[dict], key: str) -> list[int]:
    return [int(n.get(key, 0)) for n in nodes]


def _slots(cpus: list[int], per_worker: int) -> int:
    return sum(c // per_worker for c in cpus)


def describe_nodes(nodes: list[dict]) -> str:
    parts = [f"{int(n.get('CPU', 0))} CPU" + (f" + {int(n['GPU'])} GPU" if n.get("GPU") else "") for n in nodes]
    return f"{len(nodes)} node{'s' if len(nodes) != 1 else ''} ({', '.join(parts) or 'none'})"


def plan_workers(nodes: list[dict], use_gpu: bool, workers: int | None) -> WorkerShape:
    """The workers of a job on alive nodes with total resources ``nodes``; ``ClusterError`` naming
    the nodes when ``workers`` (or even one) cannot fit."""
    if workers is not None and workers < 1:
        raise ClusterError(f"--workers must be >= 1, got {workers}")
    if use_gpu:
        gpu_nodes = [n for n in nodes if n.get("GPU", 0) >= 1 and n.get("CPU", 0) >= 1]
        if not gpu_nodes:
            raise ClusterError(f"no node can host a GPU worker (1 GPU and 1 CPU): {describe_nodes(nodes)}")
        cpus = max(1, min(int(n["CPU"]) // int(n["GPU"]) for n in gpu_nodes))
        capacity = sum(min(int(n["GPU"]), int(n["CPU"]) // cpus) for n in gpu_nodes)
        count = workers or capacity
        if count > capacity:
            raise ClusterError(f"--workers {count}: the cluster can host {capacity} GPU workers (1 GPU + {cpus} CPU "
                               f"each) on {describe_nodes(nodes)}; use --workers {capacity} or fewer, or --device cpu")
        return WorkerShape(count, cpus, 1)
    cpus = [c for c in _count(nodes, "CPU") if c >= 1]
    if not cpus:
        raise ClusterError(f"no node can host a worker (it needs 1 CPU): {describe_nodes(nodes)}")
    if workers is None:
        per = min(cpus)
        return WorkerShape(_slots(cpus, per), per)
    if workers > sum(cpus):
        raise ClusterError(f"--workers {workers}: the cluster has {sum(cpus)} CPUs on {describe_nodes(nodes)} "
                           f"(each worker needs at least 1); use --workers {sum(cpus)} or fewer")
    per = max(t for t in range(1, max(cpus) + 1) if _slots(cpus, t) >= workers)
    return WorkerShape(workers, per)
