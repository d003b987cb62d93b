"""Joining or starting the Ray cluster a job runs on, with one clear error for each way a join fails.

Ray is an optional dependency (``pip install 'rtstyle[cluster]'``): it is imported here, inside
functions, only when ``--ray`` is used.

* ``local``: a private cluster for the run. Ray resolves 127.0.0.1 to the machine's reachable
  address and its gRPC servers then listen on every interface; it keeps to loopback only when its
  "cluster mode" is off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the switch Ray uses on laptops),
  so it is set before Ray starts its processes, which inherit it; the node is then checked to be
  127.0.0.1. The cluster runs with token authentication (Ray's default for a new cluster) and a
  token made for this process, held in its environment only (Ray would otherwise write one to
  ``~/.ray/auth_token``).
* ``HOST:PORT`` / ``auto``: token authentication (Ray 2.5x and later) is passed through: Ray turns
  it on for ``ray start --head`` and ``auto`` when the user has a token (``RAY_AUTH_TOKEN``,
  ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) and ``RAY_AUTH_MODE`` is unset, not for an
  address (argument or ``RAY_ADDRESS``); rtstyle turns it on then too, before it imports Ray (a
  token also joins a cluster without authentication). What Ray's C++ core prints during the
  join (a line per retry) is captured and used to name the cause, and an address where nothing
  answers fails at once: a failed join is one line here instead of minutes of retries.
* ``auto``: ``RAY_ADDRESS``, else the head a ``ray start`` on this machine recorded; never Ray's
  last resort of joining whatever Ray process it finds on the machine.
* Signals: joining installs Ray's native SIGTERM handler (a stack dump, then exit); the Python
  handlers in place before are put back, so SIGTERM stops a job as it stops a single-machine run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import re
import secrets
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from ..errors import BackendUnavailableError, ClusterError, InputError
from ..signals import STOP_SIGNALS
from ..textutil import first_line

EXTRA_HINT = "pip install 'rtstyle[cluster]'"
LOOPBACK = "127.0.0.1"
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_CLUSTER_MODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_AUTH_MODE_ENV = "RAY_AUTH_MODE"
_TOKEN_ENV = "RAY_AUTH_TOKEN"
_TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
# A private cluster runs the job at the run's own priority: Ray lowers its workers by 15 nice levels
# (keeping a shared node's control processes responsive), which on a busy machine starves them
# against everything else the user runs, a plain stylize included.
_LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}
_PROCESS_TOKEN = secrets.token_hex(16)  # one per process: Ray's token loader keeps the first it reads
_REACH_TIMEOUT_S = 5.0
TOKEN_HINT = ("put the head's token (`ray get-auth-token` prints it there) in ~/.ray/auth_token, or set "
              "RAY_AUTH_TOKEN_PATH to a file holding it, or RAY_AUTH_TOKEN to the token")


def require_ray() -> None:
    """A one-line error naming the extra when Ray is not installed; does not import it (``join``
    sets the authentication mode first)."""
    loaded = sys.modules.get("ray", False)  # None: an import of it was made to fail
    if loaded is None or (loaded is False and importlib.util.find_spec("ray") is None):
        raise BackendUnavailableError(f"--ray needs Ray, which is not installed; install it with: {EXTRA_HINT}")


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


@contextlib.contextmanager
def _environ(*names: str) -> Iterator[None]:
    """The environment variables ``names`` as they were before the block, after it."""
    saved = {k: os.environ.get(k) for k in names}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _loopback_only() -> None:
    """Keep a private cluster on 127.0.0.1 (see the module docstring)."""
    os.environ[_CLUSTER_MODE_ENV] = "0"
    if "ray" in sys.modules:  # imported already (a test, a notebook): the constant was read at import time
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False


def token_source() -> str | None:
    """Where this process would take a Ray authentication token from, or None."""
    if os.environ.get(_TOKEN_ENV):
        return _TOKEN_ENV
    path = os.environ.get(_TOKEN_PATH_ENV)
    if path:
        return f"{_TOKEN_PATH_ENV} ({path})" if _nonempty(Path(path)) else None
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if _nonempty(default) else None


def _nonempty(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


@contextlib.contextmanager
def _python_signal_handlers() -> Iterator[None]:
    """Put back, after the block (a ``ray.init``), the Python handlers of the stop signals: Ray's
    core worker replaces SIGTERM's with a native one that dumps a stack and exits."""
    main = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in STOP_SIGNALS} if main else {}
    try:
        yield
    finally:
        for s, handler in handlers.items():
            if handler is not None:
                signal.signal(s, handler)


def start_local(num_cpus: int | None = None, num_gpus: int | None = None):
    """Start a private single-machine Ray cluster bound to 127.0.0.1 and connect to it. Unless the
    user chose an authentication mode, Ray turns token authentication on for it (its default for a
    new cluster) with this process's token, given in the environment, so Ray writes none to
    ``~/.ray/auth_token`` (``connect`` restores the environment at the end)."""
    check_address("local")
    _loopback_only()
    ray = import_ray()
    if os.environ.get(_AUTH_MODE_ENV) is None:
        os.environ[_TOKEN_ENV] = _PROCESS_TOKEN
    with _python_signal_handlers(), _quiet_logger(_AUTH_LOGGER):
        ray.init(address="local", _node_ip_address=LOOPBACK, include_dashboard=False, num_cpus=num_cpus,
                 num_gpus=num_gpus, log_to_driver=False, logging_level=logging.WARNING, configure_logging=False,
                 _system_config=_LOCAL_SYSTEM_CONFIG)
    node_ip = ray.util.get_node_ip_address()
    if node_ip != LOOPBACK:
        ray.shutdown()
        raise BackendUnavailableError(f"Ray bound its private cluster to {node_ip}, not {LOOPBACK}; refusing to run "
                                      f"(set {_CLUSTER_MODE_ENV}=0 before Ray is imported)")
    return ray


