"""Variants of one kind (gating schemes, stage-1 objectives, datasets) listed by name.

Each entry is `"module:attribute"`, imported on first use: the scenario schema lists and checks
the names without importing torch, and a new variant is one module plus one line in its registry.
"""

from __future__ import annotations

import importlib
from typing import Any


class Registry:
    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    @property
    def names(self) -> tuple[str, ...]:
        """In registration order (the order runs and tables use)."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Any:
        """The registered attribute (a class or a function); unknown names are refused with the
        registered ones listed."""
        try:
            target = self._entries[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}"
            ) from None
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)
