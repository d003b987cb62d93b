"""Batch stylization on a Ray cluster: ``rtstyle stylize ... --ray local|auto|HOST:PORT``.

* ``run_cluster(config, ClusterConfig(...)) -> ClusterReport``: the single-machine job of
  ``config`` (same outputs, same names), spread over Ray actors that each hold one open engine
  (one per GPU, else CPU workers). Long files are cut at keyframes into segments that run in
  parallel and are joined into the same frames and timestamps a single-machine run writes
  (temporal smoothing restarts at each segment). A worker that dies costs its file or segment a
  retry on another worker, up to ``max_retries``; outputs appear only complete (atomic rename).
  The report lists every file (done, skipped, failed and why) and the cluster totals.
* ``connect(address)``, ``start_local()``: joining or starting a cluster (``local`` binds to
  127.0.0.1 only).

Ray is imported only when a cluster is used (``pip install 'rtstyle[cluster]'``). Inputs and
outputs must be on a filesystem every node sees.
"""

from __future__ import annotations

from .connect import EXTRA_HINT, check_address, connect, import_ray, start_local
from .plan import ClusterConfig, output_complete, plan_job
from .report import ClusterReport, FileReport
from .scheduler import run_cluster

__all__ = ["EXTRA_HINT", "ClusterConfig", "ClusterReport", "FileReport", "check_address", "connect", "import_ray",
           "output_complete", "plan_job", "run_cluster", "start_local"]