def join(address: str):
    """Join a running cluster (``auto`` or ``HOST:PORT``); a ``ClusterError`` naming the cause and
    the fix when that fails. With a token at hand and ``RAY_AUTH_MODE`` unset, token authentication
    is turned on first (in this process's environment; ``connect`` restores it): Ray reads the mode
    when it is imported, so this works when Ray is imported here, as the CLI does."""
    check_address(address)
    source = token_source()
    if source and os.environ.get(_AUTH_MODE_ENV) is None and "ray" not in sys.modules:
        os.environ[_AUTH_MODE_ENV] = "token"
    ray = import_ray()
    target = auto_address() if address == "auto" else address
    if target is None:
        raise ClusterError("--ray auto: no running Ray cluster found (RAY_ADDRESS is not set and no `ray start` ran "
                           "on this machine); start one with `ray start --head`, give --ray HOST:PORT, or use --ray local")
    if _ADDRESS.match(target):
        _check_reachable(target, address)
    try:
        with _python_signal_handlers(), _native_stderr() as said:
            ray.init(address=target, log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
    except Exception as exc:  # noqa: BLE001 - every failure of a join becomes one line naming its cause
        raise _join_error(address, exc, source, said.getvalue()) from None
    return ray


def auto_address() -> str | None:
    """``--ray auto``: ``RAY_ADDRESS``, else the head a ``ray start`` on this machine recorded in Ray's
    folder (``$RAY_TMPDIR``, ``$TMPDIR`` or /tmp, then ``ray/ray_current_cluster``): Ray's own order,
    without its last resort of joining any Ray process it can see on the machine (another user's
    cluster, or one it cannot reach)."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    folder = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    try:
        recorded = (Path(folder) / "ray" / "ray_current_cluster").read_text().strip()
    except OSError:
        return None
    return recorded or None


@contextlib.contextmanager
def _native_stderr() -> Iterator[io.StringIO]:
    """What Ray's C++ core prints to stderr during a join (a line per retry while it cannot reach
    or is refused by the cluster), kept out of the user's terminal and given to the caller, who
    turns a failure into one line."""
    said = io.StringIO()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield said
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            said.write(capture.read().decode(errors="replace"))


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Ray's notice that it turned token authentication on is for Ray's users, not rtstyle's."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _check_reachable(address: str, given: str) -> None:
    """A TCP connect to the head's port first: Ray itself retries an unanswered address for minutes."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_REACH_TIMEOUT_S):
            pass
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or first_line(exc)).lower()
        at = address if given == address else f"{address} (from {given})"
        raise ClusterError(f"--ray {at}: nothing answers there ({why}); start the head node with "
                           f"`ray start --head --port {port}`, or check the address, the port and the firewall") from None


def _join_error(address: str, exc: Exception, source: str | None, native: str = "") -> ClusterError:
    text = first_line(exc)
    kind = type(exc).__name__
    if kind == "AuthenticationError" and "no authentication token was found" in str(exc):
        return ClusterError(f"--ray {address}: the cluster uses token authentication and no token was found; "
                            f"{TOKEN_HINT}")
    if kind == "AuthenticationError" or "Unauthenticated" in native:
        mode = os.environ.get(_AUTH_MODE_ENV)
        if not source:
            token = "it has no token"
        elif mode != "token":
            token = f"it has one ({source}) but RAY_AUTH_MODE is {mode or 'unset'}, so it sent none: set RAY_AUTH_MODE=token"
        else:
            token = f"it sent the token from {source}"
        return ClusterError(f"--ray {address}: the cluster uses token authentication and refused this process "
                            f"({token}); {TOKEN_HINT}")
    if "version mismatch" in str(exc).lower():
        return ClusterError(f"--ray {address}: {text}; install the same Ray and Python versions on every machine "
                            f"and where rtstyle runs")
    if isinstance(exc, ConnectionError):
        return ClusterError(f"--ray {address}: the port answers but Ray could not join the cluster ({text}); check "
                            f"that this is the head's port (`ray start --head --port`) and that it runs the same Ray")
    return ClusterError(f"--ray {address}: cannot join that cluster ({kind}: {text})")


@contextlib.contextmanager
def connect(address: str) -> Iterator:
    """Connect for the duration of a ``with`` block: ``local`` starts a private cluster on loopback
    (stopped at the end), ``auto`` joins the cluster of this environment (``ray start`` on this machine,
    or RAY_ADDRESS), HOST:PORT joins that head node. If this process is already connected (a test, a
    notebook, a benchmark reusing one cluster), that connection is used and left open."""
    check_address(address)
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        yield sys.modules["ray"]
        return
    with _environ(_AUTH_MODE_ENV, _TOKEN_ENV, _CLUSTER_MODE_ENV):  # as the user had them
        ray = start_local() if address == "local" else join(address)
        try:
            yield ray
        finally:
            ray.shutdown()  # stops the processes a private cluster started; a joined cluster keeps running
