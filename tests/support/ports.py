"""Ports for the services the tests start, handed out once per test process.

Picked below the kernel's ephemeral range: a port the kernel hands to an outgoing
connection (a client's own end, Spark's and the JVMs' random listeners) is taken from that
range at any moment, so a port picked there and bound minutes later (the production shape
starts five services before it serves) can be gone by then. Below the range only a service
that was told a port can hold one, and every such port of this process comes from here.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_TAKEN: set[int] = set()
_PICK = random.SystemRandom()  # not the test's seeded generator: every draw differs


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


LOW, HIGH = 10000, _ephemeral_low()


def is_free(port: int) -> bool:
    """Nothing listens on ``port`` of 127.0.0.1."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def reserve(offsets: tuple[int, ...] = (0,)) -> int:
    """A base port P such that P + o is free for every o in ``offsets`` and was never handed
    out before by this process."""
    for _ in range(500):
        base = _PICK.randrange(LOW, HIGH - max(offsets))
        wanted = {base + o for o in offsets}
        if not _TAKEN & wanted and all(map(is_free, wanted)):
            _TAKEN.update(wanted)
            return base
    raise RuntimeError(f"no free ports for offsets {offsets} in {LOW}..{HIGH}")
