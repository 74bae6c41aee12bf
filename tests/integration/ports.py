"""Loopback ports for the integration tests, from the range this project's tests may use."""

from __future__ import annotations

import random
import socket

PORT_RANGE = range(25400, 25500)


def free_ports(count: int) -> list[int]:
    """`count` ports in PORT_RANGE that nothing listens on now, in random order (parallel runs collide less)."""
    candidates = list(PORT_RANGE)
    random.shuffle(candidates)
    found = []
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError(f"fewer than {count} free ports in {PORT_RANGE}")
