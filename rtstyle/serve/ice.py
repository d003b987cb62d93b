"""WebRTC network policy for the studio (and its probe client).

* ``host_candidates(addresses)``: within the block, aioice gathers host candidates on ``addresses``
  only (``candidate_addresses(bind_host)``: the bound address; a wildcard bind offers every
  interface). aioice skips 127.0.0.1 by default, which a loopback-only server needs.
* ``rtc_configuration(ice_servers)``: ICE servers come only from the configuration; aiortc's
  default public STUN server is never used.
* ``drop_mdns_candidates(sdp)``: remote ``.local`` candidates are dropped, so no multicast DNS
  query leaves the machine.
"""

from __future__ import annotations

import contextlib
import contextvars

_HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("rtstyle_ice_hosts", default=None)


def candidate_addresses(host: str) -> tuple[str, ...] | None:
    """The host candidate addresses for a bind address; None (every interface) for a wildcard."""
    if host in ("", "0.0.0.0", "::"):
        return None
    return ("127.0.0.1",) if host == "localhost" else (host.strip("[]"),)


def _install_host_filter() -> None:
    import aioice.ice

    if getattr(aioice.ice.get_host_addresses, "_rtstyle", False):
        return
    original = aioice.ice.get_host_addresses

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        allowed = _HOST_ADDRESSES.get()
        return original(use_ipv4, use_ipv6) if allowed is None else list(allowed)

    host_addresses._rtstyle = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = host_addresses


@contextlib.contextmanager
def host_candidates(addresses: tuple[str, ...] | None):
    """Within this block (and tasks started in it) ICE gathers host candidates on ``addresses``
    only (aioice skips 127.0.0.1 by default, which a loopback-only server needs)."""
    _install_host_filter()
    token = _HOST_ADDRESSES.set(addresses)
    try:
        yield
    finally:
        _HOST_ADDRESSES.reset(token)


def drop_mdns_candidates(sdp: str) -> str:
    """The SDP without ``.local`` candidates (resolving them would send multicast DNS queries)."""
    keep = []
    for line in sdp.splitlines():
        parts = line.split()
        if line.startswith("a=candidate:") and len(parts) > 4 and parts[4].endswith(".local"):
            continue
        keep.append(line)
    return "\r\n".join(keep) + "\r\n"


def rtc_configuration(ice_servers: tuple[str, ...] = ()):
    from aiortc import RTCConfiguration, RTCIceServer

    # An explicit list, even empty: None would make aiortc use a public STUN server.
    return RTCConfiguration(iceServers=[RTCIceServer(urls=u) for u in ice_servers])
