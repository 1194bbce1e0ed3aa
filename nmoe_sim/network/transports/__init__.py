"""Transports: what a message costs on top of its payload's bits, chosen by `network.transport`.

The flow network shares links max-min fairly and keeps the clock; a transport says, per message,
how many bits go on the wire, how long the message waits before it transmits (propagation,
handshake), the most its flow may take (window and loss bounds) and whether it starts in slow
start. A new transport is one module here and one line in `TRANSPORTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nmoe_sim.network.transports.base import Hop, Message, Route, Transport
from nmoe_sim.network.transports.fluid import FluidTransport
from nmoe_sim.network.transports.tcp import TcpTransport

__all__ = [
    "TRANSPORTS",
    "FluidTransport",
    "Hop",
    "Message",
    "Route",
    "TcpTransport",
    "Transport",
    "by_name",
]

TRANSPORTS: dict[str, Callable[..., Transport]] = {
    "fluid": FluidTransport,
    "tcp": TcpTransport,
}


def by_name(name: str, **params: Any) -> Transport:
    """The transport called `name`, built with its parameters (see each module)."""
    try:
        factory = TRANSPORTS[name]
    except KeyError:
        raise ValueError(
            f"unknown transport {name!r}; choose one of {sorted(TRANSPORTS)}"
        ) from None
    return factory(**params)
