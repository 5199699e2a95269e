"""Loopback ports for the throwaway servers of the demo and the tests.

Why not the bind-to-port-0 trick: the kernel hands out port-0 listeners *and the local ends of
outgoing connections* from the ephemeral range (``net.ipv4.ip_local_port_range``, 32768–60999 on
Debian). A port picked that way and released is soon the local end of some HTTP or SMTP
connection, and the server meant to listen on it fails with "address already in use" (it did,
once, in CI). Ports below the ephemeral range are never handed out by the kernel, so only another
explicit pick can take one; picking at random among ~12,000 of them and probing each makes that
unlikely, and the probe rules out what is already taken.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOW, _HIGH = 20_000, 32_000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _allowed_range() -> tuple[int, int]:
    """Below the kernel's ephemeral range (read from /proc where it can be)."""
    try:
        first = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _LOW, _HIGH
    return min(_LOW, first - 2_000), min(_HIGH, first - 1)


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing bound to ``port`` on ``host`` (SO_REUSEADDR like the servers, so our own closed
    listener in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports nothing is bound to now, outside the ephemeral range."""
    low, high = _allowed_range()
    chosen: list[int] = []
    for port in random.sample(range(low, high), k=min(high - low, 400)):
        if is_free(port, host):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise OSError(f"no {count} free loopback ports between {low} and {high}")


def free_port(host: str = "127.0.0.1") -> int:
    """One port nothing is bound to now, outside the ephemeral range."""
    return free_ports(1, host)[0]
