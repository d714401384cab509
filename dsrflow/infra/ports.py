"""A free loopback port for a server started next: the embedded stack's children, the worker's
SDK metrics page, the tests' and benchmarks' servers."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Ports handed to servers started later lie below the kernel's ephemeral range: a port from
# bind(0) comes from that range, which every outgoing connection on the machine also draws its
# local port from, so between the choice and the server's bind a client socket can take it.
_SERVER_PORTS_FROM = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_pick = random.SystemRandom()


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; elsewhere bind(0) below decides


def free_port() -> int:
    """A loopback port nothing listens on, for a server this process starts next."""
    below = _ephemeral_start()
    for _ in range(50 if below > _SERVER_PORTS_FROM else 0):
        port = _pick.randrange(_SERVER_PORTS_FROM, below)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        chosen: int = probe.getsockname()[1]
        return chosen


def free_ports(count: int) -> list[int]:
    """`count` free loopback ports, no two the same, for servers started later together: each
    pick is free when probed but nothing holds it, so two picks can return one port (a stack's API
    and its Temporal dev server were once given the same one, and the API never bound)."""
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports
