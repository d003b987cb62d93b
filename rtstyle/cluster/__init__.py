"""Batch stylization on a Ray cluster: ``rtstyle stylize ... --ray local|auto|HOST:PORT``.

* ``run_cluster(config, ClusterConfig(...)) -> ClusterReport``: the single-machine job of
  ``config`` (same outputs, same names), run as Ray tasks, one per file, or per segment of a long
  file plus a join. Long files are cut at keyframes into segments that run in parallel and are
  joined into the same frames and timestamps a single-machine run writes (temporal smoothing
  restarts at each segment). Outputs appear only complete (atomic rename) and carry a run tag
  (``video.tag``) that ``--skip-existing`` reads. The report lists every file (done, skipped,
  failed and why, interrupted) and the cluster totals, the fixed costs apart.
* ``connect(address)``, ``start_local()``, ``join(address)``: starting a private cluster on
  127.0.0.1 or joining one (token authentication passed through; one clear error per way a join fails).
* ``plan_workers(nodes, ...)``: how big and how many workers the nodes can host.

Which Ray feature does what (``run.py`` has the details): a placement group (strategy SPREAD)
reserves the workers, one bundle each that fits one node (``resources.py``); Ray tasks in that
group queue for a free bundle, and their ``max_retries`` (``--max-retries``) rerun an item whose
worker process or node died on a surviving worker; object refs start a long file's join once its
segments are done (a lost segment result is rebuilt from its lineage); ``ray.cancel`` stops the
tasks on Ctrl-C or SIGTERM. rtstyle has no queue, dispatch or retry of its own: the driver submits
every item at once and collects the results, and watches the one thing Ray leaves to its caller,
whether any alive node can still host a worker (``--stall-timeout``). Inside each worker the
single-machine frame path runs unchanged (``worker.py``).

Ray is imported only when a cluster is used (``pip install 'rtstyle[cluster]'``). Inputs and
outputs must be on a filesystem every node sees.
"""

from __future__ import annotations

from .connect import EXTRA_HINT, check_address, connect, import_ray, join, start_local
from .plan import ClusterConfig, plan_job, why_incomplete
from .report import ClusterReport, FileReport
from .resources import WorkerShape, plan_workers
from .run import run_cluster

__all__ = ["EXTRA_HINT", "ClusterConfig", "ClusterReport", "FileReport", "WorkerShape", "check_address", "connect",
           "import_ray", "join", "plan_job", "plan_workers", "run_cluster", "start_local", "why_incomplete"]
