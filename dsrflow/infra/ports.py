"""A free loopback port for a server started next: the embedded stack's children, the worker's
SDK metrics page, the tests' and benchmarks' servers."""

from __future__ import annotations

import collections
import os
import random
import socket
from pathlib import Path

# Ports handed to servers started later lie below the kernel's ephemeral range: a port from
# bind(0) comes from that range, which every outgoing connection on the machine also draws its
# local port from, so between the choice and the server's bind a client socket can take it.
_SERVER_PORTS_FROM = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_pick = random.SystemRandom()
# Set by the test suite only (tests/conftest.py), "k/n": this process and its children pick from the
# k-th of n equal shares of those ports. pytest's parallel workers each start servers on ports
# picked free; two workers that picked one port within the seconds before either server bound it
# left one server unable to start ("address already in use"): a failed test in about one clean
# run in ten. Each worker's share is its own, and within one worker tests run one at a time.
SHARE_VARIABLE = "DSRFLOW_TESTS_PORT_SHARE"


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; elsewhere bind(0) below decides


def _server_ports() -> tuple[int, int]:
    """The range (from, below) a server's port is picked in: this process's share of it, if any."""
    low, high = _SERVER_PORTS_FROM, _ephemeral_start()
    if (share := os.environ.get(SHARE_VARIABLE)) and high > low:
        try:
            k, n = (int(part) for part in share.split("/"))
            if not 0 <= k < n:
                raise ValueError
        except ValueError:
            raise ValueError(f"{SHARE_VARIABLE}={share!r}: expected k/n with 0 <= k < n") from None
        size = (high - low) // n
        low, high = low + k * size, low + (k + 1) * size
    return low, high


# This process's latest picks: each was free when probed, but nothing holds it until its server
# binds, so a later pick of the same process could return it again. A benchmark's stack picked its
# APIs' ports, then its Temporal server's and demo systems' while starting them; one of those was
# once an API's, and that API never bound ("exited with code 3", a clean CI run of 2026-12-07).
# Only the latest: a port handed out long ago is bound by now, or was never used.
# They are also left in this process's environment, which the children it starts afterwards
# inherit: a worker picks its SDK metrics port itself, and drew one of its parent's picks whose
# server had not yet bound it as often as a pick of the parent's own would.
HANDED_OUT_VARIABLE = "DSRFLOW_PORTS_HANDED_OUT"
_RECENT: collections.deque[int] = collections.deque(maxlen=64)


def _inherited(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part.isdigit()]


_RECENT.extend(_inherited(os.environ.get(HANDED_OUT_VARIABLE, "")))


def free_port() -> int:
    """A loopback port nothing listens on, for a server this process starts next."""
    low, below = _server_ports()
    for _ in range(50 if below > low else 0):
        port = _pick.randrange(low, below)
        if port in _RECENT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            _RECENT.append(port)
            os.environ[HANDED_OUT_VARIABLE] = ",".join(map(str, _RECENT))
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        chosen: int = probe.getsockname()[1]
        return chosen


def free_ports(count: int) -> list[int]:
    """`count` free loopback ports, no two the same, for servers started later together (a pick
    that fell back to the kernel's choice is not among the recent ones)."""
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports
