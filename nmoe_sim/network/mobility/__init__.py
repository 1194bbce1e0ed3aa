"""Clients that move: a layout of base stations and clients on a plane, mobility models (tracks
over time), attachment to the base station heard best with A3 handovers, and the network wrapper
that moves a client's access links at each handover of its world."""
