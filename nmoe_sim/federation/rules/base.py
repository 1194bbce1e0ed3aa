"""The server rule: how client updates fold into the server's model.

A federation driver (sync rounds, the asynchronous loop) decides *when*: it tells the rule which
model version a client starts from (`hold`), hands it each kept update (`apply`) or gives the
version back for a dropped one (`release`), and calls `flush` when whatever is pending must be
folded in (a sync round closed, or the last asynchronous update landed). The rule decides *how*,
and steps its server optimizer with the aggregate it forms.
"""

from __future__ import annotations

from typing import Protocol

from nmoe_sim.federation.aggregate import Weights
from nmoe_sim.learning.client import Update


class ServerRule(Protocol):
    """The server's model, its version (server steps taken so far) and how updates change it."""

    weights: Weights
    version: int

    def hold(self, version: int) -> None:
        """A client starts from `version`."""

    def release(self, version: int) -> None:
        """An update started from `version` was dropped."""

    def apply(self, update: Update, version: int, staleness: int) -> None:
        """A kept update, computed from `version`, `staleness` versions old on arrival."""

    def flush(self) -> None:
        """Fold in whatever updates are still pending."""
