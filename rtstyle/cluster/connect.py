"""Joining or starting the Ray cluster a job runs on.

Ray is an optional dependency (``pip install 'rtstyle[cluster]'``): it is imported here, inside
functions, only when ``--ray`` is used.

Network hygiene for ``local``: Ray resolves 127.0.0.1 to the machine's reachable address and its
gRPC servers then listen on every interface. It keeps to loopback only when its "cluster mode" is
off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the switch Ray uses on laptops), so a private cluster
sets that before Ray starts its processes; they inherit it. ``connect`` then checks that the node
really is 127.0.0.1 and refuses to run otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator

from ..errors import BackendUnavailableError, InputError
from ..textutil import first_line

EXTRA_HINT = "pip install 'rtstyle[cluster]'"
LOOPBACK = "127.0.0.1"
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_CLUSTER_MODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray():
    """The ``ray`` module, or a one-line error naming the extra."""
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError(f"--ray needs Ray, which is not installed; install it with: {EXTRA_HINT}") from None
    return ray


def check_address(address: str) -> str:
    if address in ("local", "auto") or _ADDRESS.match(address):
        return address
    raise InputError(f"--ray {address!r}: expected local, auto or HOST:PORT (the head node's GCS address, e.g. 10.0.0.5:6379)")


def _loopback_only() -> None:
    """Keep a private cluster on 127.0.0.1 (see the module docstring)."""
    os.environ[_CLUSTER_MODE_ENV] = "0"
    if "ray" in sys.modules:  # imported already (a test, a notebook): the constant was read at import time
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False


def start_local(num_cpus: int | None = None, num_gpus: int | None = None):
    """Start a private single-machine Ray cluster bound to 127.0.0.1 and connect to it."""
    check_address("local")
    ray = import_ray()
    _loopback_only()
    ray.init(address="local", _node_ip_address=LOOPBACK, include_dashboard=False, num_cpus=num_cpus,
             num_gpus=num_gpus, log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
    node_ip = ray.util.get_node_ip_address()
    if node_ip != LOOPBACK:
        ray.shutdown()
        raise BackendUnavailableError(f"Ray bound its private cluster to {node_ip}, not {LOOPBACK}; refusing to run "
                                      f"(set {_CLUSTER_MODE_ENV}=0 before Ray is imported)")
    return ray


@contextlib.contextmanager
def connect(address: str) -> Iterator:
    """Connect for the duration of a ``with`` block: ``local`` starts a private cluster on loopback
    (stopped at the end), ``auto`` joins the cluster of this environment (``ray start`` on this machine,
    or RAY_ADDRESS), HOST:PORT joins that head node. If this process is already connected (a test, a
    notebook), that connection is used and left open."""
    check_address(address)
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address == "local":
        start_local()
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
        except ConnectionError as exc:
            raise InputError(f"--ray {address}: cannot join that cluster ({first_line(exc)}); start one with "
                             f"`ray start --head` or use --ray local") from None
    try:
        yield ray
    finally:
        ray.shutdown()  # stops the processes a private cluster started; a joined cluster keeps running
